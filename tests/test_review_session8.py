"""A hostile review of 0166b29 and 7607454: the `uploads` frame (many small files in one
frame, one reply each) on the server, and put_many's frames, window and fallback.

Each test acts as a malicious or buggy peer, or a demanding user: reply counts per frame,
conflicts inside one frame, reservations and staging after every outcome, names (NFC,
folders, links, surrogates), frames pipelined with other requests, a fault mid-frame, and
the client's limits.
"""

from __future__ import annotations

import errno
import logging
import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from ftpd import handler
from ftpd.auth import UserStore
from ftpd.storage import Storage
from shared.errors import BadName, FtpError
from shared.names import MAX_PATH_CHARS, check_path
from shared.protocol import MAX_FRAME_FILES, MAX_FRAME_NAMES, MAX_INLINE, Message, Role, encode
from tests.conftest import Daemon, Raw, start_daemon, stop_daemon, wait_until
from tests.frames import md5, unchecked_header, uploads_frame


def outcome(reply: Message) -> str:
    return str(reply.get("code", reply.type))


def published(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".ftpd" not in p.parts
    )


def assert_settled(daemon: Daemon) -> None:
    """Nothing left in staging, and no byte still reserved for an upload in flight."""
    space = daemon.server.storage.space
    assert wait_until(lambda: space.unwritten == 0 and space.of("alice") == 0)
    assert list(daemon.staging.iterdir()) == []


# --- conflicts inside one frame ----------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "second", "expected", "stored"),
    [
        ("fail", b"other", ["ok", "exists"], b"first"),
        ("fail", b"first", ["ok", "ok"], b"first"),  # the same bytes: already there
        ("overwrite", b"second!", ["ok", "ok"], b"second!"),
        ("rename", b"second!", ["ok", "ok"], b"first"),
        ("skip", b"other", ["ok", "exists"], b"first"),  # skip acts as fail after step 11
    ],
)
def test_the_same_name_twice_in_one_frame(
    daemon: Daemon, mode: str, second: bytes, expected: list[str], stored: bytes
) -> None:
    daemon.users.set_quota("alice", 10_000)
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(
            uploads_frame([("x", b"first"), ("x", second)], on_conflict=mode)
            + encode("quit", Role.CLIENT)
        )
        replies = [raw.recv(), raw.recv()]
        assert raw.recv().type == "ok"  # the quit: exactly two replies for two files
    assert [outcome(r) for r in replies] == expected
    assert (daemon.root / "x").read_bytes() == stored
    if mode == "rename":
        assert [r["name"] for r in replies] == ["x", "x.1"]
        assert (daemon.root / "x.1").read_bytes() == second
    assert_settled(daemon)
    storage = daemon.server.storage
    on_disk = sum(p.stat().st_size for p in daemon.root.iterdir() if p.is_file())
    assert storage.usage("alice") == on_disk


def test_nfc_and_nfd_spellings_in_one_frame_are_one_name(daemon: Daemon) -> None:
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(uploads_frame([(nfd, b"one"), (nfc, b"two"), (nfd, b"one")]))
        replies = [raw.recv() for _ in range(3)]
    assert [outcome(r) for r in replies] == ["ok", "exists", "ok"]
    assert replies[0]["name"] == nfc and replies[2]["name"] == nfc
    assert published(daemon.root) == [nfc]
    assert (daemon.root / nfc).read_bytes() == b"one"
    assert_settled(daemon)


def test_entries_that_overlap_folders(daemon: Daemon) -> None:
    (daemon.root / "d").mkdir()
    files = [
        ("d", b"a file where a folder is"),
        ("d/x", b"inside"),
        ("new", b"a file"),
        ("new/y", b"under a file staged in this frame"),
        ("nofolder/z", b"z"),
        ("d/x/deeper", b"under a file"),
    ]
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(uploads_frame(files) + encode("ls", Role.CLIENT, name="d"))
        replies = [raw.recv() for _ in files]
        listing = raw.recv()
    assert [outcome(r) for r in replies] == [
        "exists",
        "ok",
        "ok",
        "not-found",
        "not-found",
        "not-found",
    ]
    assert listing.type == "listing" and listing["count"] == 1
    assert published(daemon.root) == ["d/x", "new"]
    assert_settled(daemon)


