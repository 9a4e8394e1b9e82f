"""What people see: tables, progress bars (on a terminal only), and listing bodies we refuse."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ftpc.files import GetResult, PutResult
from ftpc.listing import Entry
from ftpc.report import HumanReporter, JsonReporter
from ftpc.ui import format_listing, human_size
from shared.errors import ChecksumMismatch, NotFound, RemoteProtocolError
from shared.listing import decode_listing, encode_listing


def test_human_size() -> None:
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(50 << 20) == "50.0 MiB"
    assert human_size(3 << 40) == "3.0 TiB"


def test_listing_table_and_json() -> None:
    entries = [
        Entry(1, "a b.txt", 2048, 0, "0" * 32),
        Entry(2, "docs", 0, 0, "", "dir"),
        Entry(3, "中文", 1, 0, "f" * 32),
    ]
    table = format_listing(entries).splitlines()
    assert table[0].split() == ["#", "SIZE", "MODIFIED", "MD5", "NAME"]
    assert table[1].startswith("1") and table[1].endswith("a b.txt") and "2.0 KiB" in table[1]
    assert table[2].endswith(" docs/") and table[2].split()[1] == "-"
    assert table[3].endswith("中文")
    assert format_listing([]) == "(no files)"


def test_bars_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = HumanReporter(True, print)
    reporter.plan("put", 2, 30 << 20)
    one = reporter.start("put", "one", 10 << 20, job=0)
    two = reporter.start("put", "two", 20 << 20, job=1)
    one(10 << 20)
    two(20 << 20)
    assert reporter.overall is not None and reporter.overall.n == 30 << 20
    reporter.outcome("put", "one", PutResult("one", 10 << 20, "0" * 32, False, 0.5), job=0)
    reporter.outcome("put", "two", NotFound("gone"), job=1)
    reporter.close()
    captured = capsys.readouterr()
    assert "put one: 10.0 MiB" in captured.out and "failed two: gone" in captured.out
    assert "1 transferred (10.0 MiB" in captured.out and "1 failed" in captured.out
    assert "one" in captured.err and "B/s" in captured.err  # tqdm draws on stderr
    assert reporter.tally.exit_code == 4


def test_bars_when_disabled_only_echo(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    reporter = HumanReporter(False, lines.append)
    reporter.plan("put", 1, 10)
    reporter.start("put", "x", 10)(10)
    reporter.outcome("put", "x", PutResult("x", 10, "0" * 32, True, 0.1))
    reporter.close()
    assert lines == ["x: already there with md5 " + "0" * 32 + ", nothing sent"]
    assert capsys.readouterr().err == ""
    assert reporter.tally.skipped == 1 and reporter.tally.exit_code == 0


def test_json_events_are_one_object_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    reporter = JsonReporter(out)
    clock = iter([0.0, 0.1, 0.7, 0.8, 2.0])
    monkeypatch.setattr("ftpc.report.time.monotonic", lambda: next(clock, 9.0))
    reporter.plan("get", 2, 100)
    progress = reporter.start("get", "a/b", 100)
    progress(10)  # 0.1 s after the start: too soon for an event
    progress(10)  # 0.7 s: one event
    progress(80)  # complete: the done event says so
    reporter.outcome("get", "a/b", GetResult("a/b", Path("b"), 100, "f" * 32, 0.8))
    reporter.outcome("get", "c", ChecksumMismatch("bad"))
    reporter.close()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["plan", "start", "progress", "done", "error", "summary"]
    assert events[2]["bytes"] == 20
    assert events[3]["md5"] == "f" * 32 and events[3]["path"] == "b"
    assert events[4] == {
        "event": "error",
        "op": "get",
        "name": "c",
        "code": "checksum-mismatch",
        "exit": 6,
        "message": "bad",
    }
    assert events[5]["ok"] == 1 and events[5]["failed"] == 1 and events[5]["exit"] == 6


def test_listing_body_round_trip_with_awkward_names() -> None:
    rows = [
        ("a\u00a0b", 1, 2, "0" * 32, "file"),
        ('quote"mark', 0, 0, "1" * 32, "file"),
        ("sub", 0, 7, "", "dir"),
        ("中", 5, 6, "2" * 32, "file"),
    ]
    body = encode_listing(rows)
    assert body.count(b"\n") == 4
    assert [(e.name, e.size, e.mtime, e.md5, e.kind) for e in decode_listing(body)] == rows
    assert [e.index for e in decode_listing(body)] == [1, 2, 3, 4]
    assert [e.path for e in decode_listing(body, "x/y")][2] == "x/y/sub"
    assert decode_listing(b"") == []
    # A line separator inside a name would split a log line or a listing for some readers.
    with pytest.raises(RemoteProtocolError, match="U\\+2028"):
        decode_listing(encode_listing([("a\u2028b", 1, 2, "0" * 32, "file")]))


OK_MD5 = "0" * 32


def _line(**overrides: object) -> bytes:
    import json

    obj: dict[str, object] = {
        "index": 1,
        "name": "a",
        "size": 1,
        "mtime": 0,
        "md5": OK_MD5,
        "kind": "file",
    }
    obj.update(overrides)
    return json.dumps({k: v for k, v in obj.items() if v is not None}).encode() + b"\n"


def test_a_truthful_line_is_accepted() -> None:
    assert decode_listing(_line())[0].name == "a"


@pytest.mark.parametrize(
    "body",
    [
        _line()[:-1],  # unterminated
        _line(index=2),
        _line(index=True),
        _line(name="../etc"),
        _line(name="cafe\u0301"),  # not NFC
        _line(size=1.5),
        _line(size=True),
        _line(size=-1),
        _line(mtime="yesterday"),
        _line(md5="x"),
        _line(md5=None),
        _line(kind=None),
        _line(kind="link"),
        _line(kind="dir"),  # a folder has no md5 and size 0
        _line(kind="dir", md5="", size=3),
        _line(name="a/b"),
        _line(extra=1),
        b"[1,2]\n",
        b"\xff\n",
        b"not json\n",
    ],
)
def test_a_lying_listing_is_refused(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed listing"):
        decode_listing(body)


def test_bars_are_off_when_stdout_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from ftpc.cli import Settings

    settings = Settings("h", 1, "u", quiet=False, timeout=1)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert settings.bars is False

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdout", Tty())
    assert settings.bars is True
    assert Settings("h", 1, "u", quiet=True, timeout=1).bars is False


def test_listing_state_survives_between_runs(tmp_path: Path) -> None:
    from ftpc.state import ListingState

    state = ListingState("h", 1, "u", tmp_path)
    assert state.load() is None
    entries = [Entry(1, "中", 1, 2, "0" * 32)]
    state.save(entries)
    assert ListingState("h", 1, "u", tmp_path).load() == entries
    assert ListingState("h", 1, "other", tmp_path).load() is None
    state.path.write_text("{broken")
    assert state.load() is None
