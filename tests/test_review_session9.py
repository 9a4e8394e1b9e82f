"""Review of c94565a..HEAD (log writer, target lstat, raw-fd uploads, names regex,
encode_stored, put_many window 512).

Tests marked "Found in review" failed before their fix; the others pin a subtle behaviour
that was checked.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import re
from pathlib import Path

import pytest

from ftpc import pipeline
from ftpd import logwriter
from ftpd.logwriter import LogWriter
from shared import names
from shared.errors import BadName, LocalProtocolError
from shared.protocol import Role, encode, encode_stored

from .conftest import Daemon

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("ftpd.review9", logging.INFO, __file__, 1, message, (), None)


# --- the log writer bypasses emit() of every StreamHandler subclass ----------------------


def test_a_file_handler_opened_lazily_gets_its_records(tmp_path: Path) -> None:
    """Found in review. LogWriter.write sent every isinstance(h, StreamHandler) through
    _write_stream, which wrote to `handler.stream` directly instead of calling emit().
    A FileHandler(delay=True) has stream None until its first emit(), so every batch failed
    with AttributeError (reported by handleError) and nothing was ever logged. Before, the
    QueueListener called handler.handle() -> emit(), which opens the file."""
    path = tmp_path / "ftpd.log"
    handler = logging.FileHandler(path, delay=True)
    try:
        LogWriter([handler]).write([_record("one"), _record("two")])
    finally:
        handler.close()
    assert path.exists() and path.read_text() == "one\ntwo\n"


def test_a_rotating_file_handler_still_rotates(tmp_path: Path) -> None:
    """Found in review. RotatingFileHandler (a StreamHandler subclass) rotates in emit(); the
    writer's _write_stream skipped emit(), so the log grew past maxBytes without rotating."""
    path = tmp_path / "ftpd.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=20, backupCount=3)
    try:
        writer = LogWriter([handler])
        for i in range(4):
            writer.write([_record(f"line {i} padding padding")])
    finally:
        handler.close()
    assert (tmp_path / "ftpd.log.1").exists()


def test_a_watched_file_handler_reopens_a_moved_log(tmp_path: Path) -> None:
    """Found in review. WatchedFileHandler reopens its file in emit() when logrotate moved it;
    through _write_stream it kept writing into the moved file and the new one never
    appeared."""
    path = tmp_path / "ftpd.log"
    handler = logging.handlers.WatchedFileHandler(path)
    try:
        writer = LogWriter([handler])
        writer.write([_record("before")])
        os.rename(path, tmp_path / "ftpd.log.1")
        writer.write([_record("after")])
    finally:
        handler.close()
    assert path.exists() and path.read_text() == "after\n"


