"""Hostile input against a live daemon: each case is its own test, and the server survives them all.

One daemon serves the whole module, so it has to survive every case in turn, not just one. After
each case the `survivor` fixture checks what the issue asks: the server is alive (a fresh client
logs in and lists within 2 s, and a session that stayed open through the case still works), it
logged no traceback, the number of threads is back where it was, no staging file is left, and
nothing changed outside the root (bait files sit where an escaping name would land, and a
planted symlink's target must stay as it was). Between cases the root is emptied.

The checks run in the test body (`with survivor:`), so that a case marked xfail for a known bug
is judged on all of them, not only on its own assertions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import socket
import stat
import struct
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import scramp
from click.testing import CliRunner

from ftpc import Client
from ftpc.cli import main as ftpc_main
from ftpc.listing import Entry, resolve
from ftpc.shell import Shell
from ftpd.auth import UserStore
from ftpd.lockout import LockoutPolicy
from shared.errors import BadName, FtpError, TransportError
from shared.protocol import MAX_HEADER, MAX_SIZE, MESSAGES, Message
from tests.conftest import (
    ACCOUNTS,
    TEST_ITERATIONS,
    Daemon,
    Raw,
    start_daemon,
    stop_daemon,
)

LIVENESS_SECONDS = 2.0
NO_LOCKOUT = LockoutPolicy(backoff_after=10_000, account_limit=10_000, ip_limit=10_000)
"""Failed logins are input here, not the subject (test_lockout.py has that): one daemon counts
them across all the cases, and with the default policy it would slow the later ones down and
then lock 127.0.0.1 out."""
MECH = "SCRAM-SHA-256"
PAYLOAD = b"hostile payload\n"
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


# --- what must not change outside the root ---------------------------------------------------

BAIT = {
    "x": b"bait for ../x\n",
    "etc/passwd": b"bait for a/../../etc/passwd\n",
    "outside/secret.txt": b"a file symlinks in the root point to\n",
    "outside/dir/inner.txt": b"inside a directory symlinks in the root point to\n",
}
"""Files planted next to the root where a name escaping it would land, and symlink targets."""

SKIPPED = frozenset({"root", "users.json"})
"""Top-level entries beside the baits that change legitimately: the root and the accounts."""


def _describe(path: Path, *, times: bool = True) -> tuple[object, ...]:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        return ("file", st.st_size, st.st_mtime_ns if times else 0, digest)
    if stat.S_ISDIR(st.st_mode):
        return ("dir", st.st_mtime_ns if times else 0)
    return ("other", stat.S_IFMT(st.st_mode))


def outside_root(top: Path) -> dict[str, tuple[object, ...]]:
    """Every path under `top` except the skipped top-level entries, with type, size and md5.

    A directory's mtime is kept too, so a file created and removed again is noticed.
    """
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        names = dirnames + filenames
        if here == top:
            dirnames[:] = [n for n in dirnames if n not in SKIPPED]
            names = [n for n in names if n not in SKIPPED]
        for name in names:
            found[str((here / name).relative_to(top))] = _describe(here / name)
    return found


def components(name: str) -> set[str]:
    """Where a name could land if it escaped: itself, its parts, and its NFKC folding's parts."""
    folded = unicodedata.normalize("NFKC", name)
    parts = {name, folded, *re.split(r"[/\\]", name), *re.split(r"[/\\]", folded)}
    usable = set()
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\x00" in part:
            continue
        try:
            if len(os.fsencode(part)) <= 255:
                usable.add(part)
        except UnicodeError:
            continue
    return usable


def elsewhere(top: Path, names: set[str]) -> dict[str, tuple[object, ...] | None]:
    """What exists under `/`, `/tmp` and the parent of tmp_path with those names (and passwd)."""
    paths = {"/etc/passwd"} | {
        os.path.join(base, n) for base in ("/", "/tmp", str(top.parent)) for n in names
    }
    return {
        p: _describe(Path(p), times=False) if os.path.lexists(p) else None for p in sorted(paths)
    }


# --- the survivor -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ground:
    """The module's daemon, and what must never change around its root, taken once at start.

    Comparing every case with the state before the first one means a change is noticed even
    if the case that made it failed before its own check.
    """

    daemon: Daemon
    top: Path
    outside: dict[str, tuple[object, ...]]
    elsewhere: dict[str, tuple[object, ...] | None]


@dataclass
class Survivor:
    """The daemon and its baseline; `with survivor:` runs the case, then checks the server."""

    ground: Ground
    caplog: pytest.LogCaptureFixture
    client_dir: Path
    bystander: Client
    threads: int
    used: bool = False

    @property
    def daemon(self) -> Daemon:
        return self.ground.daemon

    @property
    def top(self) -> Path:
        return self.ground.top

    @property
    def root(self) -> Path:
        return self.daemon.root

    def raw(self, *, logged_in: bool = True) -> Raw:
        raw = Raw(self.daemon)
        if logged_in:
            raw.login()
        return raw

    def __enter__(self) -> Survivor:
        self.used = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.check()

    def check(self) -> None:
        """Alive, no traceback, threads back to the baseline, nothing outside the root."""
        started = time.monotonic()
        with self.daemon.client() as fresh:
            fresh.list()
        elapsed = time.monotonic() - started
        assert elapsed < LIVENESS_SECONDS, f"a fresh login and ls took {elapsed:.2f} s"
        self.bystander.list()
        records = self.caplog.get_records("setup") + self.caplog.get_records("call")
        tracebacks = [r.getMessage() for r in records if r.exc_info]
        assert not tracebacks, f"the daemon logged a traceback: {tracebacks[0]}"
        # The baseline may still count the session thread of the previous case's bystander,
        # which ends on its own time: a leak shows as more threads, never as fewer.
        assert settles(lambda: threading.active_count() <= self.threads), (
            f"{threading.active_count()} threads, {self.threads} before the case"
        )
        assert settles(lambda: not any(self.daemon.staging.iterdir())), "staging not empty"
        assert outside_root(self.top) == self.ground.outside, "something changed outside the root"
        assert elsewhere(self.top, ALL_COMPONENTS) == self.ground.elsewhere, "an escape landed"


def settles(predicate: Callable[[], bool]) -> bool:
    """Poll briefly for something the server does just after its last reply (bounded: 5 s)."""
    for _ in range(1000):
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.fixture(scope="module")
def ground(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ground]:
    """One daemon for every case of the module, with bait files planted around its root."""
    top = tmp_path_factory.mktemp("hostile")
    for rel, data in BAIT.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_bytes(data)
    users = UserStore(top / "users.json")
    for name, (password, perms) in ACCOUNTS.items():
        users.add(name, password, perms, iterations=TEST_ITERATIONS)
    server, thread = start_daemon(top / "root", users, lockout=NO_LOCKOUT)
    host, port = server.address
    try:
        daemon = Daemon(server=server, root=server.storage.root, users=users, host=host, port=port)
        yield Ground(daemon, top, outside_root(top), elsewhere(top, ALL_COMPONENTS))
    finally:
        stop_daemon(server, thread)


def _empty(root: Path) -> None:
    """Remove what a case left in the root (its own files, planted links), but not `.ftpd`."""
    for entry in os.scandir(root):
        if entry.name == ".ftpd":
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


