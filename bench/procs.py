"""Child processes: start them, read what they report, measure their memory, always stop them.

Every child runs in its own process group (so a forking server like vsftpd is stopped with all
its session processes) and gets SIGTERM if the bench dies, even by SIGKILL (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask for SIGTERM when the bench goes away."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def python_module(module: str, *args: str) -> list[str]:
    """The command line running `module` with this interpreter (so with this venv)."""
    return [sys.executable, "-m", module, *args]


class Processes:
    """Every child the bench starts; `stop_all` ends them whatever happened."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._children: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: Sequence[str],
        log_name: str,
        *,
        pipes: bool = False,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a child whose stderr (and stdout, without `pipes`) go to a log file.

        Logs go to files, never to an unread pipe: a busy server would fill a pipe and stall.
        """
        log = open(self.logs / log_name, "ab")  # noqa: SIM115 - the child owns it after fork
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log,
                stderr=log,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # children are started from the main thread only
            )
        finally:
            log.close()
        self._children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it lingers."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        else:
            # The leader is gone; its group (vsftpd sessions) may not be.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if proc in self._children:
            self._children.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._children)):
            self.stop(proc)

    def log_tail(self, log_name: str, lines: int = 15) -> str:
        try:
            text = (self.logs / log_name).read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_for_line(
    proc: subprocess.Popen[bytes], log: Path, pattern: str, timeout: float = 30.0
) -> re.Match[str]:
    """Poll a child's log file until a line matches `pattern` (e.g. `listening on H:P`)."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            for line in log.read_text("utf-8", "replace").splitlines():
                if match := regex.search(line):
                    return match
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {pattern!r}")
        time.sleep(0.02)
    raise TimeoutError(f"{proc.args!r} did not print {pattern!r} within {timeout:.0f} s")


def read_json_line(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """One JSON line from a child's stdout pipe, without blocking forever on a stuck child."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{proc.args!r} sent nothing for {timeout:.0f} s")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"{proc.args!r} exited (status {proc.wait()}) without a result")
        data += chunk
    return json.loads(data)


def send_line(proc: subprocess.Popen[bytes], text: str) -> None:
    stdin: IO[bytes] | None = proc.stdin
    assert stdin is not None
    stdin.write(text.encode() + b"\n")
    stdin.flush()


# --- memory --------------------------------------------------------------------------------


def _status_kib(pid: int | str, field: str) -> int:
    """A `kB` field of /proc/PID/status, such as VmRSS (now) or VmHWM (peak)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def rss_kib(pid: int | str = "self") -> int:
    return _status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int | str = "self") -> int:
    return _status_kib(pid, "VmHWM")


def reset_peak_rss(pid: int | str = "self") -> int:
    """Reset VmHWM to the current RSS (clear_refs 5) and return that baseline in KiB.

    This lets one long-lived server report the peak of each transfer on its own.
    """
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    return rss_kib(pid)
