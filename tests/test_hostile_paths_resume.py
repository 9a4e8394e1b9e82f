"""A hostile pass over folders, conflict modes and resumable transfers, against a real daemon.

Each test is an attack and the guarantee it checks. The pass found eight that got through
(a new partial claimed by a second session before it was marked in use; links, FIFOs and
absurd sidecars in staging; a lying listing left connected; two downloads sharing a part
file); they are fixed, and their tests now pass like the rest.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

import ftpd.partials
from ftpc import Client
from ftpc.files import resume_part
from ftpc.plan import plan_get
from ftpd.auth import UserStore
from shared import digests
from shared.errors import LocalFileError, RemoteProtocolError
from shared.listing import Entry, decode_listing, encode_listing
from shared.protocol import Role, encode
from tests.conftest import Daemon, Raw, fake_hello, fake_server, wait_until
from tests.hostile_resume_helpers import (
    GatedOs,
    get,
    md5,
    outside_snapshot,
    own_daemon,
    plant_partial,
    put,
)

SIZE = 256 << 10


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A tree outside the root, with the same shape as what the attacks ask for."""
    top = tmp_path / "outside"
    (top / "b" / "c").mkdir(parents=True)
    (top / "secret").write_bytes(b"secret")
    (top / "b" / "secret").write_bytes(b"secret")
    (top / "b" / "c" / "secret").write_bytes(b"secret")
    return top


def prefixed(payload: bytes) -> bytes:
    """A header frame written by hand, past `encode`'s own checks."""
    return struct.pack("!I", len(payload)) + payload


def _staged(daemon: Daemon, ext: str = "part") -> list[Path]:
    return sorted(daemon.staging.glob(f"*.{ext}"))


def _idle(daemon: Daemon) -> bool:
    return not daemon.server.storage.partials._active


# --- paths: links at any depth, swaps, odd spellings, depth ----------------------------------


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_a_link_at_any_depth_leads_nowhere(daemon: Daemon, outside: Path, depth: int) -> None:
    """a/b/c with the component at `depth` a link to the matching folder outside."""
    (daemon.root / "a" / "b" / "c").mkdir(parents=True)
    real = daemon.root.joinpath(*["a", "b", "c"][: depth + 1])
    target = outside.joinpath(*["b", "c"][:depth]) if depth else outside
    os.rename(real, real.with_name("moved"))
    real.symlink_to(target, target_is_directory=True)
    before = outside_snapshot(outside)
    inner = "/".join(["a", "b", "c"][: depth + 1])
    with Raw(daemon) as raw:
        raw.login()
        for verb, fields in (
            ("ls", {"name": inner}),
            ("get", {"name": f"{inner}/secret"}),
            ("rm", {"name": f"{inner}/secret"}),
            ("mkdir", {"name": f"{inner}/new"}),
            ("mkdir", {"name": f"{inner}/new/deeper", "parents": True}),
        ):
            raw.send(verb, **fields)
            answer = raw.recv()
            assert answer.type == "error" and answer["code"] in ("not-found", "exists"), verb
        refusal = put(raw, f"{inner}/secret", b"overwritten", on_conflict="overwrite")
        assert refusal["code"] in ("not-found", "exists")
        refusal = put(raw, f"{inner}/fresh", b"new", resume=True)
        assert refusal["code"] in ("not-found", "exists")
        # the session goes on
        assert put(raw, "ok.txt", b"fine").type == "ok"
    assert outside_snapshot(outside) == before


def test_a_folder_swapped_for_a_link_mid_upload_stores_nothing_outside(
    daemon: Daemon, outside: Path
) -> None:
    (daemon.root / "a").mkdir()
    data = os.urandom(SIZE)
    before = outside_snapshot(outside)
    with Raw(daemon) as raw:
        raw.login()
        raw.send("put", name="a/secret", size=len(data), md5=md5(data), on_conflict="overwrite")
        assert raw.recv().type == "continue"
        os.rename(daemon.root / "a", daemon.root / "a-moved")
        (daemon.root / "a").symlink_to(outside, target_is_directory=True)
        raw.chan.send_raw(encode("data", Role.CLIENT, size=len(data)) + data)
        answer = raw.recv()
        assert answer.type == "error" and answer["code"] == "not-found"
        assert put(raw, "ok.txt", b"fine").type == "ok"
    assert outside_snapshot(outside) == before
    assert list((daemon.root / "a-moved").iterdir()) == []
    assert wait_until(lambda: _staged(daemon) == [])


