"""Pipelined `upload`s and group commit: every file synced before its ok, replies in order."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ftpc import Client
from ftpc.cli import main as ftpc_main
from ftpd.storage import Entry, Upload
from shared.errors import Exists, FtpError, LocalFileError, QuotaExceeded
from shared.protocol import MAX_INLINE, Role, encode
from tests.conftest import ACCOUNTS, Daemon, Raw
from tests.frames import unchecked_header


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def upload_frame(name: str, data: bytes, **kw: object) -> bytes:
    return encode("upload", Role.CLIENT, name=name, size=len(data), md5=md5(data), **kw) + data


@pytest.fixture
def batches(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every group the storage commits, and a check that each was synced first."""
    sizes: list[int] = []
    storage = daemon.server.storage
    real = storage.commit_many

    def spy(uploads: list[Upload]) -> list[Entry | FtpError]:
        sizes.append(len(uploads))
        return real(uploads)

    monkeypatch.setattr(storage, "commit_many", spy)
    return sizes


def test_pipelined_uploads_are_committed_in_groups_and_answered_in_order(
    daemon: Daemon, batches: list[int]
) -> None:
    files = {f"f{i:03}": os.urandom(i * 100) for i in range(40)}
    with Raw(daemon) as raw:
        raw.login()
        burst = b"".join(upload_frame(n, d) for n, d in files.items())
        raw.sock.sendall(burst + encode("ls", Role.CLIENT))
        replies = [raw.recv() for _ in files]
        assert [(r.type, r["name"], r["md5"]) for r in replies] == [
            ("ok", n, md5(d)) for n, d in files.items()
        ]
        listing = raw.recv()
        assert (listing.type, listing["count"]) == ("listing", 40)
    assert sum(batches) == 40 and max(batches) > 1  # fewer directory syncs than files
    for name, data in files.items():
        assert (daemon.root / name).read_bytes() == data


def test_refused_uploads_keep_the_stream_in_frame(daemon: Daemon) -> None:
    (daemon.root / "taken").write_bytes(b"old")
    with Raw(daemon) as raw:
        raw.sock.sendall(upload_frame("early", b"before login"))
        assert raw.recv()["code"] == "not-authenticated"
        raw.login()
        frames = [
            upload_frame("taken", b"new"),  # exists
            upload_frame("../x", b"x"),  # bad name
            encode("upload", Role.CLIENT, name="bad", size=3, md5=md5(b"abc")) + b"abd",
            upload_frame("taken", b"old"),  # identical: acknowledged, nothing stored
            upload_frame("fine", b"fine"),
        ]
        raw.sock.sendall(b"".join(frames))
        got = [raw.recv() for _ in frames]
        assert [r.get("code", r.type) for r in got] == [
            "exists",
            "bad-name",
            "checksum-mismatch",
            "ok",
            "ok",
        ]
        assert got[3]["existed"] is True and got[4]["existed"] is False
    with Raw(daemon) as reader:
        reader.login("reader")
        reader.sock.sendall(upload_frame("r", b"data") + encode("ls", Role.CLIENT))
        assert reader.recv()["code"] == "permission-denied"
        assert reader.recv().type == "listing"
    assert sorted(p.name for p in daemon.root.iterdir() if p.name != ".ftpd") == ["fine", "taken"]
    assert (daemon.root / "taken").read_bytes() == b"old"
    assert list(daemon.staging.iterdir()) == []


@pytest.mark.parametrize("login", [True, False])
def test_an_upload_over_the_inline_limit_is_a_protocol_error(daemon: Daemon, login: bool) -> None:
    """Refused with its header, before login too: no peer has a larger body read."""
    fields = {"type": "upload", "name": "big", "size": MAX_INLINE + 1, "md5": md5(b"")}
    header = unchecked_header(fields)  # the encoder refuses it, as the decoder does
    with Raw(daemon) as raw:
        if login:
            raw.login()
        raw.sock.sendall(header)
        reply = raw.recv()
        assert (reply["code"], reply.get("fatal")) == ("bad-request", True)
        assert "carries at most 1048576 bytes" in reply["message"]
        assert raw.closed_by_server()


def test_put_many_reports_each_file(daemon: Daemon, client: Client, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    small = [src / f"s{i}" for i in range(30)]
    for i, p in enumerate(small):
        p.write_bytes(os.urandom(i * 37))
    big = src / "big"
    big.write_bytes(os.urandom(MAX_INLINE + 5))  # goes through `put`, in its place
    (daemon.root / "s3").write_bytes(b"someone else's")
    (daemon.root / "s4").write_bytes(small[4].read_bytes())
    seen: list[Path] = []
    paths = [*small[:10], big, src / "missing", *small[10:]]
    outcomes = client.put_many(paths, on_result=lambda p, o: seen.append(p))
    assert seen == paths
    assert isinstance(outcomes[3], Exists)
    assert outcomes[4].existed  # type: ignore[union-attr]
    assert isinstance(outcomes[11], LocalFileError)
    stored = {e.name: e.md5 for e in client.list()}
    for path in [*small, big]:
        if path.name != "s3":
            assert stored[path.name] == md5(path.read_bytes())


def test_quota_counts_uploads_in_flight(daemon: Daemon, tmp_path: Path) -> None:
    daemon.users.set_quota("alice", 5000)
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(4):
        paths.append(src / f"q{i}")
        paths[-1].write_bytes(os.urandom(2000))
    with daemon.client() as c:
        outcomes = c.put_many(paths)
    assert [type(o).__name__ for o in outcomes[2:]] == ["QuotaExceeded", "QuotaExceeded"]
    assert isinstance(outcomes[2], QuotaExceeded)
    assert sorted(p.name for p in daemon.root.iterdir() if p.name != ".ftpd") == ["q0", "q1"]


def test_cli_put_goes_on_past_a_refused_file(daemon: Daemon, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(name.encode() * 100)
    (daemon.root / "b").write_bytes(b"different")
    env = {
        "FTPC_PORT": str(daemon.port),
        "FTPC_USER": "alice",
        "FTPC_PASSWORD": ACCOUNTS["alice"][0],
        "FTPC_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = CliRunner().invoke(ftpc_main, ["put", *(str(src / n) for n in "abc")], env=env)
    assert result.exit_code == 5  # a conflict
    assert "put a:" in result.output and "put c:" in result.output
    assert "1 of 3 files failed; the first, b:" in result.output
    assert (daemon.root / "c").read_bytes() == b"c" * 100
