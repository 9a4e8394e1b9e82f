"""`uploads`: many small files in one frame, each handled and answered as its own `upload`."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import xxhash

from ftpc import pipeline
from ftpd import handler
from ftpd.transfers import TransferVerbs
from shared.errors import ChecksumMismatch, Exists, QuotaExceeded
from shared.protocol import MAX_FRAME_FILES, MAX_INLINE, NEED_DATA, Decoder, Message, Role, encode
from tests.conftest import Daemon, Raw
from tests.frames import md5, unchecked_header, uploads_frame


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many `upload` and `uploads` requests the daemon handled."""
    seen: Counter[str] = Counter()
    for verb in ("upload", "uploads"):
        real = getattr(TransferVerbs, f"do_{verb}")

        def spy(self: TransferVerbs, msg: Message, real: Any = real, verb: str = verb) -> None:
            seen[verb] += 1
            real(self, msg)

        monkeypatch.setattr(TransferVerbs, f"do_{verb}", spy)
    return seen


def test_each_file_of_a_frame_is_stored_and_answered_in_order(daemon: Daemon) -> None:
    (daemon.root / "d").mkdir()
    files = [("a", b"alpha"), ("d/é 1.txt", os.urandom(5000)), ("empty", b""), ("z", b"z" * 7)]
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(uploads_frame(files) + encode("ls", Role.CLIENT))
        replies = [raw.recv() for _ in files]
        assert [(r.type, r["name"], r["size"], r["md5"]) for r in replies] == [
            ("ok", name, len(data), md5(data)) for name, data in files
        ]
        assert raw.recv().type == "listing"  # after the replies, in request order
    for name, data in files:
        assert (daemon.root / name).read_bytes() == data
    assert list(daemon.staging.iterdir()) == []


def test_one_bad_file_fails_alone_and_the_stream_stays_in_frame(daemon: Daemon) -> None:
    (daemon.root / "taken").write_bytes(b"old")
    (daemon.root / "same").write_bytes(b"same")
    files = [
        ["taken", 3, md5(b"new")],  # exists with other content
        ["../x", 1, md5(b"x")],  # a bad name
        ["bad", 3, md5(b"abc")],  # the bytes sent are abd: mismatch
        ["same", 4, md5(b"same")],  # identical: acknowledged, nothing stored
        ["fine", 4, md5(b"fine")],
    ]
    body = b"new" + b"x" + b"abd" + b"same" + b"fine"
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(
            encode("uploads", Role.CLIENT, files=files, size=len(body))
            + body
            + uploads_frame([("after", b"next frame")])
        )
        got = [raw.recv() for _ in range(len(files) + 1)]
    assert [r.get("code", r.type) for r in got] == [
        "exists",
        "bad-name",
        "checksum-mismatch",
        "ok",
        "ok",
        "ok",
    ]
    assert got[3]["existed"] is True and got[4]["existed"] is False
    assert (daemon.root / "taken").read_bytes() == b"old"
    assert (daemon.root / "fine").read_bytes() == b"fine"
    assert (daemon.root / "after").read_bytes() == b"next frame"
    assert not (daemon.root / "bad").exists() and not (daemon.root.parent / "x").exists()
    assert list(daemon.staging.iterdir()) == []


@pytest.mark.parametrize(
    ("user", "login", "code"),
    [("alice", False, "not-authenticated"), ("reader", True, "permission-denied")],
)
def test_a_refused_frame_gets_one_error_per_file(
    daemon: Daemon, user: str, login: bool, code: str
) -> None:
    files = [("a", b"1"), ("b", b"22"), ("c", b"333")]
    with Raw(daemon) as raw:
        if login:
            raw.login(user)
        raw.sock.sendall(uploads_frame(files) + encode("quit", Role.CLIENT))
        assert [raw.recv().get("code") for _ in files] == [code] * 3
        assert raw.recv().type == "ok"  # the quit: the body was read, the stream is in frame
    assert sorted(p.name for p in daemon.root.iterdir()) == [".ftpd"]


