"""The wire protocol: message table, field checks, encoder and decoder. No I/O.

A frame is a 4-byte big-endian length N (1 <= N <= MAX_HEADER), then N bytes
of a UTF-8 JSON object: the header. Its `type` names the message. Only the
types marked `body` in MESSAGES are followed by raw bytes, exactly `size` of
them. The decoder is fed bytes and hands back events; the code that owns the
socket lives in `shared.wire`. See docs/PROTOCOL.md.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from shared.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from shared.fields import FIELDS, MAX_HEADER
from shared.fields import MAX_FRAME_FILES as MAX_FRAME_FILES  # public limits of the protocol
from shared.fields import MAX_FRAME_NAMES as MAX_FRAME_NAMES
from shared.fields import MAX_SIZE as MAX_SIZE
from shared.names import MAX_PATH_CHARS

PROTOCOL_VERSION = 1
MAX_INLINE = 1 << 20
"""Largest file an `upload` may carry; larger files use `put`, whose round trip is then noise."""

_PREFIX = struct.Struct("!I")
PREFIX_SIZE = _PREFIX.size


class Role(Enum):
    """Who sends a message. A decoder for one role accepts the other's messages."""

    CLIENT = "client"
    SERVER = "server"


# --- the message table ---------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One row of the message table: who sends it, its fields, what it needs."""

    sender: Role
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    body: bool = False
    login: bool = True
    perm: str | None = None
    help: str = ""
    one_of: frozenset[str] = frozenset()
    """At most one of these fields may be present (exactly one when `needs_one`)."""
    needs_one: bool = False
    whole: Callable[[Mapping[str, Any]], str | None] | None = None
    """A check across the fields, once each has passed its own."""


def _spec(sender: Role, required: str = "", optional: str = "", **kw: Any) -> Spec:
    return Spec(sender, frozenset(required.split()), frozenset(optional.split()), **kw)


def _inline(fields: Mapping[str, Any]) -> str | None:
    """A body read whole into memory: bounded, and for `uploads` the sum of its files.
    Checked with the header, so that no peer (logged in or not) has a larger one read."""
    size: int = fields["size"]
    if size > MAX_INLINE:
        return f"carries at most {MAX_INLINE} bytes; use 'put'"
    files = fields.get("files")
    if files is not None and sum(entry[1] for entry in files) != size:
        return "has files whose sizes do not add up to 'size'"
    return None


C, S = Role.CLIENT, Role.SERVER
_SUMS = frozenset({"md5", "sum"})
MESSAGES: dict[str, Spec] = {
    # client requests (the verbs): each gets exactly one final reply
    "auth": _spec(C, "version mechanism data", login=False, help="start SCRAM login"),
    "auth-final": _spec(C, "data", login=False, help="finish SCRAM login"),
    "ls": _spec(C, "", "name", perm="r", help="list a folder (the root without a name)"),
    "put": _spec(
        C,
        "name size",
        "md5 sum digest overwrite on_conflict resume",
        perm="w",
        help="upload a file",
        one_of=_SUMS,
    ),
    "upload": _spec(
        C,
        "name size",
        "md5 sum digest overwrite on_conflict",
        body=True,
        perm="w",
        help="upload a small file in one frame, so that uploads can be pipelined",
        one_of=_SUMS,
        needs_one=True,
        whole=_inline,
    ),
    "uploads": _spec(
        C,
        "files size",
        "digest overwrite on_conflict",
        body=True,
        perm="w",
        help="upload many small files in one frame, each answered as its own upload",
        whole=_inline,
    ),
    "get": _spec(
        C, "name", "digest offset prefix", perm="r", help="download a file, or the rest of one"
    ),
    "rm": _spec(C, "name", perm="d", help="delete a file or an empty folder"),
    "mkdir": _spec(C, "name", "parents", perm="w", help="create a folder"),
    "quit": _spec(C, login=False, help="end the session"),
    # client messages inside an upload
    "data": _spec(C, "size", "offset", body=True, help="the file bytes, after `continue`"),
    "done": _spec(C, "", "md5 sum", help="trailer with the checksum", one_of=_SUMS, needs_one=True),
    # server messages
    "hello": _spec(S, "version server mechanisms capabilities max_header", "digests"),
    "challenge": _spec(S, "data"),
    "continue": _spec(S, "", "offset prefix"),
    "ok": _spec(
        S, "", "name size md5 sum digest existed skipped created data user perms", one_of=_SUMS
    ),
    "file": _spec(
        S, "name size mtime", "md5 sum digest offset", body=True, one_of=_SUMS, needs_one=True
    ),
    "listing": _spec(S, "size count", body=True),
    "error": _spec(S, "code message", "fatal"),
}
_CHECKS = {
    type_: {key: FIELDS[key] for key in spec.required | spec.optional}
    for type_, spec in MESSAGES.items()
}
"""Each message's fields and their checks: one lookup per field of every header."""
VERBS = frozenset(
    {"auth", "auth-final", "ls", "put", "upload", "uploads", "get", "rm", "mkdir", "quit"}
)
"""Message types that open a request and so get exactly one final reply (`uploads`: one for
each of its files)."""
PIPELINED = frozenset({"upload", "uploads"})
"""Requests whose replies wait for a group commit: others are answered at once."""