@pytest.mark.parametrize(
    "path",
    [
        "a/../x",
        "a/./x",
        "a//x",
        "/a/x",
        "a/x/",
        "a\\..\\x",
        "a/\uff0e\uff0e/x",  # FULLWIDTH FULL STOP x2: NFKC ".."
        "a/\u2025/x",  # TWO DOT LEADER
        "a/\u2024\u2024/x",
        "a\uff0fx",  # FULLWIDTH SOLIDUS
        "a/\ufe68x",  # SMALL REVERSE SOLIDUS
        "a/.ftpd/x",
        ".ftpd/staging/x",
        "a/.gitkeep",
        "/".join(["d"] * 33),
    ],
)
def test_paths_that_spell_a_separator_or_dot_entry_are_refused(
    daemon: Daemon, outside: Path, path: str
) -> None:
    (daemon.root / "a").mkdir()
    with Raw(daemon) as raw:
        raw.login()
        for verb, fields in (
            ("mkdir", {"name": path, "parents": True}),
            ("get", {"name": path}),
            ("rm", {"name": path}),
        ):
            raw.send(verb, **fields)
            answer = raw.recv()
            assert answer.type == "error" and answer["code"] == "bad-name", verb
        assert put(raw, path, b"x", resume=True)["code"] == "bad-name"
        assert put(raw, path, b"x", checksum=False)["code"] == "bad-name"
    on_disk = {str(p.relative_to(daemon.root)) for p in daemon.root.rglob("*")}
    assert {p for p in on_disk if not p.startswith(".ftpd")} == {"a"}


def test_thirty_two_levels_work_and_thirty_three_do_not(daemon: Daemon) -> None:
    deep = "/".join(f"d{i}" for i in range(31))
    with Raw(daemon) as raw:
        raw.login()
        raw.send("mkdir", name=deep, parents=True)
        assert raw.recv()["created"] is True
        assert put(raw, f"{deep}/f", b"deep", resume=True)["name"] == f"{deep}/f"
        header, body = get(raw, f"{deep}/f")
        assert header.type == "file" and body == b"deep"
        assert put(raw, f"{deep}/f/g", b"x")["code"] == "bad-name"
        raw.send("mkdir", name=f"{deep}/d31/d32", parents=True)
        assert raw.recv()["code"] == "bad-name"
    assert not (daemon.root / deep / "d31").exists()


def test_mkdir_p_through_a_file_or_a_link_is_refused(daemon: Daemon, outside: Path) -> None:
    (daemon.root / "file").write_bytes(b"keep")
    (daemon.root / "link").symlink_to(outside, target_is_directory=True)
    before = outside_snapshot(outside)
    with Raw(daemon) as raw:
        raw.login()
        for path in ("file/x", "file/x/y", "link/x", "link/b/x", "file", "link"):
            raw.send("mkdir", name=path, parents=True)
            answer = raw.recv()
            assert answer.type == "error" and answer["code"] in ("exists", "not-found"), path
    assert (daemon.root / "file").read_bytes() == b"keep"
    assert outside_snapshot(outside) == before