def test_an_unknown_digest_fails_every_file(daemon: Daemon) -> None:
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(
            uploads_frame([("a", b"1"), ("b", b"2")], digest="crc32") + uploads_frame([("c", b"3")])
        )
        replies = [raw.recv() for _ in range(3)]
    assert [r.get("code", r.type) for r in replies] == ["bad-request", "bad-request", "ok"]
    assert "no digest 'crc32'" in replies[0]["message"]
    assert (daemon.root / "c").read_bytes() == b"3"


def test_a_frame_with_another_digest_and_conflict_mode(daemon: Daemon) -> None:
    (daemon.root / "keep").write_bytes(b"old")
    files = [
        ["keep", 3, xxhash.xxh3_128(b"new").hexdigest()],
        ["n", 1, xxhash.xxh3_128(b"n").hexdigest()],
    ]
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(
            encode(
                "uploads", Role.CLIENT, files=files, size=4, digest="xxh3-128", on_conflict="skip"
            )
            + b"newn"
        )
        keep, new = raw.recv(), raw.recv()
    assert keep["skipped"] is True and keep["sum"] == xxhash.xxh3_128(b"old").hexdigest()
    assert (new["name"], new["digest"], new["sum"]) == ("n", "xxh3-128", files[1][2])
    assert (daemon.root / "keep").read_bytes() == b"old"


@pytest.mark.parametrize(
    ("files", "size", "message"),
    [
        ([["a", 2, "0" * 32]], 3, "do not add up"),
        ([["a", MAX_INLINE, "0" * 32], ["b", 1, "0" * 32]], MAX_INLINE + 1, "at most"),
    ],
)
def test_a_frame_whose_sizes_do_not_hold_is_fatal_even_before_login(
    daemon: Daemon, files: list[list[Any]], size: int, message: str
) -> None:
    header = unchecked_header({"type": "uploads", "files": files, "size": size})
    with Raw(daemon) as raw:  # by hand: the encoder refuses such a header, as the decoder does
        raw.sock.sendall(header)
        reply = raw.recv()
        assert (reply["code"], reply.get("fatal")) == ("bad-request", True)
        assert message in reply["message"]
        assert raw.closed_by_server()
    with daemon.client() as c:  # everyone else is still served
        assert c.list() == []


