"""What people see: tables, progress bars (on a terminal only), and listing bodies we refuse."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ftpc.listing import Entry
from ftpc.ui import Bars, format_listing, human_size, listing_json
from shared.errors import RemoteProtocolError
from shared.listing import decode_listing, encode_listing


def test_human_size() -> None:
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(50 << 20) == "50.0 MiB"
    assert human_size(3 << 40) == "3.0 TiB"


def test_listing_table_and_json() -> None:
    entries = [Entry(1, "a b.txt", 2048, 0, "0" * 32), Entry(2, "中文", 1, 0, "f" * 32)]
    table = format_listing(entries).splitlines()
    assert table[0].split() == ["#", "SIZE", "MODIFIED", "MD5", "NAME"]
    assert table[1].startswith("1") and table[1].endswith("a b.txt") and "2.0 KiB" in table[1]
    assert table[2].endswith("中文")
    assert format_listing([]) == "(no files)"
    assert '"name": "中文"' in listing_json(entries)


def test_bars_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    bars = Bars(True, print, files=2, total_bytes=30)
    with bars.file("one", 10) as advance:
        assert advance is not None
        advance(10)
    with bars.file("two", 20) as advance:
        assert advance is not None
        advance(20)
    assert bars.overall is not None and bars.overall.n == 30
    bars.echo("done line")
    bars.close()
    captured = capsys.readouterr()
    assert "done line" in captured.out
    assert "one" in captured.err and "B/s" in captured.err  # tqdm draws on stderr


def test_bars_when_disabled_only_echo(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    bars = Bars(False, lines.append, files=3, total_bytes=10)
    with bars.file("x", 10) as advance:
        assert advance is None
    bars.echo("line")
    bars.close()
    assert lines == ["line"] and capsys.readouterr().err == ""


def test_listing_body_round_trip_with_awkward_names() -> None:
    rows = [
        ("a\u00a0b", 1, 2, "0" * 32),
        ('quote"mark', 0, 0, "1" * 32),
        ("中", 5, 6, "2" * 32),
    ]
    body = encode_listing(rows)
    assert body.count(b"\n") == 3
    assert [(e.name, e.size, e.mtime, e.md5) for e in decode_listing(body)] == rows
    assert [e.index for e in decode_listing(body)] == [1, 2, 3]
    assert decode_listing(b"") == []
    # A line separator inside a name would split a log line or a listing for some readers.
    with pytest.raises(RemoteProtocolError, match="U\\+2028"):
        decode_listing(encode_listing([("a\u2028b", 1, 2, "0" * 32)]))


OK_MD5 = "0" * 32


def _line(**overrides: object) -> bytes:
    import json

    obj: dict[str, object] = {"index": 1, "name": "a", "size": 1, "mtime": 0, "md5": OK_MD5}
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