def replies_owed(msg: Message) -> int:
    """How many final replies a request gets: one, or one per file of an `uploads`."""
    return len(msg["files"]) if msg.type == "uploads" else 1


def check_fields(type_: str, fields: Mapping[str, Any], sender: Role) -> str | None:
    """Return why a header is not a valid `type_` message from `sender`, or None."""
    spec = MESSAGES.get(type_)
    if spec is None:
        return f"unknown message type {type_!r}"
    if spec.sender is not sender:
        return f"message {type_!r} may not be sent by the {sender.value}"
    missing = spec.required - fields.keys()
    if missing:
        return f"{type_!r} lacks field {sorted(missing)[0]!r}"
    checks = _CHECKS[type_]
    for key, value in fields.items():
        check = checks.get(key)
        if check is None:
            return f"{type_!r} does not take field {key!r}"
        problem = check(value)
        if problem:
            return f"field {key!r} {problem}"
    present = spec.one_of & fields.keys()
    if len(present) > 1 or (spec.needs_one and not present):
        return f"{type_!r} takes exactly one of {' and '.join(sorted(spec.one_of))}"
    if spec.whole is not None:
        problem = spec.whole(fields)
        if problem:
            return f"{type_!r} {problem}"
    return None


# --- events --------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A decoded header. `fields` holds everything but `type`."""

    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


@dataclass(frozen=True)
class Data:
    """A piece of a body. Pieces arrive in order and add up to the header's `size`."""

    data: bytes


@dataclass(frozen=True)
class EndOfBody:
    """The last byte of a body has been handed out."""


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()
Event = Message | Data | EndOfBody


# --- encoding ------------------------------------------------------------------


def encode(type_: str, sender: Role, **fields: Any) -> bytes:
    """Frame one header. Raises LocalProtocolError for anything the peer would refuse."""
    problem = check_fields(type_, fields, sender)
    if problem:
        raise LocalProtocolError(problem)
    try:
        text = _ENCODER.encode({"type": type_, **fields})
        payload = text.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError here
    except ValueError as exc:
        raise LocalProtocolError(f"cannot encode {type_!r}: {exc}") from exc
    if len(payload) > MAX_HEADER:
        raise LocalProtocolError(f"{type_!r} header is {len(payload)} bytes, over {MAX_HEADER}")
    return _PREFIX.pack(len(payload)) + payload


def encode_stored(name: str, size: int, sums: Mapping[str, str]) -> bytes:
    """The `ok` for an upload just stored: exactly what encode("ok", Role.SERVER, name=name,
    size=size, existed=False, **sums) gives, and raises what it raises.

    It is the reply a server writes most, one for every file of a put_many, and the general
    encoder spent a tenth of a small upload's server time on it, in JSON's machinery and a
    check per field. Here the common shape is checked and written directly; anything else,
    including anything that breaks a rule, goes through encode(), which says what is wrong.
    """
    checks = _CHECKS["ok"]
    if (
        type(name) is str
        and 0 < len(name) <= MAX_PATH_CHARS
        and type(size) is int
        and 0 <= size <= MAX_SIZE
        and (sums.keys() == _MD5_ONLY or sums.keys() == _DIGEST_AND_SUM)
        and all(checks[key](value) is None for key, value in sums.items())
    ):
        tail = "".join(f", {_quote(key)}: {_quote(value)}" for key, value in sums.items())
        text = f'{{"type": "ok", "name": {_quote(name)}, "size": {size}, "existed": false{tail}}}'
        try:
            payload = text.encode("utf-8")
        except UnicodeEncodeError:
            payload = b""  # a lone surrogate: encode() refuses it
        if payload and len(payload) <= MAX_HEADER:
            return _PREFIX.pack(len(payload)) + payload
    return encode("ok", Role.SERVER, name=name, size=size, existed=False, **sums)