def test_links_in_the_root_lead_nowhere_outside(daemon: Daemon, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"untouched")
    (daemon.root / "link").symlink_to(outside / "victim")
    (daemon.root / "dirlink").symlink_to(outside)
    files = [("link", b"evil"), ("dirlink/victim", b"evil"), ("dirlink/new", b"evil")]
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(
            uploads_frame(files, on_conflict="overwrite") + encode("quit", Role.CLIENT)
        )
        replies = [raw.recv() for _ in files]
        assert raw.recv().type == "ok"
    assert [outcome(r) for r in replies] == ["exists", "not-found", "not-found"]
    assert (outside / "victim").read_bytes() == b"untouched"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert_settled(daemon)


def test_hostile_names_are_refused_one_by_one(daemon: Daemon) -> None:
    """Names the encoder would not even build: a lone surrogate, controls, line separators,
    reserved names, a fullwidth solidus, a climb out of the root."""
    names = [
        "\ud800",
        "a\nb",
        "a\u2028b",
        ".ftpd/staging/x.part",
        ".gitkeep",
        "a\uff0fb",
        "../up",
        "d//x",
        "ok",
    ]
    entries = [[n, 1, md5(b"z")] for n in names]
    body = b"z" * len(names)
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(
            unchecked_header({"type": "uploads", "files": entries, "size": len(body)})
            + body
            + encode("quit", Role.CLIENT)
        )
        replies = [raw.recv() for _ in names]
        assert raw.recv().type == "ok"
    assert [outcome(r) for r in replies] == ["bad-name"] * (len(names) - 1) + ["ok"]
    assert published(daemon.root) == ["ok"]
    assert not (daemon.root.parent / "up").exists()
    assert_settled(daemon)


# --- whole-frame refusals and limits ------------------------------------------------


def test_overwrite_contradicting_on_conflict_refuses_each_file(daemon: Daemon) -> None:
    files = [("a", b"1"), ("b", b"2"), ("c", b"3")]
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(
            uploads_frame(files, overwrite=True, on_conflict="rename")
            + uploads_frame([("d", b"4")])
            + encode("quit", Role.CLIENT)
        )
        replies = [raw.recv() for _ in range(4)]
        assert raw.recv().type == "ok"
    assert [outcome(r) for r in replies] == ["bad-request"] * 3 + ["ok"]
    assert published(daemon.root) == ["d"]