def test_mkdir_p_races_of_the_same_deep_path_all_succeed_once(daemon: Daemon) -> None:
    path = "/".join(f"r{i}" for i in range(20))
    created: list[bool] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with Raw(daemon) as raw:
                raw.login()
                raw.send("mkdir", name=path, parents=True)
                answer = raw.recv()
                assert answer.type == "ok", answer.fields
                created.append(answer["created"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors and len(created) == 6
    assert created.count(True) == 1
    assert (daemon.root / path).is_dir()


# --- conflicts ---------------------------------------------------------------------------


def test_two_renames_of_one_name_racing_keep_every_version(daemon: Daemon) -> None:
    (daemon.root / "f.txt").write_bytes(b"first")
    one, two = os.urandom(SIZE), os.urandom(SIZE)
    with Raw(daemon) as a, Raw(daemon) as b:
        a.login()
        b.login()
        for raw, data in ((a, one), (b, two)):
            raw.send("put", name="f.txt", size=SIZE, md5=md5(data), on_conflict="rename")
            assert raw.recv().type == "continue"
        for raw, data in ((a, one), (b, two)):
            raw.chan.send_raw(encode("data", Role.CLIENT, size=SIZE) + data)
        names = {a.recv()["name"], b.recv()["name"]}
    assert names == {"f.1.txt", "f.2.txt"}
    stored = {p.name: p.read_bytes() for p in daemon.root.glob("f*.txt")}
    assert stored["f.txt"] == b"first"
    assert {stored["f.1.txt"], stored["f.2.txt"]} == {one, two}


@pytest.mark.parametrize(
    ("user", "mode", "checksum", "expect"),
    [
        ("writer", "overwrite", True, "permission-denied"),
        ("writer", "overwrite", False, "exists"),
        ("writer", "skip", True, "skipped"),
        ("writer", "skip", False, "exists"),
        ("writer", "fail", True, "exists"),
        ("alice", "skip", True, "skipped"),
        ("alice", "overwrite", True, "replaced"),
        ("alice", "overwrite", False, "replaced"),
    ],
)
def test_skip_and_overwrite_with_and_without_d(
    daemon: Daemon, user: str, mode: str, checksum: bool, expect: str
) -> None:
    (daemon.root / "f").write_bytes(b"stored")
    with Raw(daemon) as raw:
        raw.login(user)
        answer = put(raw, "f", b"other", checksum=checksum, on_conflict=mode)
        if expect == "skipped":
            assert answer["skipped"] is True and answer["md5"] == md5(b"stored")
        elif expect == "replaced":
            assert answer.type == "ok" and answer["md5"] == md5(b"other")
        else:
            assert answer.type == "error" and answer["code"] == expect
            assert put(raw, "g", b"session goes on").type == "ok"
    want = b"other" if expect == "replaced" else b"stored"
    assert (daemon.root / "f").read_bytes() == want


@pytest.mark.parametrize(
    ("on_conflict", "expect"),
    [("skip", "bad-request"), ("rename", "bad-request"), ("fail", "ok"), ("overwrite", "ok")],
)
def test_overwrite_true_with_on_conflict(daemon: Daemon, on_conflict: str, expect: str) -> None:
    (daemon.root / "f").write_bytes(b"stored")
    with Raw(daemon) as raw:
        raw.login()
        answer = put(raw, "f", b"other", overwrite=True, on_conflict=on_conflict)
        if expect == "ok":
            assert answer.type == "ok" and answer["name"] == "f"
        else:
            assert answer["code"] == expect and not answer.get("fatal")
            assert put(raw, "g", b"session goes on").type == "ok"
    want = b"other" if expect == "ok" else b"stored"
    assert (daemon.root / "f").read_bytes() == want


@pytest.mark.parametrize("mode", ["overwrite", "skip"])
def test_a_file_appearing_mid_upload_is_never_replaced_without_d(daemon: Daemon, mode: str) -> None:
    data = os.urandom(SIZE)
    with Raw(daemon) as raw:
        raw.login("writer")
        raw.send("put", name="f", size=SIZE, md5=md5(data), on_conflict=mode, resume=True)
        assert raw.recv().type == "continue"
        (daemon.root / "f").write_bytes(b"theirs")
        raw.chan.send_raw(encode("data", Role.CLIENT, size=SIZE) + data)
        assert raw.recv()["code"] == "exists"
    assert (daemon.root / "f").read_bytes() == b"theirs"
    assert wait_until(lambda: _staged(daemon) == [] and _staged(daemon, "json") == [])


# --- resume: the server ---------------------------------------------------------------------


def _interrupt(daemon: Daemon, data: bytes, cut: int, name: str = "big.bin", **kw: Any) -> None:
    user = kw.pop("user", "alice")
    with Raw(daemon) as raw:
        raw.login(user)
        raw.send("put", name=name, size=len(data), resume=True, **kw)
        assert raw.recv().type == "continue"
        raw.chan.send_raw(encode("data", Role.CLIENT, size=len(data)) + data[:cut])
    assert wait_until(
        lambda: any(p.stat().st_size == cut for p in _staged(daemon)) and _idle(daemon)
    )


@pytest.mark.parametrize("offset", [1, SIZE, SIZE + 1])
def test_a_data_offset_not_offered_is_fatal_and_stores_nothing(daemon: Daemon, offset: int) -> None:
    data = os.urandom(SIZE)
    with Raw(daemon) as raw:
        raw.login()
        raw.send("put", name="f", size=SIZE, md5=md5(data), resume=True)
        assert "offset" not in raw.recv().fields
        raw.send("data", size=max(0, SIZE - offset), offset=offset)
        answer = raw.recv()
        assert answer["code"] == "bad-request" and answer["fatal"]
    assert wait_until(lambda: _staged(daemon) == [] and _staged(daemon, "json") == [])
    assert not (daemon.root / "f").exists()


def test_an_offset_on_the_put_itself_is_fatal(daemon: Daemon) -> None:
    with Raw(daemon) as raw:
        raw.login()
        frame = {"type": "put", "name": "f", "size": 10, "md5": md5(b"0123456789"), "offset": 5}
        raw.chan.send_raw(prefixed(json.dumps(frame).encode()))
        answer = raw.recv()
        assert answer["code"] == "bad-request" and answer["fatal"]
    assert not (daemon.root / "f").exists()


def test_a_client_lying_about_the_prefix_gets_a_mismatch_and_no_splice(daemon: Daemon) -> None:
    old = os.urandom(SIZE)
    _interrupt(daemon, old, SIZE // 2)
    new = os.urandom(SIZE)
    with Raw(daemon) as raw:
        raw.login()
        raw.send("put", name="big.bin", size=SIZE, md5=md5(new), resume=True)
        offer = raw.recv()
        assert offer["offset"] == SIZE // 2 and offer["prefix"] == md5(old[: SIZE // 2])
        rest = new[SIZE // 2 :]
        raw.chan.send_raw(encode("data", Role.CLIENT, size=len(rest), offset=SIZE // 2) + rest)
        assert raw.recv()["code"] == "checksum-mismatch"
        # and the spliced bytes' own checksum is no better: there is nothing left to resume
        raw.send("put", name="big.bin", size=SIZE, md5=md5(new), resume=True)
        assert "offset" not in raw.recv().fields
        raw.chan.send_raw(encode("data", Role.CLIENT, size=SIZE) + new)
        assert raw.recv().type == "ok"
    assert (daemon.root / "big.bin").read_bytes() == new


def test_another_size_or_digest_or_md5_does_not_resume_the_partial(daemon: Daemon) -> None:
    data = os.urandom(SIZE)
    _interrupt(daemon, data, SIZE // 2, md5=md5(data))
    for fields in (
        {"size": SIZE + 1},
        {"size": SIZE, "md5": md5(b"other")},
        {"size": SIZE, "digest": "xxh3-128"},
        {"size": SIZE, "name": "big.bin.other"},
    ):
        with Raw(daemon) as raw:
            raw.login()
            raw.send("put", **{"name": "big.bin", "resume": True, **fields})
            offer = raw.recv()
            assert offer.type == "continue" and "offset" not in offer.fields, fields
        # hung up: kept as a partial of its own
        assert wait_until(lambda: _idle(daemon))
    with Raw(daemon) as raw:
        raw.login("writer")  # another account, same everything
        raw.send("put", name="big.bin", size=SIZE, md5=md5(data), resume=True)
        assert "offset" not in raw.recv().fields
    with Raw(daemon) as raw:
        raw.login()  # the owner still finds its bytes
        raw.send("put", name="big.bin", size=SIZE, md5=md5(data), resume=True)
        assert raw.recv()["offset"] == SIZE // 2


def test_two_sessions_resuming_one_partial_get_it_once(daemon: Daemon) -> None:
    data = os.urandom(SIZE)
    _interrupt(daemon, data, SIZE // 2)
    with Raw(daemon) as a, Raw(daemon) as b:
        a.login()
        b.login()
        a.send("put", name="big.bin", size=SIZE, resume=True)
        assert a.recv()["offset"] == SIZE // 2
        b.send("put", name="big.bin", size=SIZE, resume=True)
        assert "offset" not in b.recv().fields  # a fresh upload of its own
        rest = data[SIZE // 2 :]
        a.chan.send_raw(encode("data", Role.CLIENT, size=len(rest), offset=SIZE // 2) + rest)
        b.chan.send_raw(encode("data", Role.CLIENT, size=SIZE) + data)
        a.send("done", md5=md5(data))
        b.send("done", md5=md5(data))
        assert a.recv().type == "ok" and b.recv().type == "ok"
    assert (daemon.root / "big.bin").read_bytes() == data
    assert wait_until(lambda: _staged(daemon) == [] and _staged(daemon, "json") == [])


def test_a_new_partial_cannot_be_claimed_before_it_is_active(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = GatedOs()
    monkeypatch.setattr(ftpd.partials, "os", gate)
    mine, theirs = os.urandom(SIZE), os.urandom(SIZE)
    part_holds = lambda data: any(p.read_bytes() == data for p in _staged(daemon))  # noqa: E731
    with Raw(daemon) as a, Raw(daemon) as b:
        a.login()
        b.login()
        a.send("put", name="f", size=SIZE, resume=True)  # checksum in `done`
        assert gate.published.wait(10)
        b.send("put", name="f", size=SIZE, resume=True)
        assert b.recv().type == "continue"
        gate.go.set()
        assert a.recv().type == "continue"
        a.chan.send_raw(encode("data", Role.CLIENT, size=SIZE) + mine)
        assert wait_until(lambda: part_holds(mine))
        b.chan.send_raw(encode("data", Role.CLIENT, size=SIZE) + theirs)
        wait_until(lambda: part_holds(theirs))
        a.send("done", md5=md5(mine))
        ok = a.recv()
        b.send("done", md5=md5(theirs))
        b.recv()
    assert ok.type != "ok" or (daemon.root / "f").read_bytes() == mine


@pytest.mark.parametrize("flavour", ["symlink", "fifo", "huge", "other-owner", "dotdot"])
def test_a_planted_partial_is_never_written_through_or_spliced(
    tmp_path: Path, users: UserStore, outside: Path, flavour: str
) -> None:
    """What sits at `.ftpd/staging/<id>.part` (or its sidecar) was put there by hand."""
    root = tmp_path / "root"
    data = os.urandom(SIZE)
    with own_daemon(root, users) as d:
        part, _ = plant_partial(d.staging, data[: SIZE // 2], size=SIZE)
        if flavour == "symlink":
            part.unlink()
            part.symlink_to(outside / "secret")
        elif flavour == "fifo":
            part.unlink()
            os.mkfifo(part)
        elif flavour == "huge":
            part.write_bytes(os.urandom(SIZE + 4096))
        elif flavour == "other-owner":
            plant_partial(d.staging, data[: SIZE // 2], size=SIZE, owner="writer")
        elif flavour == "dotdot":
            plant_partial(d.staging, data[: SIZE // 2], size=SIZE, name="../big.bin")
        before = outside_snapshot(outside)
        with Raw(d) as raw:
            raw.login()
            answer = put(raw, "big.bin", data, resume=True)
            assert answer.type == "error" or answer["md5"] == md5(data)
        with Raw(d) as raw:
            raw.login()
            assert put(raw, "other", b"still serving").type == "ok"
        assert outside_snapshot(outside) == before
        assert not (tmp_path / "big.bin").exists()
        if (root / "big.bin").exists():
            assert (root / "big.bin").read_bytes() == data


@pytest.mark.parametrize("flavour", ["symlink", "fifo"])
def test_a_planted_non_file_partial_does_not_block_the_name(
    tmp_path: Path, users: UserStore, outside: Path, flavour: str
) -> None:
    data = os.urandom(SIZE)
    with own_daemon(tmp_path / "root", users) as d:
        part, _ = plant_partial(d.staging, data[: SIZE // 2], size=SIZE)
        part.unlink()
        if flavour == "symlink":
            part.symlink_to(outside / "secret")
        else:
            os.mkfifo(part)
        for _ in range(2):
            with Raw(d) as raw:
                raw.login()
                answer = put(raw, "big.bin", data, resume=True)
            assert answer.type == "ok"


def test_a_sidecar_with_an_absurd_size_does_not_break_resume_for_everyone(
    tmp_path: Path, users: UserStore
) -> None:
    with own_daemon(tmp_path / "root", users) as d:
        _, side = plant_partial(d.staging, b"x" * 10, owner="nobody", name="n")
        side.write_text(side.read_text().replace('"size": 10', '"size": 1e400'))
        with Raw(d) as raw:
            raw.login("writer")
            answer = put(raw, "mine", b"payload", resume=True)
        assert answer.type == "ok"


def test_a_fifo_sidecar_is_never_opened(tmp_path: Path, users: UserStore) -> None:
    with own_daemon(tmp_path / "root", users) as d:
        _, side = plant_partial(d.staging, b"x" * 10, owner="nobody", name="n")
        side.unlink()
        os.mkfifo(side)
        answers: list[Any] = []

        def resumable_put() -> None:
            with Raw(d) as raw:
                raw.login()
                answers.append(put(raw, "mine", b"payload", resume=True))

        thread = threading.Thread(target=resumable_put)
        thread.start()
        opened = False
        for _ in range(500):  # bounded: until the put is answered or the FIFO has a reader
            if answers or not thread.is_alive():
                break
            try:
                fd = os.open(side, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody reads it (yet)
                thread.join(0.01)
                continue
            opened = True
            os.write(fd, b"{}")
            os.close(fd)  # unblocks the server
            break
        thread.join(15)
        assert not thread.is_alive()
        assert not opened, "the server opened a FIFO sidecar and blocked on it"


def test_a_restart_empties_staging_of_links_and_fifos(
    tmp_path: Path, users: UserStore, outside: Path
) -> None:
    root = tmp_path / "root"
    with own_daemon(root, users) as d:
        staging = d.staging
    (staging / "x.part").symlink_to(outside / "secret")
    os.mkfifo(staging / "y.part")
    with own_daemon(root, users):
        assert (outside / "secret").read_bytes() == b"secret"
        assert sorted(p.name for p in staging.iterdir()) == []


def test_resume_ttl_zero_keeps_nothing_and_resumes_nothing(
    tmp_path: Path, users: UserStore
) -> None:
    data = os.urandom(SIZE)
    with own_daemon(tmp_path / "root", users, resume_ttl=0) as d:
        plant_partial(d.staging, data[: SIZE // 2], size=SIZE)  # planted while serving
        with Raw(d) as raw:
            raw.login()
            raw.send("put", name="big.bin", size=SIZE, resume=True)
            assert "offset" not in raw.recv().fields
            raw.chan.send_raw(encode("data", Role.CLIENT, size=SIZE) + data[:1000])
        # the interrupted one is gone at once, with no sidecar; the planted one is purged
        ours = {"ab" * 16}
        assert wait_until(lambda: {p.stem for p in d.staging.iterdir()} <= ours)


def test_get_with_offsets_at_and_past_the_end(daemon: Daemon) -> None:
    data = os.urandom(SIZE)
    (daemon.root / "f").write_bytes(data)
    fast = digests.new("xxh3-128")  # a dependency, unlike blake3
    fast.update(data)
    other = fast.hexdigest()
    with Raw(daemon) as raw:
        raw.login()
        header, body = get(raw, "f", offset=SIZE, prefix=md5(data))
        assert header["offset"] == SIZE and header["size"] == 0 and body == b""
        assert header["md5"] == md5(data)
        for fields in (
            {"offset": SIZE + 1, "prefix": md5(data)},
            {"offset": SIZE, "prefix": md5(data[:-1])},
            {"offset": SIZE, "prefix": other},  # an xxh3-128 prefix on an md5 get
            {"offset": SIZE // 2},
            {"prefix": md5(b"")},
            {"offset": 0, "prefix": md5(b"")},
        ):
            header, body = get(raw, "f", **fields)
            assert "offset" not in header.fields and body == data, fields
        one = digests.new("xxh3-128")
        one.update(data[:1])
        header, body = get(raw, "f", offset=1, prefix=one.hexdigest(), digest="xxh3-128")
        assert header["offset"] == 1 and body == data[1:]


# --- the client --------------------------------------------------------------------------


HOSTILE_NAMES = [
    "..",
    "../x",
    "a/b",
    "\uff0e\uff0e",
    "x\\y",
    ".ftpd",
    "e\u0301",
    "\u2025",
    "a\uff0fb",
]


def _listing(name: str) -> bytes:
    return encode_listing([(name, 0, 0, "", "dir"), ("ok", 1, 0, md5(b"x"), "file")])


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_decode_listing_refuses_a_name_that_would_escape(name: str) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed listing"):
        decode_listing(_listing(name), "sub")


def _walk_a_hostile_listing(tmp_path: Path) -> Client:
    body = _listing("../x")
    script = fake_hello() + encode("listing", Role.SERVER, size=len(body), count=2) + body
    with fake_server(script) as port:
        c = Client("127.0.0.1", port)
        try:
            with pytest.raises(RemoteProtocolError, match="malformed listing"):
                plan_get(c, ["sub"], {"sub": Entry(1, "sub", 0, 0, "", "dir")}, tmp_path, True)
        finally:
            connected = c.connected
            c.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not connected


def test_get_r_from_a_hostile_server_writes_nothing_and_hangs_up(tmp_path: Path) -> None:
    _walk_a_hostile_listing(tmp_path)


def test_a_resume_part_that_is_a_link_is_never_written_through(
    daemon: Daemon, tmp_path: Path, outside: Path
) -> None:
    data = os.urandom(SIZE)
    (daemon.root / "f").write_bytes(data)
    dest = tmp_path / "dl"
    dest.mkdir()
    resume_part(dest / "f").symlink_to(outside / "secret")
    before = outside_snapshot(outside)
    with daemon.client() as c, pytest.raises(LocalFileError):
        c.get("f", dest, resume=True)
    assert outside_snapshot(outside) == before
    assert not (dest / "f").exists()


def test_concurrent_resumable_gets_never_share_a_part_file(daemon: Daemon, tmp_path: Path) -> None:
    stem = "a" * 200
    first, second = f"{stem}1.bin", f"{stem}2.bin"
    one, two = os.urandom(4 << 20), os.urandom(SIZE)
    (daemon.root / first).write_bytes(one)
    (daemon.root / second).write_bytes(two)
    dest = tmp_path / "dl"
    dest.mkdir()
    started, go = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def progress(n: int) -> None:
        if not started.is_set():
            started.set()
            go.wait(10)

    def slow() -> None:
        try:
            with daemon.client() as c:
                c.get(first, dest, resume=True, on_progress=progress)
            outcome.append(None)
        except BaseException as exc:  # reported below
            outcome.append(exc)

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        assert started.wait(10)
        with daemon.client() as c:
            landed = c.get(second, dest, resume=True)
    finally:
        go.set()
        thread.join(20)
    assert landed.path.read_bytes() == two
    assert outcome == [None] and (dest / first).read_bytes() == one
