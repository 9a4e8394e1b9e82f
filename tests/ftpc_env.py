"""Running ftpc against a test daemon with nothing of the developer's leaking in.

Every ftpc run here gets a HOME, XDG_CONFIG_HOME, XDG_CACHE_HOME and FTPC_CACHE_DIR
under tmp_path and no other FTPC_* variable, so that a profile, a pinned host or a
remembered listing of the person running the tests never changes what a test sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ftpc.cli import main as ftpc_main
from tests.conftest import ACCOUNTS, Daemon

REPO = Path(__file__).resolve().parent.parent


def isolated_env(home: Path, daemon: Daemon | None, user: str = "alice") -> dict[str, str]:
    """The variables ftpc reads, for `user` on `daemon` (or none), with `home` as HOME."""
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "FTPC_CACHE_DIR": str(home / ".cache" / "ftpc"),
    }
    if daemon is not None:
        env |= {
            "FTPC_HOST": daemon.host,
            "FTPC_PORT": str(daemon.port),
            "FTPC_USER": user,
            "FTPC_PASSWORD": ACCOUNTS[user][0],
        }
    return env


def process_env(extra: Mapping[str, str]) -> dict[str, str]:
    """os.environ without any FTPC_* variable, plus `extra`; this checkout's code first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTPC_")}
    env.pop("COLUMNS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env | dict(extra)


FTPC_COMMAND = f"{sys.executable} -m ftpc"
"""How the example scripts are told to run ftpc ($FTPC)."""


def run_process(
    cmd: list[str], env: Mapping[str, str], cwd: Path, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, env=process_env(env), cwd=cwd, input=input, capture_output=True, text=True, timeout=90
    )


@dataclass
class Ftpc:
    """`ftpc` through CliRunner, in `cwd`, against the daemon."""

    daemon: Daemon
    home: Path
    cwd: Path

    def __call__(
        self, *args: str, input: str | None = None, user: str = "alice", **env: str
    ) -> Result:
        e: dict[str, str | None] = {**isolated_env(self.home, self.daemon, user), **env}
        return CliRunner().invoke(ftpc_main, list(args), input=input, env=e)


def make_ftpc(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ftpc:
    """ftpc as alice (user=... for another account), run from tmp_path/work; each test
    module's `ftpc` fixture calls this."""
    for key in [k for k in os.environ if k.startswith("FTPC_")]:
        monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    for key, value in isolated_env(home, None).items():
        monkeypatch.setenv(key, value)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    return Ftpc(daemon, home, work)


def events(result: Result | subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The NDJSON events on stdout; fails if any line is not one JSON object."""
    parsed = []
    for line in result.stdout.splitlines():
        obj = json.loads(line)
        assert isinstance(obj, dict) and isinstance(obj.get("event"), str), line
        parsed.append(obj)
    return parsed


def kinds(evs: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in evs]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def tree(top: Path, keep: Callable[[Path], bool] = lambda p: True) -> dict[str, bytes]:
    """Relative path -> content of every regular file below `top` (not following links)."""
    found = {}
    for folder, _dirs, names in os.walk(top):
        for name in names:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink() and keep(path):
                found[path.relative_to(top).as_posix()] = path.read_bytes()
    return found


def write_tree(top: Path, files: Mapping[str, bytes]) -> Path:
    for rel, data in files.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return top


def logins(caplog: pytest.LogCaptureFixture) -> int:
    """Successful logins the daemon logged so far in this test."""
    return sum(
        1
        for r in caplog.get_records("call")
        if r.getMessage().startswith("login ") and "result=ok" in r.getMessage()
    )