@pytest.fixture
def survivor(
    ground: Ground, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[Survivor]:
    caplog.set_level(logging.INFO, logger="ftpd")
    _empty(ground.daemon.root)
    bystander = ground.daemon.client()
    try:
        s = Survivor(ground, caplog, tmp_path, bystander, threading.active_count())
        yield s
        assert s.used, "a test took the survivor fixture but never ran `with survivor:`"
    finally:
        bystander.close()
        _empty(ground.daemon.root)


# --- frames built by hand -----------------------------------------------------------------------


def prefixed(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


@dataclass(frozen=True)
class Lit:
    """A JSON token written verbatim (1e400, NaN, 1.0), which json.dumps would not produce."""

    text: str


def header(obj: dict[str, Any]) -> bytes:
    """Frame a dict as ASCII JSON, with Lit values spliced in, bypassing `encode`'s checks."""
    lits: dict[str, str] = {}

    def swap(value: Any) -> Any:
        if isinstance(value, Lit):
            key = f"@@lit{len(lits)}@@"
            lits[key] = value.text
            return key
        return value

    text = json.dumps({k: swap(v) for k, v in obj.items()})
    for key, lit in lits.items():
        text = text.replace(json.dumps(key), lit)
    return prefixed(text.encode("ascii"))


def reply(raw: Raw) -> tuple[Message, bytes]:
    """The next frame from the server, with its body if it has one."""
    msg = raw.recv()
    body = bytearray()
    if MESSAGES[msg.type].body:
        raw.chan.recv_body(body.extend)
    return msg, bytes(body)


def expect(raw: Raw, type_: str) -> Message:
    msg, _ = reply(raw)
    assert msg.type == type_, msg
    return msg


def expect_error(raw: Raw, code: str, *, fatal: bool = False) -> Message:
    """An `error` with this code; if fatal, the server then closes without sending more."""
    msg, _ = reply(raw)
    assert (msg.type, msg.get("code"), bool(msg.get("fatal"))) == ("error", code, fatal), msg
    if fatal:
        assert raw.closed_by_server(), "the server sent more after a fatal error"
    return msg


def listed(raw: Raw, kind: str = "file") -> list[str]:
    """Send `ls` and return the names of files (or folders): the session is still usable."""
    raw.send("ls")
    msg, body = reply(raw)
    assert msg.type == "listing", msg
    entries = [json.loads(line) for line in body.split(b"\n") if line]
    return [e["name"] for e in entries if e["kind"] == kind]


def send_quietly(raw: Raw, data: bytes) -> None:
    """Send what may be cut short: the server may refuse and close before reading it all."""
    with contextlib.suppress(TransportError):
        raw.chan.send_raw(data)


def half_close(raw: Raw) -> None:
    """The peer hangs up its sending side mid-frame; it can still read a reply."""
    raw.sock.shutdown(socket.SHUT_WR)


def on_disk(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()} - {".ftpd"}


# --- framing --------------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b"[" * depth


FRAMING: list[Any] = [
    pytest.param(b"\x00\x00\x00\x00", id="zero-length"),
    pytest.param(struct.pack("!I", MAX_HEADER + 1), id="length-65537-no-header-sent"),
    pytest.param(b"\xff\xff\xff\xff", id="length-4GiB"),
    pytest.param(prefixed(_nested(100_000)), id="nesting-100000-over-max-header"),
    pytest.param(prefixed(_nested(MAX_HEADER)), id="nesting-65536-brackets"),
    pytest.param(prefixed(b'{"a":' * (MAX_HEADER // 5)), id="nesting-13107-objects"),
    pytest.param(prefixed(b"[]"), id="non-object-list"),
    pytest.param(prefixed(b'"ls"'), id="non-object-string"),
    pytest.param(prefixed(b"42"), id="non-object-number"),
    pytest.param(prefixed(b"null"), id="non-object-null"),
    pytest.param(prefixed(b"true"), id="non-object-bool"),
    pytest.param(prefixed(b" "), id="only-whitespace"),
    pytest.param(prefixed(b'{"type":"ls\xff"}'), id="invalid-utf8-byte"),
    pytest.param(prefixed(b'{"type":"get","name":"\xc0\xaf"}'), id="overlong-utf8-slash"),
    pytest.param(prefixed(b'{"type":"get","name":"\xed\xa0\x80"}'), id="utf8-encoded-surrogate"),
    pytest.param(prefixed(b'\xef\xbb\xbf{"type":"ls"}'), id="utf8-bom"),
    pytest.param(prefixed('{"type":"ls"}'.encode("utf-16")), id="utf16"),
    pytest.param(prefixed(b'{"type":"ls","type":"ls"}'), id="duplicate-type"),
    pytest.param(prefixed(b'{"type":"get","name":"a","name":"b"}'), id="duplicate-name"),
    pytest.param(
        prefixed(b'{"type":"put","name":"a","size":1,"o":{"k":1,"k":2}}'), id="dup-nested"
    ),
    pytest.param(prefixed(b'{"type":"ls"} {}'), id="trailing-object"),
    pytest.param(prefixed(b'{"type":"ls"}\x00'), id="trailing-nul"),
    pytest.param(prefixed(b'{"type":"ls"'), id="unclosed-object"),
    pytest.param(prefixed(b"{'type':'ls'}"), id="single-quotes"),
    pytest.param(prefixed(b'{"type":"get","name":"a\x01"}'), id="raw-control-in-string"),
    pytest.param(prefixed(b"{}"), id="no-type"),
    pytest.param(header({"name": "x"}), id="no-type-with-field"),
    pytest.param(header({"type": None}), id="type-null"),
    pytest.param(header({"type": 5}), id="type-number"),
    pytest.param(header({"type": ["ls"]}), id="type-list"),
    pytest.param(header({"type": "SITE"}), id="unknown-verb-SITE"),
    pytest.param(header({"type": "SITE", "cmd": "EXEC /bin/sh"}), id="unknown-verb-SITE-EXEC"),
    pytest.param(header({"type": "LS"}), id="verb-wrong-case"),
    pytest.param(header({"type": ""}), id="verb-empty"),
    pytest.param(header({"type": "ls "}), id="verb-trailing-space"),
    pytest.param(header({"type": "ls\u0000"}), id="verb-nul"),
    pytest.param(header({"type": "__init__"}), id="verb-dunder"),
    pytest.param(header({"type": "do_ls"}), id="verb-handler-name"),
    pytest.param(
        header(
            {
                "type": "hello",
                "version": 1,
                "server": "evil",
                "mechanisms": [MECH],
                "capabilities": [],
                "max_header": 65536,
            }
        ),
        id="server-only-hello",
    ),
    pytest.param(
        header({"type": "challenge", "data": "r=x,s=eA==,i=4096"}), id="server-only-challenge"
    ),
    pytest.param(header({"type": "continue"}), id="server-only-continue"),
    pytest.param(header({"type": "ok"}), id="server-only-ok"),
    pytest.param(header({"type": "error", "code": "x", "message": "y"}), id="server-only-error"),
    pytest.param(
        header({"type": "file", "name": "f", "size": 5, "md5": PAYLOAD_MD5, "mtime": 0}) + b"12345",
        id="server-only-file-with-body",
    ),
    pytest.param(
        header({"type": "listing", "size": 2, "count": 1}) + b"{}", id="server-only-listing"
    ),
    pytest.param(header({"type": "data", "size": 1}) + b"x", id="data-outside-put"),
    pytest.param(header({"type": "data", "size": 0}), id="empty-data-outside-put"),
    pytest.param(header({"type": "done", "md5": PAYLOAD_MD5}), id="done-outside-put"),
]


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
@pytest.mark.parametrize("payload", FRAMING)
def test_framing_is_fatal_for_that_connection_only(
    survivor: Survivor, payload: bytes, logged_in: bool
) -> None:
    with survivor, survivor.raw(logged_in=logged_in) as raw:
        send_quietly(raw, payload)
        expect_error(raw, "bad-request", fatal=True)


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"\x00", id="prefix-1-of-4-bytes"),
        pytest.param(b"\x00\x00\x00", id="prefix-3-of-4-bytes"),
        pytest.param(struct.pack("!I", 20), id="prefix-then-no-header"),
        pytest.param(struct.pack("!I", 20) + b'{"type":', id="truncated-header"),
        pytest.param(struct.pack("!I", MAX_HEADER) + b" " * 1000, id="truncated-max-header"),
    ],
)
def test_hanging_up_mid_frame_ends_the_session_silently(
    survivor: Survivor, payload: bytes, logged_in: bool
) -> None:
    with survivor, survivor.raw(logged_in=logged_in) as raw:
        raw.chan.send_raw(payload)
        half_close(raw)
        assert raw.closed_by_server(), "the server answered a frame that never arrived"


def test_a_header_of_exactly_max_header_bytes_is_served(survivor: Survivor) -> None:
    with survivor, survivor.raw() as raw:
        text = b'{"type":"ls"}'
        raw.chan.send_raw(prefixed(text + b" " * (MAX_HEADER - len(text))))
        assert expect(raw, "listing")["count"] == 0


# --- wrong field types, for every verb --------------------------------------------------------

VALID: dict[str, dict[str, Any]] = {
    "auth": {"version": 1, "mechanism": MECH, "data": "n,,n=alice,r=abc"},
    "auth-final": {"data": "c=biws,r=abc,p=eA=="},
    "ls": {},
    "put": {"name": "f", "size": 1},
    "upload": {"name": "f", "size": 1, "md5": hashlib.md5(b"x").hexdigest()},
    "get": {"name": "f"},
    "rm": {"name": "f"},
    "quit": {},
}
BAD_VALUES: dict[str, list[Any]] = {
    "version": ["1", Lit("1.0"), True, None, 0, 65536, -1, [1]],
    "mechanism": [5, "", None, [MECH], "M" * 65],
    "data": [5, "", None, {"a": 1}, "d" * 4097],
    "name": [5, ["a"], None, "", True, {"n": "a"}, "x" * 4097, "x" * 10_000],
    "size": [
        "1",
        Lit("1.0"),
        Lit("1e3"),
        True,
        False,
        None,
        -1,
        MAX_SIZE + 1,
        2**64,
        Lit("1e400"),
        Lit("-0.0"),
        Lit("NaN"),
        Lit("Infinity"),
        Lit("-Infinity"),
        Lit("1" * 21),
        Lit("-" + "1" * 21),
        Lit("9" * 5000),
        [1],
    ],
    "md5": ["abc", "0" * 31, "0" * 33, "A" * 32, "g" * 32, " " + "0" * 31, 5, None],
    "overwrite": ["true", "false", 1, 0, None, [True]],
}
OPTIONAL = {"put": ["md5", "overwrite"], "upload": ["overwrite"]}


def _field_cases() -> Iterator[Any]:
    for verb, fields in VALID.items():
        for key in [*fields, *OPTIONAL.get(verb, [])]:
            for i, bad in enumerate(BAD_VALUES[key]):
                label = bad.text if isinstance(bad, Lit) else json.dumps(bad)
                label = label if len(label) <= 12 else f"long{i}"
                yield pytest.param(
                    header({"type": verb, **fields, key: bad}), id=f"{verb}-{key}-{label}"
                )
        for key in fields:
            rest = {k: v for k, v in fields.items() if k != key}
            yield pytest.param(header({"type": verb, **rest}), id=f"{verb}-missing-{key}")
        yield pytest.param(header({"type": verb, **fields, "x": 1}), id=f"{verb}-unknown-field")
        yield pytest.param(header({"type": verb, **fields, "fatal": True}), id=f"{verb}-fatal")


@pytest.mark.parametrize("payload", list(_field_cases()))
def test_wrong_field_is_fatal(survivor: Survivor, payload: bytes) -> None:
    """Logged in, so that nothing but the field check can refuse (framing tests do both states)."""
    with survivor, survivor.raw() as raw:
        raw.chan.send_raw(payload)
        expect_error(raw, "bad-request", fatal=True)
        assert on_disk(survivor.root) == set()


# --- inside an upload ---------------------------------------------------------------------------


def _put(raw: Raw, name: str, size: int, **more: Any) -> None:
    raw.chan.send_raw(header({"type": "put", "name": name, "size": size, **more}))
    expect(raw, "continue")


UPLOAD_FRAMES = [
    pytest.param(header({"type": "data", "size": 6}) + b"123456", id="data-size-differs"),
    pytest.param(header({"type": "data", "size": "5"}) + b"12345", id="data-size-string"),
    pytest.param(header({"type": "data", "size": Lit("5.0")}) + b"12345", id="data-size-float"),
    pytest.param(header({"type": "data", "size": Lit("NaN")}), id="data-size-nan"),
    pytest.param(header({"type": "data", "size": 2**64}), id="data-size-2-64"),
    pytest.param(header({"type": "data", "size": 5, "md5": "0" * 32}), id="data-extra-field"),
    pytest.param(header({"type": "ls"}), id="ls-instead-of-data"),
    pytest.param(header({"type": "quit"}), id="quit-instead-of-data"),
    pytest.param(header({"type": "put", "name": "g", "size": 5}), id="put-instead-of-data"),
    pytest.param(header({"type": "done", "md5": "0" * 32}), id="done-instead-of-data"),
    pytest.param(header({"type": "ok"}), id="server-ok-instead-of-data"),
    pytest.param(b"\x00\x00\x00\x00", id="zero-length-instead-of-data"),
]


@pytest.mark.parametrize("frame", UPLOAD_FRAMES)
def test_anything_but_data_after_continue_is_fatal(survivor: Survivor, frame: bytes) -> None:
    with survivor, survivor.raw() as raw:
        _put(raw, "f", 5)
        send_quietly(raw, frame)
        expect_error(raw, "bad-request", fatal=True)
        assert on_disk(survivor.root) == set()


@pytest.mark.parametrize(
    "trailer",
    [
        pytest.param(header({"type": "done", "md5": "ABC"}), id="done-md5-short-upper"),
        pytest.param(header({"type": "done", "md5": 5}), id="done-md5-number"),
        pytest.param(header({"type": "done"}), id="done-without-md5"),
        pytest.param(header({"type": "done", "md5": PAYLOAD_MD5, "x": 1}), id="done-extra"),
        pytest.param(header({"type": "ls"}), id="ls-instead-of-done"),
        pytest.param(header({"type": "data", "size": 16}) + PAYLOAD, id="data-again"),
        pytest.param(b"A" * 20, id="body-longer-than-declared"),
    ],
)
def test_anything_but_done_after_the_body_is_fatal(survivor: Survivor, trailer: bytes) -> None:
    with survivor, survivor.raw() as raw:
        _put(raw, "f", len(PAYLOAD))
        raw.chan.send_raw(header({"type": "data", "size": len(PAYLOAD)}) + PAYLOAD)
        send_quietly(raw, trailer)
        expect_error(raw, "bad-request", fatal=True)
        assert on_disk(survivor.root) == set()


def test_body_longer_than_declared_with_md5_stores_the_declared_bytes(survivor: Survivor) -> None:
    """The declared size is what is stored; the extra bytes are read as the next frame."""
    with survivor, survivor.raw() as raw:
        _put(raw, "f", len(PAYLOAD), md5=PAYLOAD_MD5)
        send_quietly(raw, header({"type": "data", "size": len(PAYLOAD)}) + PAYLOAD + b"A" * 20)
        assert expect(raw, "ok")["md5"] == PAYLOAD_MD5
        expect_error(raw, "bad-request", fatal=True)
        assert (survivor.root / "f").read_bytes() == PAYLOAD


def test_done_after_a_put_that_had_md5_is_fatal(survivor: Survivor) -> None:
    with survivor, survivor.raw() as raw:
        _put(raw, "f", len(PAYLOAD), md5=PAYLOAD_MD5)
        raw.chan.send_raw(header({"type": "data", "size": len(PAYLOAD)}) + PAYLOAD)
        expect(raw, "ok")
        raw.chan.send_raw(header({"type": "done", "md5": PAYLOAD_MD5}))
        expect_error(raw, "bad-request", fatal=True)
        assert (survivor.root / "f").read_bytes() == PAYLOAD


@pytest.mark.parametrize("md5_up_front", [False, True], ids=["trailer", "md5-up-front"])
@pytest.mark.parametrize("sent", [0, 1, 50, 99], ids=lambda n: f"{n}-of-100-bytes")
def test_body_shorter_than_declared_then_hang_up_stores_nothing(
    survivor: Survivor, sent: int, md5_up_front: bool
) -> None:
    old = b"the old version"
    (survivor.root / "f").write_bytes(old)
    more = {"md5": hashlib.md5(b"x" * 100).hexdigest()} if md5_up_front else {}
    with survivor, survivor.raw() as raw:
        _put(raw, "f", 100, overwrite=True, **more)
        raw.chan.send_raw(header({"type": "data", "size": 100}) + b"x" * sent)
        half_close(raw)
        assert raw.closed_by_server(), "the server replied to a body that never arrived"
        assert (survivor.root / "f").read_bytes() == old
        assert on_disk(survivor.root) == {"f"}


def test_optimistic_data_after_a_refused_put_is_fatal(survivor: Survivor) -> None:
    """A client must wait for `continue`; the server cannot resynchronise after a refusal."""
    with survivor, survivor.raw() as raw:
        raw.chan.send_raw(
            header({"type": "put", "name": "../x", "size": len(PAYLOAD)})
            + header({"type": "data", "size": len(PAYLOAD)})
            + PAYLOAD
        )
        expect_error(raw, "bad-name")
        expect_error(raw, "bad-request", fatal=True)
        assert on_disk(survivor.root) == set()


@pytest.mark.parametrize("size", [MAX_SIZE, MAX_SIZE - 1], ids=["2-50", "2-50-minus-1"])
def test_absurd_but_legal_size_is_refused_before_continue(survivor: Survivor, size: int) -> None:
    with survivor, survivor.raw() as raw:
        raw.chan.send_raw(header({"type": "put", "name": "f", "size": size}))
        expect_error(raw, "no-space")
        assert listed(raw) == []


# --- upload: a whole small file in one frame ----------------------------------------------------

MAX_UPLOAD = 1 << 20


def upload(name: str, data: bytes = PAYLOAD, md5: str | None = None, **more: Any) -> bytes:
    """An `upload` frame with its body, built by hand."""
    digest = md5 or hashlib.md5(data).hexdigest()
    return header({"type": "upload", "name": name, "size": len(data), "md5": digest, **more}) + data


def test_upload_before_login_is_refused_and_stays_in_frame(survivor: Survivor) -> None:
    """The server reads the body whatever it decides, so the next frame is still a frame."""
    with survivor, survivor.raw(logged_in=False) as raw:
        raw.chan.send_raw(upload("f") + header({"type": "ls"}))
        expect_error(raw, "not-authenticated")
        expect_error(raw, "not-authenticated")
        raw.login()
        assert listed(raw) == []
    assert on_disk(survivor.root) == set()


@pytest.mark.parametrize("size", [MAX_UPLOAD + 1, MAX_SIZE], ids=["1-MiB-plus-1", "2-50"])
def test_upload_over_one_mib_is_fatal_before_the_body(survivor: Survivor, size: int) -> None:
    with survivor, survivor.raw() as raw:
        raw.chan.send_raw(header({"type": "upload", "name": "f", "size": size, "md5": PAYLOAD_MD5}))
        expect_error(raw, "bad-request", fatal=True)
    assert on_disk(survivor.root) == set()


def test_upload_with_the_wrong_md5_stores_nothing(survivor: Survivor) -> None:
    with survivor, survivor.raw() as raw:
        raw.chan.send_raw(upload("f", md5="0" * 32) + header({"type": "ls"}))
        expect_error(raw, "checksum-mismatch")
        assert expect(raw, "listing")["count"] == 0
    assert on_disk(survivor.root) == set()


@pytest.mark.parametrize("sent", [0, 1, 50, 99], ids=lambda n: f"{n}-of-100-bytes")
def test_upload_cut_short_then_hang_up_stores_nothing(survivor: Survivor, sent: int) -> None:
    data = b"u" * 100
    with survivor, survivor.raw() as raw:
        raw.chan.send_raw(upload("f", data)[: -len(data) + sent])
        half_close(raw)
        assert raw.closed_by_server(), "the server replied to a body that never arrived"
    assert on_disk(survivor.root) == set()


def test_uploads_pipelined_then_hang_up_are_committed(survivor: Survivor) -> None:
    """They arrived whole and verified: the server commits them though nobody reads the ok."""
    names = [f"held-{i}" for i in range(3)]
    with survivor:
        with survivor.raw() as raw:
            raw.chan.send_raw(b"".join(upload(n, n.encode()) for n in names))
        assert settles(lambda: on_disk(survivor.root) == set(names)), on_disk(survivor.root)
        assert all(_plain_file(survivor.root, n) == n.encode() for n in names)


# --- names ------------------------------------------------------------------------------------

REFUSED: dict[str, str] = {
    "dot": ".",
    "dotdot": "..",
    "dotdot-x": "../x",
    "a-up-up-etc-passwd": "a/../../etc/passwd",
    "absolute-etc-passwd": "/etc/passwd",
    "slash": "/",
    "trailing-slash": "x/",
    "backslash-dotdot-x": "\\..\\x",
    "drive-backslash": "C:\\x",
    "nul": "a\x00b",
    "nul-only": "\x00",
    "fullwidth-dot": "\uff0e",
    "fullwidth-dotdot": "\uff0e\uff0e",
    "fullwidth-dotdot-slash-x": "\uff0e\uff0e\uff0fx",
    "fullwidth-slash": "x\uff0fy",
    "fullwidth-backslash": "\uff3c..\uff3cx",
    "small-full-stop": "\ufe52",
    "small-full-stop-x2": "\ufe52\ufe52",
    "one-dot-leader": "\u2024",
    "one-dot-leader-x2": "\u2024\u2024",
    "two-dot-leader": "\u2025",
    "small-reverse-solidus": "a\ufe68b",
    "escape-sequence": "\x1b[31mred",
    "cr": "a\rb",
    "lf": "a\nb",
    "tab": "a\tb",
    "del": "a\x7f",
    "c1-nel": "a\x85b",
    "rlo": "\u202egnp.exe",
    "line-separator": "a\u2028b",
    "paragraph-separator": "a\u2029b",
    "lrm": "a\u200e",
    "arabic-letter-mark": "\u061c",
    "lone-surrogate": "a\ud800",
    "256-bytes": "x" * 256,
    "256-bytes-utf8": "\u00e9" * 128,
    "10002-bytes-cjk": "\u6587" * 3334,
    "reserved-ftpd": ".ftpd",
    "reserved-staging": ".ftpd/staging/x.part",
    "reserved-md5-cache": ".ftpd/md5.sqlite3",
    "reserved-prefix": ".ftpd-x",
    "reserved-nfd-prefix": ".ftpd\u0301",
    "gitkeep": ".gitkeep",
}
"""Names the server must refuse with a non-fatal `bad-name`, touching nothing."""

ACCEPTED: dict[str, str] = {
    "drive-relative": "C:x",
    "device-con": "CON",
    "device-prn": "PRN",
    "device-aux": "AUX",
    "device-nul": "NUL",
    "device-com1": "COM1",
    "device-lpt1": "LPT1",
    "device-con-txt": "con.txt",
    "division-slash": "\u2215etc\u2215passwd",
    "fraction-slash": "..\u2044x",
    "big-solidus": "a\u29f8b",
    "dotdot-zero-width-space": "..\u200b",
    "three-dots": "...",
    "dot-space": ". .",
    "staging-like": "x.part",
    "uppercase-ftpd": ".FTPD",
    "fullwidth-dot-ftpd": "\uff0eftpd",
    "gitkeep-upper": ".GITKEEP",
    "255-bytes": "x" * 255,
    "255-bytes-utf8": "\u00e9" * 127 + "x",
    "space": " ",
    "dash-rf": "-rf",
    "tilde": "~",
    "dollar-home": "$HOME",
    "glob": "*",
    "zero-width-joiner": "\u200d",
    "nfd-e-acute": "e\u0301",
    "kelvin-sign": "\u212a",
}
"""Names that are one safe component: stored as a plain file with exactly the NFC name."""

FATAL: dict[str, str] = {"empty": "", "4097-chars": "x" * 4097, "10000-bytes": "x" * 10_000}
"""Names that fail the field check itself: a protocol error that closes the connection."""

ALL_NAMES = {**REFUSED, **ACCEPTED, **FATAL}
ALL_COMPONENTS: set[str] = set().union(*(components(n) for n in ALL_NAMES.values()))


def _names(table: dict[str, str]) -> list[Any]:
    return [pytest.param(name, id=key) for key, name in table.items()]


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


@pytest.mark.parametrize("name", _names(REFUSED))
@pytest.mark.parametrize("verb", ["put", "upload", "get", "rm"])
def test_unsafe_name_is_refused_and_touches_nothing(
    survivor: Survivor, verb: str, name: str
) -> None:
    with survivor, survivor.raw() as raw:
        if verb == "upload":
            raw.chan.send_raw(upload(name, overwrite=True))
        elif verb == "put":
            fields = {"size": len(PAYLOAD), "md5": PAYLOAD_MD5, "overwrite": True}
            raw.chan.send_raw(header({"type": "put", "name": name, **fields}))
        else:
            raw.chan.send_raw(header({"type": verb, "name": name}))
        expect_error(raw, "bad-name")
        assert listed(raw) == []
    assert on_disk(survivor.root) == set()


@pytest.mark.parametrize("name", _names(FATAL))
@pytest.mark.parametrize("verb", ["put", "upload", "get", "rm"])
def test_name_failing_the_field_check_is_fatal(survivor: Survivor, verb: str, name: str) -> None:
    with survivor, survivor.raw() as raw:
        more = {"size": 1, "md5": PAYLOAD_MD5} if verb in ("put", "upload") else {}
        raw.chan.send_raw(header({"type": verb, "name": name, **more}))
        expect_error(raw, "bad-request", fatal=True)
    assert on_disk(survivor.root) == set()


def _plain_file(root: Path, name: str) -> bytes:
    """The content of root/name, insisting it is a regular file, not a link."""
    path = root / name
    assert stat.S_ISREG(os.lstat(path).st_mode)
    return path.read_bytes()


@pytest.mark.parametrize("name", _names(ACCEPTED))
def test_odd_but_safe_name_is_stored_as_one_plain_file(survivor: Survivor, name: str) -> None:
    with survivor, survivor.raw() as raw:
        _put(raw, name, len(PAYLOAD), md5=PAYLOAD_MD5)
        raw.chan.send_raw(header({"type": "data", "size": len(PAYLOAD)}) + PAYLOAD)
        ok = expect(raw, "ok")
        assert (ok["name"], ok["md5"], ok["existed"]) == (_nfc(name), PAYLOAD_MD5, False)
        assert listed(raw) == [_nfc(name)]
    assert on_disk(survivor.root) == {_nfc(name)}
    assert _plain_file(survivor.root, _nfc(name)) == PAYLOAD


@pytest.mark.parametrize("name", _names(ACCEPTED))
def test_odd_but_safe_name_is_served_and_deleted(survivor: Survivor, name: str) -> None:
    (survivor.root / _nfc(name)).write_bytes(PAYLOAD)
    with survivor, survivor.raw() as raw:
        raw.chan.send_raw(header({"type": "get", "name": name}))
        msg, body = reply(raw)
        assert (msg.type, msg["name"], body) == ("file", _nfc(name), PAYLOAD)
        raw.chan.send_raw(header({"type": "rm", "name": name}))
        assert expect(raw, "ok")["name"] == _nfc(name)
        assert listed(raw) == []
    assert on_disk(survivor.root) == set()


@pytest.mark.parametrize("name", _names({**REFUSED, **FATAL}))
def test_client_refuses_unsafe_names_before_sending(
    survivor: Survivor, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    src = survivor.client_dir / "src"
    src.write_bytes(PAYLOAD)
    with survivor, survivor.daemon.client() as c:
        with pytest.raises(BadName):
            c.put(src, name=name)
        with pytest.raises(BadName):
            c.get(name, survivor.client_dir)
        with pytest.raises(BadName):
            c.remove(name)
        assert c.list() == []
        sent = [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith(("put ", "get ", "rm "))
        ]
        assert sent == [], "the client sent a name it should have refused"
    assert on_disk(survivor.root) == set()
    assert sorted(p.name for p in survivor.client_dir.iterdir()) == ["src"]


@pytest.mark.parametrize("name", _names(ACCEPTED))
def test_client_round_trips_odd_but_safe_names(survivor: Survivor, name: str) -> None:
    src = survivor.client_dir / "src"
    src.write_bytes(PAYLOAD)
    out = survivor.client_dir / "out"
    out.mkdir()
    with survivor, survivor.daemon.client() as c:
        assert c.put(src, name=name).name == _nfc(name)
        assert [e.name for e in c.list()] == [_nfc(name)]
        got = c.get(name, out)
        assert got.path == out / _nfc(name) and got.path.read_bytes() == PAYLOAD
        assert c.remove(name) == _nfc(name)
    assert on_disk(survivor.root) == set()
    assert [p.name for p in out.iterdir()] == [_nfc(name)]


# --- entries planted in the root by hand ---------------------------------------------------------

PLANTED = "planted"


def _plant(s: Survivor, kind: str) -> Path:
    path = s.root / PLANTED
    target = {
        "link-to-file": s.top / "outside" / "secret.txt",
        "link-to-dir": s.top / "outside" / "dir",
        "link-to-root-parent": s.top,
        "link-to-etc-passwd": Path("/etc/passwd"),
        "dangling-link": s.top / "outside" / "missing",
        "link-loop": path,
    }.get(kind)
    if target is not None:
        os.symlink(target, path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        raise AssertionError(kind)
    return path


PLANT_KINDS = [
    "link-to-file",
    "link-to-dir",
    "link-to-root-parent",
    "link-to-etc-passwd",
    "dangling-link",
    "link-loop",
    "directory",
    "fifo",
]


@pytest.mark.parametrize("kind", PLANT_KINDS)
@pytest.mark.parametrize(
    "op", ["ls", "get", "put", "put-overwrite", "put-identical", "upload-overwrite", "rm"]
)
def test_planted_entry_is_never_listed_read_written_or_deleted(
    survivor: Survivor, kind: str, op: str
) -> None:
    path = _plant(survivor, kind)
    before = _describe(path)
    with survivor, survivor.raw() as raw:
        if op == "ls":
            assert listed(raw) == []
            assert listed(raw, "dir") == ([PLANTED] if kind == "directory" else [])
        elif op == "get":
            raw.send("get", name=PLANTED)
            expect_error(raw, "not-found")
        elif op == "rm" and kind == "directory":  # an empty folder: a user may remove it
            raw.send("rm", name=PLANTED)
            expect(raw, "ok")
            assert not path.exists()
            return
        elif op == "rm":
            raw.send("rm", name=PLANTED)
            expect_error(raw, "not-found")
        else:
            target = survivor.top / "outside" / "secret.txt"
            data = target.read_bytes() if op == "put-identical" else PAYLOAD
            md5 = hashlib.md5(data).hexdigest()
            if op == "upload-overwrite":
                raw.chan.send_raw(upload(PLANTED, data, overwrite=True))
            else:
                raw.send("put", name=PLANTED, size=len(data), md5=md5, overwrite=op.endswith("ite"))
            assert "not a file" in expect_error(raw, "exists")["message"]
        assert listed(raw) == []
    assert _describe(path) == before


def test_planted_hard_link_is_replaced_not_written_through(survivor: Survivor) -> None:
    """A hard link is a regular file in the root: it is served, but a put replaces the name."""
    secret = survivor.top / "outside" / "secret.txt"
    os.link(secret, survivor.root / PLANTED)
    with survivor, survivor.raw() as raw:
        raw.send("get", name=PLANTED)
        assert reply(raw)[1] == BAIT["outside/secret.txt"]
        _put(raw, PLANTED, len(PAYLOAD), overwrite=True, md5=PAYLOAD_MD5)
        raw.chan.send_raw(header({"type": "data", "size": len(PAYLOAD)}) + PAYLOAD)
        expect(raw, "ok")
        assert _plain_file(survivor.root, PLANTED) == PAYLOAD
        raw.send("rm", name=PLANTED)
        expect(raw, "ok")
    assert secret.read_bytes() == BAIT["outside/secret.txt"]


@pytest.mark.parametrize(
    "planted",
    [
        pytest.param(b"a\nb", id="newline"),
        pytest.param(b"\x1b[31mred", id="escape"),
        pytest.param(b"\xff\xfe", id="invalid-utf8"),
        pytest.param("e\u0301".encode(), id="nfd"),
        pytest.param(b".gitkeep", id="gitkeep"),
        pytest.param(b".ftpd-other", id="reserved-prefix"),
        pytest.param("\u202etxt.exe".encode(), id="rlo"),
    ],
)
def test_file_planted_with_an_unsafe_name_is_not_listed(survivor: Survivor, planted: bytes) -> None:
    path = os.path.join(os.fsencode(survivor.root), planted)
    with open(path, "wb") as f:
        f.write(PAYLOAD)
    with survivor, survivor.raw() as raw:
        assert listed(raw) == []
    assert os.path.exists(path)


def _race(s: Survivor, kind: str, overwrite: bool) -> tuple[Raw, Path]:
    """Start an upload, then plant an entry under its name before the body arrives."""
    raw = s.raw()
    _put(raw, PLANTED, len(PAYLOAD), md5=PAYLOAD_MD5, overwrite=overwrite)
    path = _plant(s, kind)
    raw.chan.send_raw(header({"type": "data", "size": len(PAYLOAD)}) + PAYLOAD)
    return raw, path


@pytest.mark.parametrize("kind", ["link-to-file", "link-to-dir", "dangling-link", "fifo"])
def test_entry_planted_mid_upload_is_replaced_with_overwrite(survivor: Survivor, kind: str) -> None:
    with survivor:
        raw, _ = _race(survivor, kind, overwrite=True)
        with raw:
            expect(raw, "ok")
        assert _plain_file(survivor.root, PLANTED) == PAYLOAD


@pytest.mark.parametrize("kind", ["link-to-file", "link-to-dir", "dangling-link", "directory"])
def test_entry_planted_mid_upload_stays_without_overwrite(survivor: Survivor, kind: str) -> None:
    with survivor:
        raw, path = _race(survivor, kind, overwrite=False)
        before = _describe(path)
        with raw:
            expect_error(raw, "exists")
            assert listed(raw) == []
        assert _describe(path) == before


def test_directory_planted_mid_upload_with_overwrite_is_refused(survivor: Survivor) -> None:
    """The publishing rename meets a directory: refused, the directory untouched, no traceback.

    (Up to bc561ed this logged a traceback and answered a fatal `internal-error`.)
    """
    with survivor:
        raw, path = _race(survivor, "directory", overwrite=True)
        with raw:
            refusal = expect(raw, "error")
            assert refusal["code"] in ("exists", "internal-error"), refusal
            if refusal.get("fatal"):
                assert raw.closed_by_server()
            else:
                assert listed(raw) == []
        assert path.is_dir() and not any(path.iterdir())


# --- numbers from a listing ---------------------------------------------------------------------

INDEXES = [
    pytest.param("-1", id="negative"),
    pytest.param("0", id="zero"),
    pytest.param("00", id="zero-zero"),
    pytest.param("4", id="one-past-the-end"),
    pytest.param("0" * 20 + "4", id="leading-zeros-past-the-end"),
    pytest.param(str(10**30), id="huge"),
    pytest.param("1" * 4300, id="4300-digits"),
    pytest.param("9" * 4301, id="4301-digits"),
    pytest.param("abc", id="letters"),
    pytest.param("1.5", id="decimal"),
    pytest.param("1e3", id="exponent"),
    pytest.param("0x1", id="hex"),
    pytest.param("+1", id="plus-sign"),
    pytest.param(" 1", id="leading-space"),
    pytest.param("1 ", id="trailing-space"),
    pytest.param("\u0661", id="arabic-indic-one"),
    pytest.param("\u00b2", id="superscript-two"),
    pytest.param("\uff11", id="fullwidth-one"),
    pytest.param("\u2460", id="circled-one"),
    pytest.param("True", id="bool-true"),
    pytest.param("", id="empty"),
    pytest.param("../1", id="path-to-number"),
]
"""None of these may resolve to one of the three stored files ("a", "b", "c")."""

STORED = ("a", "b", "c")


def _store_three(s: Survivor) -> None:
    for name in STORED:
        (s.root / name).write_bytes(name.encode())


@pytest.mark.parametrize("token", INDEXES)
def test_hostile_number_never_names_a_stored_file(survivor: Survivor, token: str) -> None:
    _store_three(survivor)
    with survivor, survivor.daemon.client() as c:
        seen = c.list()
        for resolver in (lambda: resolve(token, seen, seen), lambda: c.resolve([token])[0]):
            try:
                name = resolver()
            except FtpError as exc:
                assert exc.code in ("not-found", "bad-name"), exc
            else:
                assert name not in STORED, f"{token!r} resolved to {name!r}"
        assert [e.name for e in c.list()] == list(STORED)


def _cli(s: Survivor, *args: str) -> Any:
    env = {
        "FTPC_HOST": s.daemon.host,
        "FTPC_PORT": str(s.daemon.port),
        "FTPC_USER": "alice",
        "FTPC_PASSWORD": ACCOUNTS["alice"][0],
        "FTPC_CACHE_DIR": str(s.client_dir / "cache"),
    }
    return CliRunner().invoke(ftpc_main, list(args), env=env)


@pytest.mark.parametrize("token", INDEXES)
@pytest.mark.parametrize("command", ["get", "rm"])
def test_cli_gives_one_clear_error_for_a_hostile_number(
    survivor: Survivor, command: str, token: str
) -> None:
    _store_three(survivor)
    out = survivor.client_dir / "out"
    with survivor:
        assert _cli(survivor, "ls").exit_code == 0
        args = ["-o", str(out)] if command == "get" else []
        result = _cli(survivor, command, *args, "--", token)
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code in (2, 4), result.output  # usage, or not found
        assert "Traceback" not in result.output
        assert result.stderr.startswith("Error:") and result.stderr.count("\n") == 1
        assert on_disk(survivor.root) == set(STORED)
        assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("token", INDEXES)
def test_shell_gives_one_clear_error_for_a_hostile_number(survivor: Survivor, token: str) -> None:
    _store_three(survivor)
    shell_dir = survivor.client_dir / "shell"
    shell_dir.mkdir()
    lines = iter(["ls", f"get {shlex.quote(token)}", f"rm {shlex.quote(token)}"])
    echoed: list[str] = []

    def read(prompt: str) -> str:
        line = next(lines, None)
        if line is None:
            raise EOFError
        return line

    with survivor, survivor.daemon.client() as c:
        Shell(c, read=read, echo=echoed.append, cwd=shell_dir).run()
        errors = [line for line in echoed if line.startswith("error:")]
        assert len(errors) == 2, echoed
    assert on_disk(survivor.root) == set(STORED)
    assert not any(shell_dir.iterdir())


# --- protocol order and login replays ------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "fields"),
    [
        pytest.param("ls", {}, id="ls"),
        pytest.param("get", {"name": "f"}, id="get"),
        pytest.param("rm", {"name": "f"}, id="rm"),
        pytest.param("put", {"name": "f", "size": 1}, id="put"),
        pytest.param("put", {"name": "../x", "size": 1}, id="put-bad-name"),
        pytest.param("get", {"name": "../x"}, id="get-bad-name"),
    ],
)
def test_transfer_before_login_is_refused_and_the_session_goes_on(
    survivor: Survivor, verb: str, fields: dict[str, Any]
) -> None:
    (survivor.root / "f").write_bytes(PAYLOAD)
    with survivor, survivor.raw(logged_in=False) as raw:
        raw.send(verb, **fields)
        expect_error(raw, "not-authenticated")
        raw.login()
        assert listed(raw) == ["f"]
    assert _plain_file(survivor.root, "f") == PAYLOAD


def test_data_after_an_unauthenticated_put_is_fatal(survivor: Survivor) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        raw.send("put", name="f", size=len(PAYLOAD))
        expect_error(raw, "not-authenticated")
        raw.chan.send_raw(header({"type": "data", "size": len(PAYLOAD)}) + PAYLOAD)
        expect_error(raw, "bad-request", fatal=True)
    assert on_disk(survivor.root) == set()


@dataclass
class Login:
    """One SCRAM exchange seen from the client, kept so that its messages can be replayed."""

    scram: scramp.ScramClient
    first: str
    final: str


def _auth(raw: Raw, user: str = "alice", password: str | None = None) -> Login:
    """Send `auth` and read the challenge; `final` is then the matching client-final message."""
    scram = scramp.ScramClient([MECH], user, password or ACCOUNTS[user][0])
    first = scram.get_client_first()
    raw.send("auth", version=1, mechanism=MECH, data=first)
    scram.set_server_first(expect(raw, "challenge")["data"])
    return Login(scram, first, scram.get_client_final())


def _capture_a_login(s: Survivor) -> Login:
    """What a passive eavesdropper records of a real, successful login."""
    with s.raw(logged_in=False) as raw:
        login = _auth(raw)
        raw.send("auth-final", data=login.final)
        login.scram.set_server_final(expect(raw, "ok")["data"])
        return login


def test_auth_final_without_auth(survivor: Survivor) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        raw.send("auth-final", data="c=biws,r=abc,p=eA==")
        expect_error(raw, "bad-request")
        raw.login()
        assert listed(raw) == []


def test_second_auth_discards_the_first(survivor: Survivor) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        first = _auth(raw)
        second = _auth(raw)
        raw.send("auth-final", data=first.final)
        expect_error(raw, "auth-failed")
        raw.send("auth-final", data=second.final)
        expect_error(raw, "bad-request")  # the failed attempt consumed the pending login
        raw.send("ls")
        expect_error(raw, "not-authenticated")


def test_auth_final_is_consumed_by_success(survivor: Survivor) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        login = _auth(raw)
        raw.send("auth-final", data=login.final)
        assert expect(raw, "ok")["user"] == "alice"
        raw.send("auth-final", data=login.final)
        expect_error(raw, "bad-request")
        assert listed(raw) == []


def test_auth_after_login_keeps_the_identity(survivor: Survivor) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        assert raw.login("reader")["perms"] == "r"
        raw.send("auth", version=1, mechanism=MECH, data="n,,n=alice,r=abc")
        expect_error(raw, "bad-request")
        raw.send("rm", name="f")
        expect_error(raw, "permission-denied")


def test_failed_auth_final_leaves_nothing_to_retry(survivor: Survivor) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        login = _auth(raw, "alice", "not-her-password")
        raw.send("auth-final", data=login.final)
        expect_error(raw, "auth-failed")
        raw.send("auth-final", data=login.final)
        expect_error(raw, "bad-request")
        raw.send("ls")
        expect_error(raw, "not-authenticated")


def test_request_while_a_login_is_pending_does_not_disturb_it(survivor: Survivor) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        login = _auth(raw)
        raw.send("ls")
        expect_error(raw, "not-authenticated")
        raw.send("auth-final", data=login.final)
        expect(raw, "ok")
        assert listed(raw) == []


@pytest.mark.parametrize("with_auth", [False, True], ids=["final-only", "same-client-first"])
def test_replayed_login_from_an_earlier_session_fails(survivor: Survivor, with_auth: bool) -> None:
    """The server nonce is fresh per session, so a recorded proof is worthless."""
    with survivor:
        captured = _capture_a_login(survivor)
        with survivor.raw(logged_in=False) as raw:
            if with_auth:
                raw.send("auth", version=1, mechanism=MECH, data=captured.first)
                expect(raw, "challenge")
            raw.send("auth-final", data=captured.final)
            expect_error(raw, "auth-failed" if with_auth else "bad-request")
            raw.send("ls")
            expect_error(raw, "not-authenticated")


def test_replayed_login_pipelined_in_one_write_fails(survivor: Survivor) -> None:
    with survivor:
        captured = _capture_a_login(survivor)
        with survivor.raw(logged_in=False) as raw:
            raw.chan.send_raw(
                header({"type": "auth", "version": 1, "mechanism": MECH, "data": captured.first})
                + header({"type": "auth-final", "data": captured.final})
                + header({"type": "ls"})
            )
            expect(raw, "challenge")
            expect_error(raw, "auth-failed")
            expect_error(raw, "not-authenticated")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("n,,n=alice", id="no-nonce"),
        pytest.param("n,,n=alice,r=", id="empty-nonce"),
        pytest.param("n,,n=,r=abc", id="empty-user"),
        pytest.param("n,,n=\x00,r=abc", id="nul-user"),
        pytest.param("n,,n==ZZ,r=abc", id="bad-escape"),
        pytest.param("n,,n=alice,r=abc,m=ext", id="mandatory-extension"),
        pytest.param("p=tls-unique,,n=alice,r=abc", id="channel-binding-required"),
        pytest.param("n,a=bob,n=alice,r=abc", id="authzid"),
        pytest.param("n,,n=alice,r=a,b", id="comma-in-nonce"),
        pytest.param("n,,n=alice,r=\u00e9", id="non-ascii-nonce"),
        pytest.param("n,,n=alice,r=" + "a" * 1100, id="over-1024-chars"),
        pytest.param("n,,n=a\ud800,r=abc", id="lone-surrogate-user"),
    ],
)
def test_malformed_scram_client_first_is_refused(survivor: Survivor, data: str) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        raw.chan.send_raw(header({"type": "auth", "version": 1, "mechanism": MECH, "data": data}))
        expect_error(raw, "bad-request")
        raw.login()
        assert listed(raw) == []


@pytest.mark.parametrize(
    "final",
    [
        pytest.param("junk", id="junk"),
        pytest.param("c=biws,r={nonce},p=!!!!", id="proof-not-base64"),
        pytest.param("c=biws,r={nonce},p=YWJj", id="proof-wrong-length"),
        pytest.param("c=biws,r={nonce},p=", id="proof-empty"),
        pytest.param("c=biws,r={nonce}", id="no-proof"),
        pytest.param("c=eSws,r={nonce},p=YWJj", id="binding-flag-differs"),
        pytest.param("c=biws,r=other,p=YWJj", id="wrong-nonce"),
        pytest.param("c=biws,r={nonce},p=\ud800", id="lone-surrogate"),
    ],
)
@pytest.mark.parametrize("user", ["alice", "mallory"])
def test_malformed_scram_client_final_fails_the_login(
    survivor: Survivor, user: str, final: str
) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        raw.send("auth", version=1, mechanism=MECH, data=f"n,,n={user},r=abc")
        nonce = expect(raw, "challenge")["data"].split(",")[0][2:]
        raw.chan.send_raw(header({"type": "auth-final", "data": final.format(nonce=nonce)}))
        expect_error(raw, "auth-failed")
        raw.send("ls")
        expect_error(raw, "not-authenticated")


@pytest.mark.parametrize(
    ("version", "mechanism", "code"),
    [
        pytest.param(2, MECH, "unsupported-version", id="version-2"),
        pytest.param(65535, MECH, "unsupported-version", id="version-65535"),
        pytest.param(1, "PLAIN", "bad-request", id="mechanism-plain"),
        pytest.param(1, "SCRAM-SHA-256-PLUS", "bad-request", id="mechanism-plus"),
        pytest.param(1, "scram-sha-256", "bad-request", id="mechanism-lowercase"),
    ],
)
def test_unsupported_version_or_mechanism_is_refused(
    survivor: Survivor, version: int, mechanism: str, code: str
) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        raw.send("auth", version=version, mechanism=mechanism, data="n,,n=alice,r=abc")
        expect_error(raw, code)
        raw.login()
        assert listed(raw) == []


# --- pipelining -----------------------------------------------------------------------------------


def test_pipelined_before_login_all_answered_in_order(survivor: Survivor) -> None:
    with survivor, survivor.raw(logged_in=False) as raw:
        raw.chan.send_raw(
            header({"type": "ls"}) + header({"type": "get", "name": "f"}) + header({"type": "quit"})
        )
        expect_error(raw, "not-authenticated")
        expect_error(raw, "not-authenticated")
        expect(raw, "ok")
        assert raw.closed_by_server()


def test_pipelined_after_login_all_answered_in_order(survivor: Survivor) -> None:
    (survivor.root / "f").write_bytes(PAYLOAD)
    with survivor, survivor.raw() as raw:
        raw.chan.send_raw(
            header({"type": "rm", "name": "missing"})
            + header({"type": "get", "name": "f"})
            + header({"type": "rm", "name": "f"})
        )
        expect_error(raw, "not-found")
        msg, body = reply(raw)
        assert (msg.type, body) == ("file", PAYLOAD)
        assert expect(raw, "ok")["name"] == "f"
        assert listed(raw) == []


def test_pipelined_after_the_body_of_an_upload(survivor: Survivor) -> None:
    with survivor, survivor.raw() as raw:
        _put(raw, "f", len(PAYLOAD))
        raw.chan.send_raw(
            header({"type": "data", "size": len(PAYLOAD)})
            + PAYLOAD
            + header({"type": "done", "md5": PAYLOAD_MD5})
            + header({"type": "ls"})
            + header({"type": "quit"})
        )
        assert expect(raw, "ok")["md5"] == PAYLOAD_MD5
        assert expect(raw, "listing")["count"] == 1
        expect(raw, "ok")
        assert raw.closed_by_server()


def test_pipelined_many_requests_in_one_write(survivor: Survivor) -> None:
    with survivor, survivor.raw() as raw:
        raw.chan.send_raw(header({"type": "ls"}) * 200)
        for _ in range(200):
            assert expect(raw, "listing")["count"] == 0
        assert listed(raw) == []


def test_nothing_is_answered_after_a_fatal_error_in_a_pipeline(survivor: Survivor) -> None:
    with survivor, survivor.raw() as raw:
        send_quietly(
            raw,
            header({"type": "ls"})
            + b"\x00\x00\x00\x00"
            + header({"type": "put", "name": "f", "size": 1})
            + header({"type": "ls"}),
        )
        expect(raw, "listing")
        expect_error(raw, "bad-request", fatal=True)
    assert on_disk(survivor.root) == set()


def test_nothing_is_answered_after_quit(survivor: Survivor) -> None:
    (survivor.root / "f").write_bytes(PAYLOAD)
    with survivor, survivor.raw() as raw:
        send_quietly(raw, header({"type": "quit"}) + header({"type": "rm", "name": "f"}))
        expect(raw, "ok")
        assert raw.closed_by_server()
    assert _plain_file(survivor.root, "f") == PAYLOAD


def test_entries_in_a_listing_are_well_formed(survivor: Survivor) -> None:
    """The listing a hostile-named file produces still parses as the client expects."""
    for name in ACCEPTED.values():
        (survivor.root / _nfc(name)).write_bytes(PAYLOAD)
    with survivor, survivor.daemon.client() as c:
        entries = c.list()
        assert sorted(e.name for e in entries) == sorted({_nfc(n) for n in ACCEPTED.values()})
        assert all(isinstance(e, Entry) and e.md5 == PAYLOAD_MD5 for e in entries)