def test_put_many_sends_frames_and_each_file_gets_its_outcome(
    daemon: Daemon, tmp_path: Path, requests: Counter[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(150):
        paths.append(src / f"f{i:03}")
        paths[-1].write_bytes(os.urandom(i * 13))
    (daemon.root / "f005").write_bytes(b"someone else's")
    with daemon.client() as c:
        outcomes = c.put_many(paths)
    assert requests["upload"] == 0
    assert requests["uploads"] == 3  # 64 + 64 + 22: full frames, then the rest
    assert isinstance(outcomes[5], Exists)
    for path, outcome in zip(paths, outcomes, strict=True):
        if path.name != "f005":
            assert (daemon.root / path.name).read_bytes() == path.read_bytes(), path
            assert outcome.checksum == md5(path.read_bytes())  # type: ignore[union-attr]


DEEP = "/".join(["d" * 200] * 15)
"""A folder path of 3,014 characters: two files under it fill a frame's names."""


def deep_uploads(daemon: Daemon, tmp_path: Path, count: int) -> tuple[list[Path], list[str]]:
    """`count` local files n00, n01, ... (each holding its own name), and their names
    under DEEP, made on the server."""
    (daemon.root / DEEP).mkdir(parents=True)
    src = tmp_path / "src"
    src.mkdir()
    paths = [src / f"n{i:02}" for i in range(count)]
    for p in paths:
        p.write_bytes(p.name.encode())
    return paths, [f"{DEEP}/{p.name}" for p in paths]


def test_put_many_splits_frames_at_the_names_limit(
    daemon: Daemon, tmp_path: Path, requests: Counter[str]
) -> None:
    paths, names = deep_uploads(daemon, tmp_path, 5)
    with daemon.client() as c:
        outcomes = c.put_many(paths, names)
    assert all(o.size == 3 for o in outcomes)  # type: ignore[union-attr]
    assert requests["uploads"] == 3  # 2 + 2 + 1
    assert (daemon.root / DEEP / "n04").read_bytes() == b"n04"


@pytest.mark.parametrize(("count", "pad"), [(6, ""), (700, "x" * 196)])
def test_put_many_falls_back_to_one_frame_per_file(
    daemon: Daemon,
    tmp_path: Path,
    requests: Counter[str],
    monkeypatch: pytest.MonkeyPatch,
    count: int,
    pad: str,
) -> None:
    """Without `uploads`, one `upload` frame per file; 700 files with 200-character names are
    more than the window, so replies come back while frames still go out."""
    monkeypatch.setattr(
        handler, "CAPABILITIES", [c for c in handler.CAPABILITIES if c != "uploads"]
    )
    src = tmp_path / "src"
    src.mkdir()
    paths = [src / f"f{i:03}{pad}" for i in range(count)]
    for p in paths:
        p.write_bytes(p.name[:4].encode() * 3)
    with daemon.client() as c:
        assert "uploads" not in c.hello["capabilities"]
        outcomes = c.put_many(paths)
    assert (requests["upload"], requests["uploads"]) == (count, 0)
    assert [o.name for o in outcomes] == [p.name for p in paths]  # type: ignore[union-attr]
    assert (daemon.root / paths[-1].name).read_bytes() == paths[-1].read_bytes()


def test_quota_and_mismatches_inside_frames(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon.users.set_quota("alice", 5000)
    src = tmp_path / "src"
    src.mkdir()
    paths = [src / f"q{i}" for i in range(4)]
    for p in paths:
        p.write_bytes(os.urandom(2000))
    real = pipeline._Frame.add

    def corrupt_q1(self: pipeline._Frame, name: str, data: bytes, checksum: str) -> None:
        real(self, name, data, md5(b"other") if name == "q1" else checksum)

    monkeypatch.setattr(pipeline._Frame, "add", corrupt_q1)
    with daemon.client() as c:
        outcomes = c.put_many(paths)
    assert [type(o).__name__ for o in outcomes] == [
        "PutResult",
        "ChecksumMismatch",
        "PutResult",
        "QuotaExceeded",
    ]
    assert isinstance(outcomes[1], ChecksumMismatch) and isinstance(outcomes[3], QuotaExceeded)
    assert sorted(p.name for p in daemon.root.iterdir() if p.name != ".ftpd") == ["q0", "q2"]


def test_put_many_bounds_the_replies_it_owes_not_only_the_files(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Replies to long names are long: the files in flight are bounded by the bytes of
    their replies too, not only by their count."""
    paths, names = deep_uploads(daemon, tmp_path, 40)
    owed, most = 0, 0
    with daemon.client() as c:
        watch = Decoder(Role.CLIENT)
        real_send, real_reply = c.chan.send_reading, c._reply

        def send(data: bytes | memoryview) -> None:
            nonlocal owed, most
            watch.receive_data(bytes(data))
            for _ in range(2 * MAX_FRAME_FILES + 2):  # a send holds a few frames at most
                if (event := watch.next_event()) is NEED_DATA:
                    break
                if isinstance(event, Message) and event.type == "uploads":
                    owed += len(event["files"])
            most = max(most, owed)
            real_send(data)

        def reply(*types: str) -> Message:
            nonlocal owed
            owed -= 1
            return real_reply(*types)

        c.chan.send_reading = send  # type: ignore[method-assign]
        c._reply = reply  # type: ignore[method-assign]
        outcomes = c.put_many(paths, names)
    assert all(o.size == 3 for o in outcomes)  # type: ignore[union-attr]
    assert 1 < most <= pipeline.REPLY_BYTES // pipeline._reply_size(names[0]) + 1
    assert most < 20