_MD5_ONLY = frozenset({"md5"})
_DIGEST_AND_SUM = frozenset({"digest", "sum"})


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)  # in C: a Python loop over the pairs cost more than the JSON parse
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RemoteProtocolError(f"duplicate key {key!r} in header")
            seen.add(key)
    return obj


def _no_constants(name: str) -> Any:
    raise RemoteProtocolError(f"{name} is not allowed in a header")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise RemoteProtocolError("integer in header is absurdly long")
    return int(text)


_quote = json.encoder.encode_basestring  # what _ENCODER writes for a str, without its setup
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False)
"""check_circular off: a header is built from checked fields and never refers to itself, and
the check's bookkeeping was a quarter of encoding a small reply."""
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_int=_bounded_int
)
"""Made once: json.dumps and json.loads build a new coder per call when given options, which
cost a fifth of framing a small file's header. Both are stateless and safe to share."""


def parse_header(payload: bytes, sender: Role) -> Message:
    """Check and parse one header payload sent by `sender`."""
    try:
        text = payload.decode("utf-8")
        obj = _DECODER.decode(text)
    except ProtocolError:
        raise
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"header is not valid UTF-8: {exc.reason}") from exc
    except RecursionError as exc:
        raise RemoteProtocolError("header is nested too deeply") from exc
    except ValueError as exc:
        raise RemoteProtocolError(f"header is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise RemoteProtocolError("header must be a JSON object")
    type_ = obj.pop("type", None)
    if not isinstance(type_, str):
        raise RemoteProtocolError("header lacks a string 'type'")
    problem = check_fields(type_, obj, sender)
    if problem:
        raise RemoteProtocolError(problem)
    return Message(type_, obj)


# --- decoding ------------------------------------------------------------------


class State(Enum):
    LENGTH = "waiting for a length prefix"
    HEADER = "waiting for a header"
    BODY = "reading a body"
    BROKEN = "broken by a protocol error"


class Decoder:
    """Turns the bytes one peer sends into events, one at a time.

    Feed bytes with `receive_data`; call `next_event` until it returns NEED_DATA.
    After a protocol error the stream cannot be resynchronised, so every later
    call raises again.
    """

    def __init__(self, peer: Role, max_header: int = MAX_HEADER) -> None:
        self.peer = peer
        self.max_header = max_header
        self.state = State.LENGTH
        self._buf = bytearray()
        self._pos = 0
        self._header_len = 0
        self.body_remaining = 0
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out."""
        return len(self._buf) - self._pos

    @property
    def mid_header(self) -> bool:
        """True once part of a length prefix or header has arrived, and until it is whole."""
        return self.state is State.HEADER or (self.state is State.LENGTH and self.buffered > 0)

    def receive_data(self, data: bytes) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def consume_body(self, n: int) -> None:
        """Account for `n` body bytes the caller read itself, bypassing the buffer.

        This keeps the framing off the per-chunk path for large bodies.
        """
        if self.state is not State.BODY or self.buffered or not 0 < n <= self.body_remaining:
            raise LocalProtocolError("consume_body called outside an unbuffered body")
        self.body_remaining -= n

    def next_event(self) -> Event | _NeedData:
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except RemoteProtocolError as exc:
            self.state = State.BROKEN
            self._error = exc
            raise

    def _take(self, n: int) -> bytes:
        chunk = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        if self._pos > (1 << 20) and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        return chunk

    def _next(self) -> Event | _NeedData:
        if self.state is State.LENGTH:
            if self.buffered < PREFIX_SIZE:
                return NEED_DATA
            (n,) = _PREFIX.unpack(self._take(PREFIX_SIZE))
            if not 1 <= n <= self.max_header:
                raise RemoteProtocolError(f"header length {n} is outside 1..{self.max_header}")
            self._header_len = n
            self.state = State.HEADER
        if self.state is State.HEADER:
            if self.buffered < self._header_len:
                return NEED_DATA
            message = parse_header(self._take(self._header_len), self.peer)
            if MESSAGES[message.type].body:
                self.state = State.BODY
                self.body_remaining = message["size"]
            else:
                self.state = State.LENGTH
            return message
        if self.state is State.BODY:
            if self.body_remaining == 0:
                self.state = State.LENGTH
                return EndOfBody()
            if not self.buffered:
                return NEED_DATA
            n = min(self.buffered, self.body_remaining)
            self.body_remaining -= n
            return Data(self._take(n))
        raise LocalProtocolError(f"decoder is {self.state.value}")