class _Capturing(logging.StreamHandler):  # type: ignore[type-arg]
    """Like pytest's LogCaptureHandler: a StreamHandler whose emit() also keeps the record."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        super().emit(record)


def test_a_stream_handler_subclass_has_its_emit_called() -> None:
    """Found in review. A host that logs its own way (the case cli.serve leaves alone) may use a
    StreamHandler subclass with its own emit(), e.g. pytest's caplog handler: its text was
    written but its emit() never ran, so caplog.records stayed empty."""
    handler = _Capturing()
    LogWriter([handler]).write([_record("kept")])
    assert [r.getMessage() for r in handler.records] == ["kept"]


def test_after_stop_records_reach_the_handlers_again(bare_root: logging.Logger) -> None:
    """Found in review (the old QueueListener code did the same). stop() left the
    InProcessQueueHandler on the root with nobody draining its queue: later records were
    silently lost and piled up in memory, and a second BackgroundLog (a second `serve`
    in one process) took that dead queue handler as its only handler, so it logged nothing."""
    out = io.StringIO()
    bare_root.addHandler(logging.StreamHandler(out))
    log = logging.getLogger("ftpd.review9")
    first = logwriter.BackgroundLog(linger=0.0)
    log.info("first serve")
    first.stop()
    log.info("between")
    second = logwriter.BackgroundLog(linger=0.0)
    log.info("second serve")
    second.stop()
    assert out.getvalue() == "first serve\nbetween\nsecond serve\n"


# --- docs -----------------------------------------------------------------------------


def test_protocol_doc_states_the_clients_window() -> None:
    """Found in review. PROTOCOL.md §6.3.2b still said the reference client counts files
    "against its 256 unanswered uploads"; WINDOW is now 512 (§6.3.2a was updated)."""
    text = " ".join((DOCS / "PROTOCOL.md").read_text(encoding="utf-8").split())
    stated = [int(n) for n in re.findall(r"against its (\d+) unanswered uploads", text)]
    assert stated == [pipeline.WINDOW]


# --- pinned: names regex and encode_stored --------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "..\n",  # `$` in the dot-entry lookahead matches before a final newline
        ".\n",
        ".gitkeep\n",
        "a/..\n",
        ".gitkeepx",
        "x/.gitkeep",
        ".ftpdx",
        "a/.../b",
        "a" * 255 + "/" + "b" * 255,
        "a" * 256,
        "/".join(["a"] * 32),
        "/".join(["a"] * 33),
        "/".join(["a" * 127] * 32),  # 4,095 characters: within MAX_PATH_CHARS
        "a//b",
        "a/",
        "\x7f",
        "a\\b",
        "~ !#$%&'()*+,;=@[]^`{|}",
    ],
)
def test_the_plain_ascii_regex_gives_the_verdict_of_the_component_checks(path: str) -> None:
    """Checked: _PLAIN_ASCII_PATH accepts nothing _check_each refuses and vice versa, on the
    edges (a newline after a dot entry, reserved names as prefixes, 255/256, 32/33 deep)."""

    def verdict(check: object) -> tuple[str, str]:
        try:
            return ("ok", check(path))  # type: ignore[operator]
        except BadName as exc:
            return ("bad", str(exc))

    assert verdict(names._check_path) == verdict(names._check_each)


@pytest.mark.parametrize(
    ("name", "size", "sums"),
    [
        ('q"\\\n\u2028\U0001f600.txt', 5, {"md5": "0" * 32}),
        ("a.txt", 5, {"digest": "xxh3-128", "sum": "0" * 32}),
        ("a.txt", 5, {"sum": "0" * 32, "digest": "xxh3-128"}),  # key order is kept
        ("a.txt", 5, {"digest": "x\ud800", "sum": "0" * 32}),  # lone surrogate
        ("\ud800", 5, {"md5": "0" * 32}),
        ("a" * 4097, 5, {"md5": "0" * 32}),
        ("a.txt", True, {"md5": "0" * 32}),
        ("a.txt", (1 << 50) + 1, {"md5": "0" * 32}),
        ("", 5, {"md5": "0" * 32}),
    ],
)
def test_encode_stored_gives_the_bytes_or_the_error_of_encode(
    name: str, size: int, sums: dict[str, str]
) -> None:
    """Checked: byte-for-byte the same frame, or the same LocalProtocolError text."""

    def result(fn: object) -> tuple[str, object]:
        try:
            return ("ok", fn())  # type: ignore[operator]
        except LocalProtocolError as exc:
            return ("error", str(exc))

    assert result(lambda: encode_stored(name, size, sums)) == result(
        lambda: encode("ok", Role.SERVER, name=name, size=size, existed=False, **sums)
    )


# --- pinned: a missing folder, refused at the first look ------------------------------


def test_a_resumable_put_into_a_missing_folder_is_not_found_and_claims_nothing(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Checked: Storage.target refuses a missing folder before any partial is claimed, with
    check_upload's old message; pipelined files around it are still stored in order."""
    src = tmp_path / "src"
    src.mkdir()
    for n in ("a.txt", "b.txt"):
        (src / n).write_bytes(n.encode())
    with daemon.client() as c:
        with pytest.raises(Exception) as info:
            c.put(src / "a.txt", "missing/a.txt", resume=True)
        assert getattr(info.value, "code", None) == "not-found"
        assert "there is no folder 'missing'" in str(info.value)
        outcomes = c.put_many([src / "a.txt", src / "b.txt", src / "a.txt"], ["a", "no/b", "c"])
    assert [getattr(o, "code", "ok") for o in outcomes] == ["ok", "not-found", "ok"]
    assert not list(daemon.staging.glob("*.part"))
