"""How a command's outcomes are shown: lines and tqdm bars for people, NDJSON events for scripts.

Both reporters count what happened (`Tally`), so a command ends with the same exit code
whichever one is in use. Transfers may run in several threads (`--jobs`): every method
is safe to call from any of them. The event schema is in docs/SCRIPTING.md.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from ftpc.files import GetResult, PutResult
from ftpc.ui import format_listing, get_line, human_size, put_line
from shared.cli import exit_code_for
from shared.errors import FtpError
from shared.listing import Entry

Progress = Callable[[int], None]
Outcome = PutResult | GetResult | FtpError

PROGRESS_INTERVAL = 0.5
"""Seconds between two progress events of one transfer in --json mode."""


@dataclass
class Tally:
    """What a command did, for its summary and exit code."""

    ok: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    errors: list[tuple[str, FtpError]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    settled: int | None = None
    """The exit code, when something other than the files decided it (see Reporter.settle)."""

    @property
    def exit_code(self) -> int:
        """The code of the first failure's class (docs/SCRIPTING.md), or 0."""
        if self.settled is not None:
            return self.settled
        return exit_code_for(self.errors[0][1]) if self.errors else 0


class Reporter:
    """Counts outcomes; subclasses show them."""

    def __init__(self) -> None:
        self.tally = Tally()
        self._lock = threading.Lock()

    def plan(self, op: str, files: int, total_bytes: int, refused: int = 0) -> None:
        """How much the command is about to move (for an overall bar), and how many of
        its arguments were refused before that."""

    def start(self, op: str, name: str, size: int, job: int = 0) -> Progress:
        """A file's transfer begins; returns the callback that reports its bytes moved."""
        return _ignore

    def outcome(self, op: str, item: str, outcome: Outcome, job: int = 0) -> None:
        """One file's fate: transferred, already there, skipped, or failed."""
        with self._lock:
            self._end(job)
            t = self.tally
            if isinstance(outcome, FtpError):
                t.failed += 1
                t.errors.append((item, outcome))
            elif outcome.skipped or outcome.existed:
                t.skipped += 1
            else:
                t.ok += 1
                t.bytes += outcome.size
            self._show(op, item, outcome)

    def skip(self, op: str, item: str, reason: str) -> None:
        """An item left out before any transfer (a link in a tree, say)."""
        with self._lock:
            self.tally.skipped += 1
            self._show_skip(op, item, reason)

    def note(self, event: str, **fields: Any) -> None:
        """Anything else a command reports: a folder made, a file deleted, a plan line."""
        with self._lock:
            self._show_note(event, fields)

    def listing(self, entries: Sequence[Entry]) -> None:
        """A folder's entries, as `ls` shows them."""
        with self._lock:
            self._show_listing(entries)

    def failure(self, op: str, item: str, exc: FtpError) -> None:
        self.outcome(op, item, exc)

    def settle(self, exit_code: int) -> None:
        """Fix the exit code the summary reports, when the files alone do not decide it: a
        batch script ends with the code of the line that stopped it, or 0 if every failure
        was on a line allowed to fail."""
        with self._lock:
            self.tally.settled = exit_code

    def close(self) -> None:
        """Say how it went (a summary line or event)."""

    def _end(self, job: int) -> None:
        """The transfer running in `job` is over (close its bar)."""

    def _show(self, op: str, item: str, outcome: Outcome) -> None:
        raise NotImplementedError

    def _show_skip(self, op: str, item: str, reason: str) -> None:
        raise NotImplementedError

    def _show_note(self, event: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def _show_listing(self, entries: Sequence[Entry]) -> None:
        raise NotImplementedError


def _ignore(n: int) -> None:
    """Progress goes nowhere."""


class HumanReporter(Reporter):
    """A line per outcome; on a terminal, a bar per running transfer and one overall bar."""

    def __init__(self, bars: bool, echo: Callable[[str], None]) -> None:
        super().__init__()
        self.bars = bars
        self._echo = echo
        self.overall: tqdm[Any] | None = None
        self._bars: dict[int, tqdm[Any]] = {}
        self._items = 0

    def _line(self, text: str) -> None:
        if self.bars:
            tqdm.write(text)
        else:
            self._echo(text)

    def plan(self, op: str, files: int, total_bytes: int, refused: int = 0) -> None:
        self._items = files + refused
        if self.bars and files > 1 and self.overall is None:
            self.overall = tqdm(
                total=total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"{files} files",
                position=0,
                leave=False,
            )

    def start(self, op: str, name: str, size: int, job: int = 0) -> Progress:
        """The file's bar: one bar per job, reused file after file, under the overall bar."""
        if not self.bars:
            return _ignore
        overall = self.overall
        with self._lock:
            bar = self._bars.get(job)
            if bar is None:
                bar = tqdm(
                    total=size,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=name,
                    position=job + (1 if overall is not None else 0),
                    leave=False,
                )
                self._bars[job] = bar
            else:
                bar.set_description_str(name, refresh=False)
                bar.reset(total=size)

        def advance(n: int) -> None:
            with self._lock:
                bar.update(n)
                if overall is not None:
                    overall.update(n)

        return advance

    def _end(self, job: int) -> None:
        """A lone file's bar goes when it is done; with several files, each job keeps its
        bar for the next one."""
        if self.overall is None:
            bar = self._bars.pop(job, None)
            if bar is not None:
                bar.close()

    def _show(self, op: str, item: str, outcome: Outcome) -> None:
        if isinstance(outcome, FtpError):
            if self._items > 1:  # a lone failure is the command's own error message
                self._line(f"failed {item}: {outcome}")
        elif isinstance(outcome, PutResult):
            self._line(put_line(outcome))
        else:
            self._line(get_line(outcome))

    def _show_skip(self, op: str, item: str, reason: str) -> None:
        self._line(f"skipped {item}: {reason}")

    def _show_note(self, event: str, fields: dict[str, Any]) -> None:
        text = fields.get("text")
        if text is not None:
            self._line(str(text))

    def _show_listing(self, entries: Sequence[Entry]) -> None:
        self._line(format_listing(entries))

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        if self.overall is not None:
            self.overall.close()
            self.overall = None
        t = self.tally
        if self._items > 1:
            seconds = time.monotonic() - t.started
            self._line(
                f"{t.ok} transferred ({human_size(t.bytes)} in {seconds:.2f}s),"
                f" {t.skipped} skipped, {t.failed} failed"
            )


class JsonReporter(Reporter):
    """Newline-delimited JSON events on stdout, and nothing else there."""

    def __init__(self, out: IO[str] | None = None) -> None:
        super().__init__()
        self._out = out

    def _emit(self, event: str, **fields: Any) -> None:
        out = self._out or sys.stdout
        out.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
        out.flush()

    def plan(self, op: str, files: int, total_bytes: int, refused: int = 0) -> None:
        with self._lock:
            self._emit("plan", op=op, files=files, bytes=total_bytes, refused=refused)

    def start(self, op: str, name: str, size: int, job: int = 0) -> Progress:
        with self._lock:
            self._emit("start", op=op, name=name, size=size, job=job)
        moved = 0
        last = time.monotonic()

        def progress(n: int) -> None:
            nonlocal moved, last
            moved += n
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL and moved < size:
                last = now
                with self._lock:
                    self._emit("progress", op=op, name=name, bytes=moved, size=size, job=job)

        return progress

    def _show(self, op: str, item: str, outcome: Outcome) -> None:
        if isinstance(outcome, FtpError):
            self._emit(
                "error",
                op=op,
                name=item,
                code=outcome.code,
                exit=exit_code_for(outcome),
                message=str(outcome),
            )
            return
        fields: dict[str, Any] = {
            "op": op,
            "name": outcome.name,
            "bytes": outcome.size,
            "seconds": round(outcome.seconds, 6),
            "digest": outcome.digest,
            "checksum": outcome.checksum,
            "md5": outcome.md5 or None,
            "sent": outcome.sent,
            "resumed_from": outcome.resumed_from,
        }
        if isinstance(outcome, GetResult):
            fields["path"] = str(outcome.path)
        if outcome.skipped or outcome.existed:
            reason = "same" if outcome.existed else "exists"
            self._emit("skipped", reason=reason, **fields)
        else:
            self._emit("done", **fields)

    def _show_skip(self, op: str, item: str, reason: str) -> None:
        self._emit("skipped", op=op, name=item, reason=reason)

    def _show_note(self, event: str, fields: dict[str, Any]) -> None:
        fields.pop("text", None)
        self._emit(event, **{k: str(v) if isinstance(v, Path) else v for k, v in fields.items()})

    def _show_listing(self, entries: Sequence[Entry]) -> None:
        for e in entries:
            self._emit("entry", **asdict(e))

    def close(self) -> None:
        t = self.tally
        with self._lock:
            self._emit(
                "summary",
                ok=t.ok,
                skipped=t.skipped,
                failed=t.failed,
                bytes=t.bytes,
                seconds=round(time.monotonic() - t.started, 6),
                exit=t.exit_code,
            )