def test_a_frame_at_every_limit_and_one_past_each(daemon: Daemon) -> None:
    names = [f"{i:02}" + "n" * (MAX_FRAME_NAMES // MAX_FRAME_FILES - 2) for i in range(64)]
    assert sum(map(len, names)) == MAX_FRAME_NAMES
    files = [(n, b"") for n in names[:-1]] + [(names[-1], b"x" * (MAX_INLINE))]
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(uploads_frame(files) + encode("quit", Role.CLIENT))
        replies = [raw.recv() for _ in files]
        assert raw.recv().type == "ok"
    assert [outcome(r) for r in replies] == ["ok"] * MAX_FRAME_FILES
    assert (daemon.root / names[-1]).stat().st_size == MAX_INLINE
    for entries in (
        [[f"f{i}", 0, md5(b"")] for i in range(MAX_FRAME_FILES + 1)],  # 65 files
        [["a" * 4096, 0, md5(b"")], ["b" * 4096, 0, md5(b"")], ["c", 0, md5(b"")]],
        [],
    ):
        with Raw(daemon) as raw:
            raw.login()
            raw.sock.sendall(unchecked_header({"type": "uploads", "files": entries, "size": 0}))
            reply = raw.recv()
            assert (reply["code"], reply.get("fatal")) == ("bad-request", True)
            assert raw.closed_by_server()
    assert_settled(daemon)


def test_a_frame_of_empty_files_only(daemon: Daemon) -> None:
    files = [(f"e{i}", b"") for i in range(MAX_FRAME_FILES)]
    with Raw(daemon) as raw:
        raw.login()
        # Back to back: the second frame finds the first one's files staged, not stored.
        raw.sock.sendall(uploads_frame(files) + uploads_frame(files))
        first = [raw.recv() for _ in range(2 * len(files))]
        raw.sock.sendall(uploads_frame(files) + encode("ls", Role.CLIENT))
        again = [raw.recv() for _ in files]
        listing = raw.recv()
    assert all(r.type == "ok" and r["size"] == 0 and not r["existed"] for r in first)
    assert all(r.type == "ok" and r["existed"] for r in again)  # stored: nothing sent
    assert listing["count"] == MAX_FRAME_FILES
    assert_settled(daemon)


@pytest.mark.parametrize("user", [None, "reader"])
@pytest.mark.parametrize(
    ("entries", "size"),
    [
        ([["a", 1, "0" * 32]], 2),  # sizes that do not add up
        ([["a", MAX_INLINE, "0" * 32], ["b", 1, "0" * 32]], MAX_INLINE + 1),  # over 1 MiB
    ],
)
def test_a_malformed_frame_is_fatal_before_login_and_permission(
    daemon: Daemon, user: str | None, entries: list[list[Any]], size: int
) -> None:
    """§6.3.2b: a frame whose sizes do not add up, or over 1 MiB, is a fatal protocol error,
    found with the header, before login and permission are checked. (It was found only in
    the handler, so a peer not logged in, or without `w`, had any `size` it named read.)

    Only the header is sent: the reply must come without the body. (Sending the body too
    raced the server's close, and failed CI once with a broken pipe.)"""
    with Raw(daemon) as raw:
        if user:
            raw.login(user)
        raw.sock.sendall(unchecked_header({"type": "uploads", "files": entries, "size": size}))
        reply = raw.recv()
        assert (reply["code"], reply.get("fatal")) == ("bad-request", True), reply.fields
        assert raw.closed_by_server()


# --- pipelining with other requests -------------------------------------------------


def test_frames_uploads_and_other_requests_pipelined_in_order(daemon: Daemon) -> None:
    one = encode("upload", Role.CLIENT, name="single", size=3, md5=md5(b"one")) + b"one"
    stream = (
        uploads_frame([("a", b"alpha"), ("b", b"beta")])
        + one
        + encode("get", Role.CLIENT, name="b")  # a file of a frame not yet committed
        + uploads_frame([("c", b"gamma"), ("a", b"other")])
        + encode("mkdir", Role.CLIENT, name="dir")
        + uploads_frame([("dir/d", b"delta")])
        + encode("rm", Role.CLIENT, name="single")
        + encode("ls", Role.CLIENT)
        + uploads_frame([("after-ls", b"")])
        + encode("quit", Role.CLIENT)
    )
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(stream)
        got: list[str] = []
        for _ in range(50):  # well over the replies owed; the quit's `ok` ends them
            msg = raw.recv()
            got.append(outcome(msg) + (":" + msg["name"] if "name" in msg.fields else ""))
            if msg.type in ("file", "listing"):
                body = bytearray()
                raw.chan.recv_body(body.extend)
                if msg.type == "file":
                    assert bytes(body) == b"beta"
            if msg.type == "ok" and not msg.fields:  # the quit's
                break
        else:
            pytest.fail(f"no reply to quit among {got}")
        assert raw.closed_by_server()
    assert got == [
        "ok:a",
        "ok:b",
        "ok:single",
        "file:b",
        "ok:c",
        "exists",
        "ok:dir",
        "ok:dir/d",
        "ok:single",
        "listing",
        "ok:after-ls",
        "ok",
    ]
    assert_settled(daemon)


def test_many_frames_back_to_back_past_a_full_batch(daemon: Daemon) -> None:
    """Five frames of 64 (320 files, past the batch's 256) in one send: one reply each."""
    frames = [
        [(f"f{n}-{i:02}", f"{n}.{i}".encode()) for i in range(MAX_FRAME_FILES)] for n in range(5)
    ]
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(b"".join(uploads_frame(f) for f in frames) + encode("quit", Role.CLIENT))
        names = [raw.recv()["name"] for _ in range(5 * MAX_FRAME_FILES)]
        assert raw.recv().fields == {}  # the quit's ok
    assert names == [name for f in frames for name, _ in f]
    assert len(published(daemon.root)) == 5 * MAX_FRAME_FILES
    assert_settled(daemon)


def test_a_connection_cut_mid_body_leaves_nothing(daemon: Daemon) -> None:
    data = os.urandom(200_000)
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(uploads_frame([("held", b"held")]))
        assert raw.recv().type == "ok"
        whole = uploads_frame([("a", data[:100_000]), ("b", data[100_000:])])
        raw.sock.sendall(whole[: len(whole) - 50_000])
    assert wait_until(lambda: not daemon.server._sessions)
    assert published(daemon.root) == ["held"]
    assert_settled(daemon)


def test_a_frame_sent_whole_then_the_connection_cut_is_stored(daemon: Daemon) -> None:
    files = [(f"k{i}", os.urandom(100)) for i in range(10)]
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(uploads_frame(files))
    assert wait_until(lambda: not daemon.server._sessions)
    assert published(daemon.root) == sorted(n for n, _ in files)
    assert_settled(daemon)


def test_an_internal_failure_mid_frame_answers_the_files_before_it_first(
    tmp_path: Path,
    users: UserStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected error (here EIO creating a staging file) on the second file of a frame
    ends the session with a fatal internal-error. The first file is committed all the same
    (_settle), so its `ok` is owed and must come before the fatal error, in request order."""
    caplog.set_level(logging.INFO, logger="ftpd")
    real = Storage.begin_upload

    def failing(self: Storage, name: str, *args: Any, **kw: Any) -> Any:
        if name == "boom":
            raise OSError(errno.EIO, "Input/output error")
        return real(self, name, *args, **kw)

    monkeypatch.setattr(Storage, "begin_upload", failing)
    server, thread = start_daemon(tmp_path / "root", users)
    daemon = Daemon(server, server.storage.root, users, *server.address)
    try:
        with Raw(daemon) as raw:
            raw.login()
            raw.sock.sendall(uploads_frame([("a", b"alpha"), ("boom", b"x"), ("c", b"gamma")]))
            first, second = raw.recv(), raw.recv()
            assert raw.closed_by_server()
        assert published(daemon.root) == ["a"]
        assert (outcome(first), first.get("name")) == ("ok", "a"), first.fields
        assert (second["code"], second.get("fatal")) == ("internal-error", True)
        assert_settled(daemon)
    finally:
        stop_daemon(server, thread)


# --- NFC expansion past the protocol's name limit ----------------------------------


def make_folders(root: Path, parts: list[str]) -> int:
    """Nested folders `parts` under `root`, one at a time (the path may pass PATH_MAX); the
    descriptor of the deepest, which the caller closes."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for part in parts:
        os.mkdir(part, dir_fd=fd)
        child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    return fd


def test_a_numbered_variant_never_passes_the_path_limit(daemon: Daemon) -> None:
    """`rename` adds `.1` to a taken name: at a path of 4,095 characters that would make a
    name no reply can carry, so the stem gives way instead."""
    parts = ["a" * 127] * 32
    name = "/".join(parts)
    assert len(name) == MAX_PATH_CHARS - 1
    deepest = make_folders(daemon.root, parts[:-1])
    try:
        with open(os.open(parts[-1], os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=deepest), "wb") as f:
            f.write(b"taken")
        with Raw(daemon) as raw:
            raw.login()
            raw.sock.sendall(uploads_frame([(name, b"new")], on_conflict="rename"))
            reply = raw.recv()
        assert (reply.type, len(reply["name"])) == ("ok", MAX_PATH_CHARS), reply.fields
        stored_as = reply["name"].rpartition("/")[2]
        assert stored_as == "a" * 126 + ".1"  # one character of the stem gave way
        with open(os.open(stored_as, os.O_RDONLY, dir_fd=deepest), "rb") as f:
            assert f.read() == b"new"
    finally:
        os.close(deepest)
    assert_settled(daemon)


def test_a_name_whose_nfc_form_passes_4096_characters_is_refused_not_fatal(
    daemon: Daemon,
) -> None:
    """U+FB2C is 1 character, and 3 in NFC. A path of 4,095 characters that is 5,695 in NFC
    passes every check; its `ok` cannot be encoded (name is at most 4,096 characters), so
    the session dies with a fatal bad-request although the file was stored."""
    part = "a" * 102 + "\ufb2c" * 25  # 127 characters; 252 bytes of UTF-8 in NFC
    parts = [part] * 32
    name = "/".join(parts)
    assert len(name) <= 4096 < len(unicodedata.normalize("NFC", name))
    os.close(make_folders(daemon.root, [unicodedata.normalize("NFC", p) for p in parts[:-1]]))
    with Raw(daemon) as raw:
        raw.login()
        raw.sock.sendall(
            uploads_frame([(name, b"deep"), ("next", b"next")]) + encode("quit", Role.CLIENT)
        )
        first = raw.recv()
        assert outcome(first) == "bad-name", first.fields
        assert "longer than 4096 characters in NFC" in first["message"]
        assert [outcome(raw.recv()), outcome(raw.recv())] == ["ok", "ok"]
    # (published() cannot walk a path longer than PATH_MAX: check the two names directly.)
    assert (daemon.root / "next").read_bytes() == b"next"
    with pytest.raises(BadName):
        check_path(name)  # refused on both sides, so no byte of it was ever stored
    assert_settled(daemon)


# --- the client -------------------------------------------------------------------


def test_put_many_with_a_path_too_long_for_the_protocol(daemon: Daemon, tmp_path: Path) -> None:
    """A path of 32 folders of 200 characters passes check_path but not the protocol's
    4,096 characters: that file should fail alone, and the session go on."""
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(300):
        paths.append(src / f"p{i:03}")
        paths[-1].write_bytes(b"x" * (i % 7))
    names = [p.name for p in paths]
    names[299] = "/".join(["d" * 200] * 30) + "/long"
    with daemon.client() as c:
        try:
            outcomes: list[Any] = c.put_many(paths, names)
        except FtpError as exc:  # leaves 256 replies unread on a live connection
            pytest.fail(f"put_many raised {exc!r}; connected={c.connected}")
        assert c.list() is not None  # the stream is still in frame
    assert isinstance(outcomes[299], FtpError)
    assert all(not isinstance(o, FtpError) for o in outcomes[:299])
    assert len(published(daemon.root)) == 299


def test_put_many_without_any_pipelining_falls_back_to_put(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        handler, "CAPABILITIES", [c for c in handler.CAPABILITIES if c not in ("upload", "uploads")]
    )
    src = tmp_path / "src"
    src.mkdir()
    paths = [src / f"f{i}" for i in range(5)]
    for i, p in enumerate(paths):
        p.write_bytes(b"y" * i)
    (daemon.root / "f3").write_bytes(b"different")
    with daemon.client() as c:
        outcomes: list[Any] = c.put_many(paths, on_conflict="rename")
        assert c.list() is not None
    assert [o.name for o in outcomes] == ["f0", "f1", "f2", "f3.1", "f4"]
    assert (daemon.root / "f3").read_bytes() == b"different"


def test_put_many_empty_files_unicode_names_and_duplicates(daemon: Daemon, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    nfd = "re\u0301sume\u0301"
    paths = [src / "e0", src / "e1", src / "u", src / "dup1", src / "dup2", src / "big"]
    for p in paths[:2]:
        p.write_bytes(b"")
    paths[2].write_bytes(b"unicode")
    paths[3].write_bytes(b"first")
    paths[4].write_bytes(b"second")
    paths[5].write_bytes(os.urandom(MAX_INLINE + 1))  # through `put`, in its turn
    names = ["e0", "e1", nfd, "dup", "dup", "dup"]
    with daemon.client() as c:
        outcomes: list[Any] = c.put_many(paths, names, on_conflict="rename")
        assert c.list() is not None
    assert [o.name for o in outcomes] == [
        "e0",
        "e1",
        unicodedata.normalize("NFC", nfd),
        "dup",
        "dup.1",
        "dup.2",
    ]
    assert [o.size for o in outcomes[:2]] == [0, 0]
    assert (daemon.root / "dup.2").read_bytes() == paths[5].read_bytes()
    assert_settled(daemon)


def test_put_many_ends_promptly_when_the_server_fails_mid_frame(
    tmp_path: Path,
    users: UserStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fatal error in the middle of the replies owed: put_many raises at once (the
    connection is dropped), it does not wait out its timeout for replies that never come."""
    caplog.set_level(logging.INFO, logger="ftpd")
    real = Storage.begin_upload

    def failing(self: Storage, name: str, *args: Any, **kw: Any) -> Any:
        if name == "f050":
            raise OSError(errno.EIO, "Input/output error")
        return real(self, name, *args, **kw)

    monkeypatch.setattr(Storage, "begin_upload", failing)
    server, thread = start_daemon(tmp_path / "root", users)
    daemon = Daemon(server, server.storage.root, users, *server.address)
    src = tmp_path / "src"
    src.mkdir()
    paths = [src / f"f{i:03}" for i in range(120)]
    for p in paths:
        p.write_bytes(p.name.encode())
    seen: list[str] = []
    try:
        with daemon.client() as c:
            with pytest.raises(FtpError) as raised:
                c.put_many(paths, on_result=lambda path, _: seen.append(path.name))
            assert not c.connected
        assert raised.value.code == "internal-error"
        # Every file before the failing one was answered, in order, then the failing one
        # got the fatal error, which ended the call: no read after it.
        assert seen == [p.name for p in paths[:51]]
        assert all((daemon.root / p.name).read_bytes() == p.read_bytes() for p in paths[:50])
        assert "internal error" in caplog.text
    finally:
        stop_daemon(server, thread)
