"""The sans-IO protocol in `shared.protocol`: framing, header checks, encoder, decoder.

Nothing here touches a socket: bytes go in with `Decoder.receive_data`, events come
out of `next_event()` until it returns NEED_DATA.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shared
from shared import protocol
from shared.errors import (
    WIRE_ERRORS,
    AuthFailed,
    BadName,
    BadRequest,
    Busy,
    ChecksumMismatch,
    Exists,
    FtpError,
    InternalError,
    LocalProtocolError,
    LockedOut,
    NoSpace,
    NotAuthenticated,
    NotEmpty,
    NotFound,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    RemoteProtocolError,
    RequestError,
    TooLarge,
    VersionMismatch,
    error_from_wire,
)
from shared.protocol import (
    FIELDS,
    MAX_FRAME_FILES,
    MAX_FRAME_NAMES,
    MAX_HEADER,
    MAX_INLINE,
    MAX_SIZE,
    MESSAGES,
    NEED_DATA,
    PREFIX_SIZE,
    VERBS,
    Data,
    Decoder,
    EndOfBody,
    Event,
    Message,
    Role,
    State,
    encode,
    parse_header,
)

REPO = Path(__file__).resolve().parent.parent
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
C, S = Role.CLIENT, Role.SERVER
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- helpers -------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """A length prefix and `payload`, with no checks at all."""
    return struct.pack("!I", len(payload)) + payload


def raw(text: str) -> bytes:
    return frame(text.encode("utf-8"))


def drain(decoder: Decoder) -> list[Event]:
    """Every event the decoder can produce from what it holds, up to NEED_DATA."""
    events: list[Event] = []
    for _ in range(100_000):
        event = decoder.next_event()
        if event is NEED_DATA:
            return events
        assert isinstance(event, Message | Data | EndOfBody), event
        events.append(event)
    raise AssertionError("the decoder never asked for more data")


def feed(peer: Role, chunks: Iterable[bytes], max_header: int = MAX_HEADER) -> list[Event]:
    """Feed `chunks` one at a time, draining after each, and return every event."""
    decoder = Decoder(peer, max_header)
    events: list[Event] = []
    for chunk in chunks:
        decoder.receive_data(chunk)
        events += drain(decoder)
    return events


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def merge_data(events: Sequence[Event]) -> list[Event]:
    """Join runs of Data events, so that differently split feeds compare equal."""
    merged: list[Event] = []
    for event in events:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def expected_events(type_: str, fields: dict[str, Any], body: bytes) -> list[Event]:
    events: list[Event] = [Message(type_, fields)]
    if MESSAGES[type_].body:
        if body:
            events.append(Data(body))
        events.append(EndOfBody())
    return events


def broken(payload: bytes, peer: Role = C, max_header: int = MAX_HEADER) -> RemoteProtocolError:
    """Decode one framed `payload`; insist that it is refused, and return the error."""
    decoder = Decoder(peer, max_header)
    decoder.receive_data(frame(payload))
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_event()
    assert decoder.state is State.BROKEN
    return info.value


def other(role: Role) -> Role:
    return S if role is C else C


# --- the package under test ----------------------------------------------------


def test_shared_is_imported_from_this_repository() -> None:
    # A PyPI distribution called "shared" exists; make sure it is not the one in use.
    assert Path(shared.__file__).resolve().parent == REPO / "shared"
    assert Path(protocol.__file__).resolve() == REPO / "shared" / "protocol.py"


# --- the message table ---------------------------------------------------------


def test_every_field_in_the_table_has_a_check() -> None:
    for type_, spec in MESSAGES.items():
        assert spec.required.isdisjoint(spec.optional), type_
        assert spec.required | spec.optional <= FIELDS.keys(), type_
        assert "" not in spec.required | spec.optional, type_


def test_only_data_file_listing_and_uploads_carry_a_body_and_each_has_a_size() -> None:
    bodies = {"data", "file", "listing", "upload", "uploads"}
    assert {t for t, spec in MESSAGES.items() if spec.body} == bodies
    for type_ in bodies:
        assert "size" in MESSAGES[type_].required


def test_verbs_are_all_client_messages() -> None:
    verbs = {"auth", "auth-final", "ls", "put", "upload", "uploads", "get", "rm", "mkdir", "quit"}
    assert verbs == VERBS
    assert all(MESSAGES[v].sender is C for v in VERBS)


# The longest legal value of each field, and the one that costs the most bytes on the
# wire: a control character is escaped as \u00XX, six bytes for one character.
WORST: dict[str, Any] = {
    "version": 65535,
    "server": "\x00" * 256,
    "mechanisms": ["\x00" * 64] * 64,
    "capabilities": ["\x00" * 64] * 64,
    "max_header": MAX_HEADER,
    "mechanism": "\x00" * 64,
    "data": "\x00" * 4096,
    "user": "\x00" * 64,
    "perms": "\x00" * 3,
    "name": "\x00" * 4096,
    "size": MAX_SIZE,
    "md5": MD5,
    "digest": "\x00" * 32,
    "digests": ["\x00" * 32] * 16,
    "sum": "f" * 128,
    "mtime": -(1 << 53),
    "count": 1 << 32,
    "overwrite": False,
    "on_conflict": "overwrite",
    "parents": False,
    "resume": False,
    "offset": MAX_SIZE,
    "prefix": "f" * 128,
    "existed": False,
    "skipped": False,
    "created": False,
    "code": "\x00" * 64,
    "message": "\x00" * 4096,
    "fatal": False,
    # The most files, with the most characters of names, split evenly.
    "files": [["\x00" * (MAX_FRAME_NAMES // MAX_FRAME_FILES), MAX_SIZE, "f" * 128]]
    * MAX_FRAME_FILES,
}


def test_worst_case_values_are_legal_and_at_the_limit() -> None:
    assert WORST.keys() == FIELDS.keys()
    for key, value in WORST.items():
        assert FIELDS[key](value) is None, key
        if key == "files":
            one = value[0]
            assert FIELDS[key]([*value, one]) is not None  # a file too many
            assert FIELDS[key]([[one[0] + "x", *one[1:]], *value[1:]]) is not None  # a name
            assert FIELDS[key]([[one[0], MAX_SIZE + 1, one[2]]]) is not None
        elif isinstance(value, str) and key not in ("md5", "sum", "prefix"):
            assert FIELDS[key](value + "x") is not None, key
        elif isinstance(value, list):
            assert FIELDS[key]([*value, "x"]) is not None, key
            assert FIELDS[key]([value[0] + "x"]) is not None, key


@pytest.mark.parametrize("type_", sorted(MESSAGES))
def test_the_largest_legal_header_of_every_type_can_be_encoded(type_: str) -> None:
    spec = MESSAGES[type_]
    keys = spec.required | spec.optional
    if spec.one_of:  # only one checksum at a time; `sum` is the longer
        keys -= spec.one_of - {"sum"}
    fields = {key: WORST[key] for key in keys}
    if spec.whole is not None:  # a body read whole: at most MAX_INLINE bytes in all
        fields["size"] = MAX_INLINE
        if "files" in fields:
            share = MAX_INLINE // MAX_FRAME_FILES
            fields["files"] = [[name, share, sum_] for name, _, sum_ in WORST["files"]]
    wire = encode(type_, spec.sender, **fields)
    assert len(wire) - PREFIX_SIZE <= MAX_HEADER
    decoder = Decoder(spec.sender)
    decoder.receive_data(wire)
    assert decoder.next_event() == Message(type_, fields)


# --- round trips ---------------------------------------------------------------

# (id, type, sender, fields, body)
SAMPLES: list[tuple[str, str, Role, dict[str, Any], bytes]] = [
    ("auth", "auth", C, {"version": 1, "mechanism": "SCRAM-SHA-256", "data": "n,,n=a,r=x"}, b""),
    ("auth-final", "auth-final", C, {"data": "c=biws,r=xy,p=abc="}, b""),
    ("ls", "ls", C, {}, b""),
    ("put", "put", C, {"name": "report.pdf", "size": 12}, b""),
    (
        "put-all",
        "put",
        C,
        {"name": "文件 😀.txt", "size": MAX_SIZE, "md5": MD5, "overwrite": True},
        b"",
    ),
    ("upload", "upload", C, {"name": "a.txt", "size": 5, "md5": MD5}, b"hello"),
    (
        "upload-overwrite",
        "upload",
        C,
        {"name": "b", "size": 0, "md5": MD5, "overwrite": True},
        b"",
    ),
    (
        "uploads",
        "uploads",
        C,
        {"files": [["a", 2, MD5], ["d/é", 0, MD5], ["b", 3, "f" * 32]], "size": 5},
        b"hiabc",
    ),
    (
        "uploads-xxh3",
        "uploads",
        C,
        {"files": [["x", 1, "0" * 32]], "size": 1, "digest": "xxh3-128", "on_conflict": "skip"},
        b"x",
    ),
    ("get", "get", C, {"name": 'quote " and \\ back'}, b""),
    ("rm", "rm", C, {"name": "x"}, b""),
    ("quit", "quit", C, {}, b""),
    ("done", "done", C, {"md5": MD5}, b""),
    ("data-empty", "data", C, {"size": 0}, b""),
    ("data", "data", C, {"size": 11}, b"hello world"),
    ("data-binary", "data", C, {"size": 256}, bytes(range(256))),
    (
        "hello",
        "hello",
        S,
        {
            "version": 1,
            "server": "ftpd 0.1.0",
            "mechanisms": ["SCRAM-SHA-256"],
            "capabilities": [],
            "max_header": MAX_HEADER,
        },
        b"",
    ),
    ("challenge", "challenge", S, {"data": "r=xy,s=c2FsdA==,i=4096"}, b""),
    ("continue", "continue", S, {}, b""),
    ("ok-empty", "ok", S, {}, b""),
    ("ok-put", "ok", S, {"name": "a", "size": 3, "md5": MD5, "existed": False}, b""),
    ("ok-login", "ok", S, {"data": "v=abc", "user": "alice", "perms": ""}, b""),
    ("file-empty", "file", S, {"name": "e", "size": 0, "md5": MD5, "mtime": 0}, b""),
    (
        "file",
        "file",
        S,
        {"name": "f", "size": 5, "md5": MD5, "mtime": -(1 << 53)},
        b"\x00\xff\n\r\x04",
    ),
    ("listing", "listing", S, {"size": 6, "count": 1}, b"[1, 2]"),
    ("error", "error", S, {"code": "not-found", "message": "没有 «x»"}, b""),
    ("error-fatal", "error", S, {"code": "bad-request", "message": "", "fatal": True}, b""),
]
SAMPLE_IDS = [s[0] for s in SAMPLES]
# A message each side may send, to follow a sample on the wire.
FOLLOWER = {C: ("quit", {}), S: ("continue", {})}


@pytest.mark.parametrize(
    ("type_", "sender", "fields", "body"), [s[1:] for s in SAMPLES], ids=SAMPLE_IDS
)
def test_round_trip_whole(type_: str, sender: Role, fields: dict[str, Any], body: bytes) -> None:
    wire = encode(type_, sender, **fields) + body
    decoder = Decoder(sender)
    decoder.receive_data(wire)
    assert drain(decoder) == expected_events(type_, fields, body)
    assert decoder.state is State.LENGTH
    assert decoder.buffered == 0
    assert decoder.next_event() is NEED_DATA


@pytest.mark.parametrize(
    ("type_", "sender", "fields", "body"), [s[1:] for s in SAMPLES], ids=SAMPLE_IDS
)
def test_round_trip_one_byte_at_a_time(
    type_: str, sender: Role, fields: dict[str, Any], body: bytes
) -> None:
    wire = encode(type_, sender, **fields) + body
    events = feed(sender, bytewise(wire))
    assert merge_data(events) == expected_events(type_, fields, body)
    # One Data event per body byte: the decoder hands out what it has, no more.
    assert [e for e in events if isinstance(e, Data)] == [Data(bytes([b])) for b in body]


@pytest.mark.parametrize(
    ("type_", "sender", "fields", "body"), [s[1:] for s in SAMPLES], ids=SAMPLE_IDS
)
def test_round_trip_with_trailing_bytes(
    type_: str, sender: Role, fields: dict[str, Any], body: bytes
) -> None:
    next_type, next_fields = FOLLOWER[sender]
    following = encode(next_type, sender, **next_fields)
    third = encode(
        "error" if sender is S else "rm",
        sender,
        **({"code": "x", "message": "y"} if sender is S else {"name": "z"}),
    )
    wire = encode(type_, sender, **fields) + body + following + third[:3]
    decoder = Decoder(sender)
    decoder.receive_data(wire)
    events = drain(decoder)
    assert events == [*expected_events(type_, fields, body), Message(next_type, next_fields)]
    # The three bytes of a truncated prefix stay buffered, and finish later.
    assert decoder.buffered == 3
    assert decoder.state is State.LENGTH
    decoder.receive_data(third[3:])
    [last] = drain(decoder)
    assert isinstance(last, Message)
    assert last.type == ("error" if sender is S else "rm")


def test_two_pipelined_messages_in_one_buffer() -> None:
    wire = encode("get", C, name="a") + encode("get", C, name="b")
    assert feed(C, [wire]) == [Message("get", {"name": "a"}), Message("get", {"name": "b"})]


def test_a_whole_upload_pipelined_in_one_buffer() -> None:
    wire = (
        encode("put", C, name="f", size=3)
        + encode("data", C, size=3)
        + b"abc"
        + encode("done", C, md5=MD5)
        + encode("data", C, size=0)
        + encode("quit", C)
    )
    assert feed(C, [wire]) == [
        Message("put", {"name": "f", "size": 3}),
        Message("data", {"size": 3}),
        Data(b"abc"),
        EndOfBody(),
        Message("done", {"md5": MD5}),
        Message("data", {"size": 0}),
        EndOfBody(),
        Message("quit", {}),
    ]
    # Any split gives the same events, bodies aside.
    assert merge_data(feed(C, bytewise(wire))) == feed(C, [wire])


def test_body_bytes_that_look_like_frames_stay_data() -> None:
    inner = encode("quit", C) + encode("rm", C, name="precious")
    wire = encode("data", C, size=len(inner)) + inner + encode("ls", C)
    assert feed(C, [wire]) == [
        Message("data", {"size": len(inner)}),
        Data(inner),
        EndOfBody(),
        Message("ls", {}),
    ]


def test_body_arrives_in_pieces_that_add_up_to_size() -> None:
    body = bytes(range(256)) * 40
    header = encode("file", S, name="f", size=len(body), md5=MD5, mtime=1)
    chunks = [header + body[:7], body[7:1000], body[1000:1001], body[1001:], encode("continue", S)]
    events = feed(S, chunks)
    assert events[0] == Message("file", {"name": "f", "size": len(body), "md5": MD5, "mtime": 1})
    pieces = [e for e in events if isinstance(e, Data)]
    assert [len(p.data) for p in pieces] == [7, 993, 1, len(body) - 1001]
    assert b"".join(p.data for p in pieces) == body
    assert events[-2:] == [EndOfBody(), Message("continue", {})]


def test_large_body_with_buffer_compaction() -> None:
    # More than 1 MiB handed out in one go makes the decoder drop the consumed bytes;
    # what follows must still decode.
    body = bytes(range(251)) * 12_000  # ~2.9 MiB
    wire = encode("data", C, size=len(body)) + body + encode("rm", C, name="x") + encode("ls", C)
    decoder = Decoder(C)
    decoder.receive_data(wire)
    assert drain(decoder) == [
        Message("data", {"size": len(body)}),
        Data(body),
        EndOfBody(),
        Message("rm", {"name": "x"}),
        Message("ls", {}),
    ]
    assert decoder.buffered == 0
    # And in 64 KiB pieces, which exercises the buffer being cleared between feeds.
    step = 1 << 16
    events = feed(C, [wire[i : i + step] for i in range(0, len(wire), step)])
    assert merge_data(events) == feed(C, [wire])


def test_receive_data_accepts_memoryview_and_bytearray() -> None:
    wire = encode("get", C, name="m")
    decoder = Decoder(C)
    decoder.receive_data(memoryview(wire)[:5])
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(bytearray(wire[5:]))
    assert decoder.next_event() == Message("get", {"name": "m"})


def test_message_accessors() -> None:
    message = Message("put", {"name": "a", "size": 1})
    assert message["name"] == "a"
    assert message.get("size") == 1
    assert message.get("md5") is None
    assert message.get("md5", "none") == "none"
    with pytest.raises(KeyError):
        message["md5"]
    assert Message("ls").fields == {}


def test_need_data_is_a_singleton_with_a_readable_repr() -> None:
    assert repr(NEED_DATA) == "NEED_DATA"
    decoder = Decoder(C)
    assert decoder.next_event() is NEED_DATA
    assert decoder.next_event() is NEED_DATA


def test_encode_frames_compact_utf8_json() -> None:
    wire = encode("get", C, name="文件")
    (n,) = struct.unpack("!I", wire[:4])
    assert n == len(wire) - 4
    payload = wire[4:]
    assert "文件".encode() in payload  # not \u-escaped
    assert json.loads(payload) == {"type": "get", "name": "文件"}
    assert parse_header(payload, C) == Message("get", {"name": "文件"})


def test_header_of_exactly_max_header_bytes_is_accepted() -> None:
    payload = b'{"type": "ls"}'
    payload += b" " * (MAX_HEADER - len(payload))
    assert len(payload) == MAX_HEADER
    assert feed(C, [frame(payload)]) == [Message("ls", {})]


def test_json_escapes_decode_to_the_same_text() -> None:
    text = r'{"type": "get", "name": "\u6587\u4ef6 \ud83d\ude00 \" \\ \/"}'
    assert feed(C, [raw(text)]) == [Message("get", {"name": '文件 😀 " \\ /'})]


# --- truncation ----------------------------------------------------------------


@pytest.mark.parametrize("cut", range(PREFIX_SIZE))
def test_truncated_prefix_needs_data(cut: int) -> None:
    wire = encode("get", C, name="abc")
    decoder = Decoder(C)
    decoder.receive_data(wire[:cut])
    assert decoder.next_event() is NEED_DATA
    assert decoder.state is State.LENGTH
    assert decoder.buffered == cut
    decoder.receive_data(wire[cut:])
    assert drain(decoder) == [Message("get", {"name": "abc"})]


def test_truncated_header_needs_data() -> None:
    wire = encode("get", C, name="abc")
    for cut in range(PREFIX_SIZE, len(wire)):
        decoder = Decoder(C)
        decoder.receive_data(wire[:cut])
        assert decoder.next_event() is NEED_DATA
        assert decoder.state is State.HEADER
        assert decoder.next_event() is NEED_DATA
        decoder.receive_data(wire[cut:])
        assert drain(decoder) == [Message("get", {"name": "abc"})]


def test_truncated_body_needs_data() -> None:
    decoder = Decoder(C)
    decoder.receive_data(encode("data", C, size=10) + b"1234")
    assert drain(decoder) == [Message("data", {"size": 10}), Data(b"1234")]
    assert decoder.state is State.BODY
    assert decoder.body_remaining == 6
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(b"567890")
    assert drain(decoder) == [Data(b"567890"), EndOfBody()]
    assert decoder.state is State.LENGTH


def test_bad_length_is_refused_before_the_header_arrives() -> None:
    # The prefix alone is enough to know the stream is broken.
    decoder = Decoder(C)
    decoder.receive_data(struct.pack("!I", MAX_HEADER + 1))
    with pytest.raises(RemoteProtocolError, match="outside"):
        decoder.next_event()


# --- consume_body --------------------------------------------------------------


def test_consume_body_fast_path() -> None:
    decoder = Decoder(C)
    decoder.receive_data(encode("data", C, size=10))
    assert decoder.next_event() == Message("data", {"size": 10})
    assert decoder.next_event() is NEED_DATA
    assert (decoder.state, decoder.body_remaining, decoder.buffered) == (State.BODY, 10, 0)
    decoder.consume_body(4)  # the caller read 4 bytes from the socket itself
    assert decoder.body_remaining == 6
    assert decoder.next_event() is NEED_DATA
    decoder.consume_body(6)
    assert decoder.body_remaining == 0
    assert decoder.next_event() == EndOfBody()
    decoder.receive_data(encode("ls", C))
    assert drain(decoder) == [Message("ls", {})]


def test_consume_body_after_some_buffered_body_bytes() -> None:
    decoder = Decoder(S)
    decoder.receive_data(encode("listing", S, size=8, count=2) + b"abc")
    assert drain(decoder) == [Message("listing", {"size": 8, "count": 2}), Data(b"abc")]
    decoder.consume_body(5)
    assert drain(decoder) == [EndOfBody()]


def body_decoder(size: int = 10, buffered: bytes = b"") -> Decoder:
    decoder = Decoder(C)
    decoder.receive_data(encode("data", C, size=size))
    assert decoder.next_event() == Message("data", {"size": size})
    decoder.receive_data(buffered)
    return decoder


@pytest.mark.parametrize(
    ("decoder_factory", "n"),
    [
        pytest.param(lambda: Decoder(C), 1, id="outside-a-body"),
        pytest.param(lambda: body_decoder(buffered=b"xy"), 1, id="with-buffered-bytes"),
        pytest.param(lambda: body_decoder(), 0, id="zero"),
        pytest.param(lambda: body_decoder(), -1, id="negative"),
        pytest.param(lambda: body_decoder(), 11, id="more-than-remaining"),
        pytest.param(lambda: body_decoder(size=0), 1, id="empty-body"),
    ],
)
def test_consume_body_misuse(decoder_factory: Any, n: int) -> None:
    decoder: Decoder = decoder_factory()
    before = (decoder.state, decoder.body_remaining, decoder.buffered)
    with pytest.raises(LocalProtocolError):
        decoder.consume_body(n)
    # Our own mistake changes nothing and does not break the stream.
    assert (decoder.state, decoder.body_remaining, decoder.buffered) == before
    assert decoder.state is not State.BROKEN


def test_consume_body_in_the_header_state() -> None:
    decoder = Decoder(C)
    decoder.receive_data(encode("data", C, size=5)[:-1])
    assert decoder.next_event() is NEED_DATA
    assert decoder.state is State.HEADER
    with pytest.raises(LocalProtocolError):
        decoder.consume_body(1)


def test_consume_body_after_end_of_body() -> None:
    decoder = body_decoder(size=2, buffered=b"ab")
    assert drain(decoder) == [Data(b"ab"), EndOfBody()]
    with pytest.raises(LocalProtocolError):
        decoder.consume_body(1)


# --- malformed input -----------------------------------------------------------


@pytest.mark.parametrize("length", [0, MAX_HEADER + 1, 1 << 20, 0xFFFFFFFF])
def test_bad_length_prefix(length: int) -> None:
    decoder = Decoder(C)
    decoder.receive_data(struct.pack("!I", length) + b'{"type": "ls"}')
    with pytest.raises(RemoteProtocolError, match=f"header length {length} "):
        decoder.next_event()
    assert decoder.state is State.BROKEN


def test_max_header_argument_lowers_the_limit() -> None:
    wire = encode("get", C, name="x" * 100)
    assert feed(C, [wire], max_header=len(wire) - 4) == [Message("get", {"name": "x" * 100})]
    decoder = Decoder(C, max_header=len(wire) - 5)
    decoder.receive_data(wire)
    with pytest.raises(RemoteProtocolError, match=r"outside 1\.\."):
        decoder.next_event()


DEEP = 100_000

# (id, header payload sent by a client, a fragment of the error message or None)
BAD_FROM_CLIENT: list[tuple[str, bytes, str | None]] = [
    # not UTF-8
    ("invalid-utf8-byte", b'{"type": "get", "name": "\xff"}', "UTF-8"),
    ("overlong-utf8", b'{"type": "get", "name": "\xc0\xaf"}', "UTF-8"),
    ("encoded-surrogate", b'{"type": "get", "name": "\xed\xa0\x80"}', "UTF-8"),
    ("truncated-utf8", b'{"type": "get", "name": "\xe6\x96"}', "UTF-8"),
    ("latin1", '{"type": "get", "name": "café"}'.encode("latin-1"), "UTF-8"),
    ("utf16", '{"type": "ls"}'.encode("utf-16"), "UTF-8"),
    # not JSON
    ("unterminated", b'{"type": "ls"', "JSON"),
    ("single-quotes", b"{'type': 'ls'}", "JSON"),
    ("trailing-garbage", b'{"type": "ls"} x', "JSON"),
    ("two-objects", b'{"type": "ls"}{"type": "ls"}', "JSON"),
    ("trailing-comma", b'{"type": "ls",}', "JSON"),
    ("whitespace-only", b"   ", "JSON"),
    ("nul-byte", b"\x00", "JSON"),
    ("bom", b'\xef\xbb\xbf{"type": "ls"}', "JSON"),
    ("raw-control-in-string", b'{"type": "get", "name": "a\nb"}', "JSON"),
    ("bad-escape", b'{"type": "get", "name": "\\x41"}', "JSON"),
    # not an object
    ("list", b'["ls"]', "object"),
    ("empty-list", b"[]", "object"),
    ("string", b'"ls"', "object"),
    ("number", b"1", "object"),
    ("float", b"1.5", "object"),
    ("null", b"null", "object"),
    ("true", b"true", "object"),
    # no string type
    ("empty-object", b"{}", "'type'"),
    ("type-missing", b'{"name": "a"}', "'type'"),
    ("type-number", b'{"type": 1}', "'type'"),
    ("type-null", b'{"type": null}', "'type'"),
    ("type-list", b'{"type": ["ls"]}', "'type'"),
    ("type-object", b'{"type": {"ls": 1}}', "'type'"),
    ("type-bool", b'{"type": true}', "'type'"),
    # unknown or not ours to send
    ("unknown-type", b'{"type": "nope"}', "unknown message type"),
    ("type-wrong-case", b'{"type": "LS"}', "unknown message type"),
    ("type-empty", b'{"type": ""}', "unknown message type"),
    ("type-padded", b'{"type": " ls"}', "unknown message type"),
    (
        "server-hello",
        b'{"type": "hello", "version": 1, "server": "x", "mechanisms": [], '
        b'"capabilities": [], "max_header": 1}',
        "may not be sent by the client",
    ),
    ("server-ok", b'{"type": "ok"}', "may not be sent by the client"),
    ("server-continue", b'{"type": "continue"}', "may not be sent by the client"),
    ("server-error", b'{"type": "error", "code": "x", "message": ""}', "may not be sent"),
    ("server-challenge", b'{"type": "challenge", "data": "x"}', "may not be sent"),
    ("server-listing", b'{"type": "listing", "size": 0, "count": 0}', "may not be sent"),
    (
        "server-file",
        b'{"type": "file", "name": "a", "size": 0, "md5": "' + MD5.encode() + b'", "mtime": 0}',
        "may not be sent",
    ),
    # fields
    ("unknown-field", b'{"type": "ls", "x": 1}', "does not take field 'x'"),
    (
        "field-of-another-type",
        b'{"type": "put", "name": "a", "size": 1, "mtime": 0}',
        "does not take field 'mtime'",
    ),
    ("type-twice-as-field", b'{"type": "get", "name": "a", "Type": "get"}', "does not take"),
    ("missing-size", b'{"type": "put", "name": "a"}', "lacks field 'size'"),
    ("missing-name", b'{"type": "put", "size": 1}', "lacks field 'name'"),
    ("missing-everything", b'{"type": "auth"}', "lacks field"),
    ("data-without-size", b'{"type": "data"}', "lacks field 'size'"),
    ("done-without-md5", b'{"type": "done"}', "exactly one of md5 and sum"),
    (
        "done-with-both",
        b'{"type": "done", "md5": "%s", "sum": "%s"}' % (b"a" * 32, b"b" * 32),
        "exactly one of md5 and sum",
    ),
    ("upload-without-sum", b'{"type": "upload", "name": "a", "size": 0}', "exactly one of"),
    ("sum-too-short", b'{"type": "done", "sum": "abc"}', "16 to 128 lowercase hex"),
    ("sum-upper", b'{"type": "done", "sum": "%s"}' % (b"A" * 32), "16 to 128 lowercase hex"),
    # duplicate keys
    ("duplicate-type", b'{"type": "ls", "type": "ls"}', "duplicate key 'type'"),
    ("duplicate-type-differs", b'{"type": "get", "name": "a", "type": "rm"}', "duplicate key"),
    ("duplicate-name", b'{"type": "get", "name": "a", "name": "b"}', "duplicate key 'name'"),
    ("duplicate-nested", b'{"type": "ls", "x": {"a": 1, "a": 2}}', "duplicate key 'a'"),
    # numbers JSON does not have, or that are not integers
    ("nan", b'{"type": "data", "size": NaN}', "NaN"),
    ("infinity", b'{"type": "data", "size": Infinity}', "Infinity"),
    ("minus-infinity", b'{"type": "data", "size": -Infinity}', "-Infinity"),
    ("nan-in-unknown-field", b'{"type": "ls", "x": [NaN]}', "NaN"),
    ("float", b'{"type": "data", "size": 1.0}', "integer"),
    ("float-exponent", b'{"type": "data", "size": 1e3}', "integer"),
    ("float-fraction", b'{"type": "data", "size": 1.5}', "integer"),
    ("negative-zero-float", b'{"type": "data", "size": -0.0}', "integer"),
    ("float-overflow", b'{"type": "data", "size": 1e400}', "integer"),
    ("bool-true", b'{"type": "data", "size": true}', "integer"),
    ("bool-false", b'{"type": "data", "size": false}', "integer"),
    ("size-string", b'{"type": "data", "size": "5"}', "integer"),
    ("size-null", b'{"type": "data", "size": null}', "integer"),
    ("negative", b'{"type": "data", "size": -1}', "between"),
    ("over-max-size", b'{"type": "data", "size": %d}' % (MAX_SIZE + 1), "between"),
    ("2-to-the-64", b'{"type": "put", "name": "a", "size": %d}' % (1 << 64), "between"),
    ("21-digits", b'{"type": "data", "size": ' + b"9" * 21 + b"}", "absurdly long"),
    ("21-digits-negative", b'{"type": "data", "size": -' + b"9" * 21 + b"}", "absurdly"),
    ("5000-digits", b'{"type": "data", "size": ' + b"1" * 5000 + b"}", "absurdly long"),
    ("60000-digits", b'{"type": "data", "size": ' + b"1" * 60000 + b"}", "absurdly long"),
    ("long-int-elsewhere", b'{"type": "ls", "x": [' + b"7" * 30 + b"]}", "absurdly long"),
    ("leading-zero", b'{"type": "data", "size": 01}', "JSON"),
    ("plus-sign", b'{"type": "data", "size": +1}', "JSON"),
    ("hex", b'{"type": "data", "size": 0x10}', "JSON"),
    # deeply nested
    (
        "nested-lists",
        b'{"type": "ls", "x": ' + b"[" * 30000 + b"]" * 30000 + b"}",
        "nested too deeply",
    ),
    ("nested-lists-unterminated", b"[" * 65000, "nested too deeply"),
    ("nested-objects", b'{"a": ' * 9000 + b"1" + b"}" * 9000, "nested too deeply"),
    # md5
    ("md5-upper", b'{"type": "done", "md5": "' + MD5.upper().encode() + b'"}', "md5"),
    ("md5-short", b'{"type": "done", "md5": "' + MD5[:-1].encode() + b'"}', "md5"),
    ("md5-long", b'{"type": "done", "md5": "' + MD5.encode() + b'0"}', "md5"),
    ("md5-non-hex", b'{"type": "done", "md5": "' + b"g" * 32 + b'"}', "md5"),
    ("md5-newline", b'{"type": "done", "md5": "' + MD5.encode() + b'\\n"}', "md5"),
    ("md5-spaces", b'{"type": "done", "md5": " ' + MD5[1:].encode() + b'"}', "md5"),
    ("md5-number", b'{"type": "done", "md5": 1}', "md5"),
    ("md5-null", b'{"type": "done", "md5": null}', "md5"),
    ("md5-empty", b'{"type": "done", "md5": ""}', "md5"),
    ("md5-in-put", b'{"type": "put", "name": "a", "size": 1, "md5": "x"}', "md5"),
    # wrong field types and lengths
    ("name-number", b'{"type": "get", "name": 5}', "string"),
    ("name-null", b'{"type": "get", "name": null}', "string"),
    ("name-list", b'{"type": "get", "name": ["a"]}', "string"),
    ("name-object", b'{"type": "get", "name": {}}', "string"),
    ("name-empty", b'{"type": "get", "name": ""}', "empty"),
    ("name-too-long", b'{"type": "rm", "name": "' + b"a" * 4097 + b'"}', "at most 4096"),
    (
        "overwrite-string",
        b'{"type": "put", "name": "a", "size": 1, "overwrite": "true"}',
        "true or false",
    ),
    ("overwrite-int", b'{"type": "put", "name": "a", "size": 1, "overwrite": 1}', "true or false"),
    ("overwrite-null", b'{"type": "put", "name": "a", "size": 1, "overwrite": null}', "true or"),
    ("version-zero", b'{"type": "auth", "version": 0, "mechanism": "m", "data": "d"}', "between"),
    (
        "version-string",
        b'{"type": "auth", "version": "1", "mechanism": "m", "data": "d"}',
        "integer",
    ),
    (
        "mechanism-too-long",
        b'{"type": "auth", "version": 1, "mechanism": "' + b"m" * 65 + b'", "data": "d"}',
        "at most 64",
    ),
    ("auth-data-empty", b'{"type": "auth-final", "data": ""}', "empty"),
    ("uploads-no-files", b'{"type": "uploads", "size": 0}', "lacks field 'files'"),
    ("uploads-empty", b'{"type": "uploads", "files": [], "size": 0}', "1 to 64 files"),
    ("uploads-not-list", b'{"type": "uploads", "files": {}, "size": 0}', "1 to 64 files"),
    ("uploads-entry-object", b'{"type": "uploads", "files": [{}], "size": 0}', "entry 0"),
    (
        "uploads-entry-short",
        b'{"type": "uploads", "files": [["a", 1]], "size": 1}',
        "name, size and checksum",
    ),
    (
        "uploads-entry-size-text",
        b'{"type": "uploads", "files": [["a", "1", "%s"]], "size": 1}' % MD5.encode(),
        "entry 0: must be an integer",
    ),
    (
        "uploads-entry-bad-sum",
        b'{"type": "uploads", "files": [["a", 1, "%s"], ["b", 1, "XYZ"]], "size": 2}'
        % MD5.encode(),
        "entry 1: must be 16 to 128 lowercase hex",
    ),
    (
        "uploads-entry-empty-name",
        b'{"type": "uploads", "files": [["", 1, "%s"]], "size": 1}' % MD5.encode(),
        "entry 0: must not be empty",
    ),
    (
        "uploads-too-many",
        json.dumps({"type": "uploads", "files": [["a", 0, MD5]] * 65, "size": 0}).encode(),
        "1 to 64 files",
    ),
    (
        "uploads-names-too-long",
        json.dumps({"type": "uploads", "files": [["n" * 4096, 0, MD5]] * 3, "size": 0}).encode(),
        "at most 8192 characters of names",
    ),
    (
        "upload-over-inline",
        b'{"type": "upload", "name": "a", "size": %d, "md5": "%s"}'
        % (MAX_INLINE + 1, MD5.encode()),
        "'upload' carries at most 1048576 bytes",
    ),
    (
        "uploads-over-inline",
        json.dumps(
            {
                "type": "uploads",
                "files": [["a", MAX_INLINE, MD5], ["b", 1, MD5]],
                "size": MAX_INLINE + 1,
            }
        ).encode(),
        "'uploads' carries at most",
    ),
    (
        "uploads-sizes-short",
        json.dumps({"type": "uploads", "files": [["a", 2, MD5]], "size": 3}).encode(),
        "do not add up to 'size'",
    ),
    (
        "uploads-sizes-long",
        json.dumps(
            {"type": "uploads", "files": [["a", 2, MD5], ["b", 2, MD5]], "size": 3}
        ).encode(),
        "do not add up to 'size'",
    ),
    (
        "uploads-with-md5",
        b'{"type": "uploads", "files": [["a", 0, "%s"]], "size": 0, "md5": "%s"}'
        % (MD5.encode(), MD5.encode()),
        "does not take field 'md5'",
    ),
]


@pytest.mark.parametrize(
    ("payload", "fragment"), [b[1:] for b in BAD_FROM_CLIENT], ids=[b[0] for b in BAD_FROM_CLIENT]
)
def test_malformed_header_from_a_client(payload: bytes, fragment: str | None) -> None:
    assert len(payload) <= MAX_HEADER
    error = broken(payload, C)
    if fragment is not None:
        assert fragment in str(error)


BAD_FROM_SERVER: list[tuple[str, bytes, str | None]] = [
    ("client-put", b'{"type": "put", "name": "a", "size": 1}', "may not be sent by the server"),
    ("client-ls", b'{"type": "ls"}', "may not be sent by the server"),
    ("client-quit", b'{"type": "quit"}', "may not be sent by the server"),
    ("client-data", b'{"type": "data", "size": 0}', "may not be sent by the server"),
    ("client-done", b'{"type": "done", "md5": "' + MD5.encode() + b'"}', "may not be sent"),
    ("client-auth-final", b'{"type": "auth-final", "data": "x"}', "may not be sent"),
    (
        "mechanisms-string",
        b'{"type": "hello", "version": 1, "server": "s", '
        b'"mechanisms": "SCRAM", "capabilities": [], "max_header": 1}',
        "list",
    ),
    (
        "mechanisms-65",
        b'{"type": "hello", "version": 1, "server": "s", "mechanisms": ['
        + b", ".join([b'"m"'] * 65)
        + b'], "capabilities": [], "max_header": 1}',
        "list",
    ),
    (
        "mechanisms-empty-item",
        b'{"type": "hello", "version": 1, "server": "s", '
        b'"mechanisms": [""], "capabilities": [], "max_header": 1}',
        "non-empty",
    ),
    (
        "capabilities-number",
        b'{"type": "hello", "version": 1, "server": "s", '
        b'"mechanisms": [], "capabilities": [1], "max_header": 1}',
        "non-empty",
    ),
    (
        "max-header-zero",
        b'{"type": "hello", "version": 1, "server": "s", '
        b'"mechanisms": [], "capabilities": [], "max_header": 0}',
        "between",
    ),
    (
        "max-header-over",
        b'{"type": "hello", "version": 1, "server": "s", '
        b'"mechanisms": [], "capabilities": [], "max_header": 65537}',
        "between",
    ),
    ("existed-string", b'{"type": "ok", "existed": "no"}', "true or false"),
    ("perms-too-long", b'{"type": "ok", "perms": "rwdx"}', "at most 3"),
    ("count-negative", b'{"type": "listing", "size": 0, "count": -1}', "between"),
    (
        "mtime-float",
        b'{"type": "file", "name": "a", "size": 0, "md5": "' + MD5.encode() + b'", "mtime": 1.5}',
        "integer",
    ),
    (
        "mtime-too-big",
        b'{"type": "file", "name": "a", "size": 0, "md5": "'
        + MD5.encode()
        + b'", "mtime": %d}' % ((1 << 53) + 1),
        "between",
    ),
    (
        "file-size-negative",
        b'{"type": "file", "name": "a", "size": -5, "md5": "' + MD5.encode() + b'", "mtime": 0}',
        "between",
    ),
    ("error-without-message", b'{"type": "error", "code": "x"}', "lacks field 'message'"),
    ("error-code-number", b'{"type": "error", "code": 404, "message": ""}', "string"),
    ("fatal-string", b'{"type": "error", "code": "x", "message": "", "fatal": "yes"}', "true or"),
]


@pytest.mark.parametrize(
    ("payload", "fragment"), [b[1:] for b in BAD_FROM_SERVER], ids=[b[0] for b in BAD_FROM_SERVER]
)
def test_malformed_header_from_a_server(payload: bytes, fragment: str | None) -> None:
    error = broken(payload, S)
    if fragment is not None:
        assert fragment in str(error)


def test_deep_nesting_beyond_the_header_limit_does_not_escape_as_recursion_error() -> None:
    # 100,000 '[' do not fit a normal header, so raise the decoder's limit to get them parsed.
    error = broken(b"[" * DEEP, C, max_header=2 * DEEP)
    assert "nested too deeply" in str(error)
    error = broken(b"[" * DEEP + b"]" * DEEP, C, max_header=2 * DEEP)
    assert "nested too deeply" in str(error)
    # parse_header itself has no length limit.
    with pytest.raises(RemoteProtocolError, match="nested too deeply"):
        parse_header(b'{"type": "ls", "x": ' + b"[" * DEEP, C)


def test_remote_protocol_error_is_a_protocol_error() -> None:
    error = broken(b"[]", C)
    assert isinstance(error, ProtocolError)
    assert not isinstance(error, LocalProtocolError)
    assert error.code == "bad-request"


def test_broken_decoder_keeps_raising() -> None:
    decoder = Decoder(C)
    decoder.receive_data(raw('{"type": "nope"}') + encode("ls", C))
    with pytest.raises(RemoteProtocolError) as first:
        decoder.next_event()
    assert decoder.state is State.BROKEN
    # Good bytes afterwards do not resynchronise the stream.
    decoder.receive_data(encode("quit", C))
    for _ in range(3):
        with pytest.raises(RemoteProtocolError) as again:
            decoder.next_event()
        assert again.value is first.value
        assert decoder.state is State.BROKEN


def test_bad_second_message_after_a_good_first() -> None:
    decoder = Decoder(C)
    decoder.receive_data(encode("ls", C) + raw('{"type": "ls", "type": "ls"}'))
    assert decoder.next_event() == Message("ls", {})
    with pytest.raises(RemoteProtocolError, match="duplicate"):
        decoder.next_event()
    with pytest.raises(RemoteProtocolError, match="duplicate"):
        decoder.next_event()


def test_bad_length_after_a_body() -> None:
    decoder = Decoder(C)
    decoder.receive_data(encode("data", C, size=2) + b"ok" + struct.pack("!I", 0))
    assert drain_until_error(decoder) == [Message("data", {"size": 2}), Data(b"ok"), EndOfBody()]


def drain_until_error(decoder: Decoder) -> list[Event]:
    events: list[Event] = []
    with pytest.raises(RemoteProtocolError):
        while (event := decoder.next_event()) is not NEED_DATA:
            events.append(event)  # type: ignore[arg-type]
    return events


def test_parse_header_returns_fields_without_type() -> None:
    message = parse_header(b'{"size": 3, "type": "put", "name": "a", "overwrite": false}', C)
    assert message == Message("put", {"size": 3, "name": "a", "overwrite": False})
    assert "type" not in message.fields


def test_lone_surrogate_escape_decodes_to_a_string() -> None:
    # Valid JSON, though not valid Unicode: the header layer lets it through and the
    # name check refuses it (see test_names); it must not be a crash either way.
    [message] = feed(C, [raw('{"type": "get", "name": "\\ud800"}')])
    assert message == Message("get", {"name": "\ud800"})


# --- encode refuses our own mistakes ------------------------------------------


@pytest.mark.parametrize(
    ("type_", "sender", "fields", "fragment"),
    [
        ("nope", C, {}, "unknown message type"),
        ("", C, {}, "unknown message type"),
        ("hello", C, dict(WORST), "may not be sent by the client"),
        ("ok", C, {}, "may not be sent by the client"),
        ("put", S, {"name": "a", "size": 1}, "may not be sent by the server"),
        ("quit", S, {}, "may not be sent by the server"),
        ("get", C, {"name": 5}, "string"),
        ("get", C, {"name": b"a"}, "string"),
        ("get", C, {"name": ""}, "empty"),
        ("put", C, {"name": "a", "size": 1, "overwrite": "yes"}, "true or false"),
        ("put", C, {"name": "a", "size": 1, "overwrite": 1}, "true or false"),
        ("put", C, {"name": "a", "size": True}, "integer"),
        ("put", C, {"name": "a", "size": 1.0}, "integer"),
        ("put", C, {"name": "a", "size": float("nan")}, "integer"),
        ("put", C, {"name": "a", "size": -1}, "between"),
        ("put", C, {"name": "a", "size": MAX_SIZE + 1}, "between"),
        ("done", C, {"md5": MD5.upper()}, "md5"),
        ("put", C, {"name": "a"}, "lacks field 'size'"),
        ("ls", C, {"path": "a"}, "does not take field 'path'"),
        ("put", C, {"name": "a", "size": 1, "on_conflict": "merge"}, "must be one of"),
        ("mkdir", C, {}, "lacks field 'name'"),
        ("ls", C, {"type": "ls"}, "does not take field 'type'"),
    ],
)
def test_encode_refuses_bad_messages(
    type_: str, sender: Role, fields: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(LocalProtocolError, match=fragment):
        encode(type_, sender, **fields)


def test_encode_refuses_a_header_over_max_header(monkeypatch: pytest.MonkeyPatch) -> None:
    # With today's field limits no legal header reaches 64 KiB (see the worst-case test
    # above), so lower the limit to reach the check.
    ok = encode("get", C, name="x" * 100)
    monkeypatch.setattr(protocol, "MAX_HEADER", len(ok) - PREFIX_SIZE)
    assert encode("get", C, name="x" * 100) == ok
    with pytest.raises(LocalProtocolError, match="over"):
        encode("get", C, name="x" * 101)


def test_encode_refuses_a_lone_surrogate() -> None:
    # It cannot be written as UTF-8; this must be our error, not a UnicodeEncodeError.
    with pytest.raises(LocalProtocolError, match="cannot encode"):
        encode("get", C, name="a\udcffb")
    with pytest.raises(LocalProtocolError):
        encode("error", S, code="internal-error", message="\ud800")


def _outcome(build: Any) -> bytes | str:
    try:
        return bytes(build())
    except LocalProtocolError as exc:
        return f"LocalProtocolError: {exc}"


_SUM_SHAPES = st.one_of(
    st.fixed_dictionaries({"md5": st.sampled_from(["0" * 32, "a1" * 16, "A" * 32, "0" * 31, ""])}),
    st.fixed_dictionaries(
        {
            "digest": st.sampled_from(["xxh3-128", "d" * 33, ""]),
            "sum": st.sampled_from(["ab" * 8, "0" * 128, "0" * 129, "0" * 15, "g" * 32]),
        }
    ),
    st.dictionaries(st.sampled_from(["md5", "sum", "digest", "user", "x"]), st.just("0" * 32)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.one_of(
        st.text(max_size=40),
        st.sampled_from(["", "x" * 4096, "x" * 4097, "a\udcffb", 'q"uote\\back\x01', "\u2028"]),
        st.integers(),
    ),
    size=st.one_of(
        st.sampled_from([-1, 0, 1, 2**50, 2**50 + 1, True, 1.0, "1", None]),
        st.integers(min_value=0, max_value=2**50),
    ),
    sums=_SUM_SHAPES,
)
def test_encode_stored_writes_or_refuses_exactly_what_encode_does(
    name: Any, size: Any, sums: dict[str, str]
) -> None:
    """The fast path for the commonest reply must be byte for byte the general encoder's, and
    refuse (with the same message) whatever it refuses."""
    general = _outcome(lambda: encode("ok", S, name=name, size=size, existed=False, **sums))
    assert _outcome(lambda: protocol.encode_stored(name, size, sums)) == general


def test_encode_stored_takes_the_fast_path_for_plain_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not merely equal: the common shapes must not go through encode() at all."""

    def refuse(*args: Any, **kw: Any) -> bytes:
        raise AssertionError("took the general encoder")

    monkeypatch.setattr(protocol, "encode", refuse)
    for sums in ({"md5": "0" * 32}, {"digest": "xxh3-128", "sum": "ab" * 16}):
        for name in ("f", 'dir/caf\u00e9 "q".txt', "x" * 4096):
            header = parse_header(protocol.encode_stored(name, 12, sums)[PREFIX_SIZE:], S)
            assert (header.type, header["name"], header["size"]) == ("ok", name, 12)
            assert header["existed"] is False and {k: header[k] for k in sums} == sums


# --- errors on the wire --------------------------------------------------------

WIRE_CODES: list[tuple[str, type[FtpError]]] = [
    ("not-authenticated", NotAuthenticated),
    ("auth-failed", AuthFailed),
    ("permission-denied", PermissionDenied),
    ("bad-name", BadName),
    ("not-found", NotFound),
    ("exists", Exists),
    ("not-empty", NotEmpty),
    ("checksum-mismatch", ChecksumMismatch),
    ("too-large", TooLarge),
    ("no-space", NoSpace),
    ("quota-exceeded", QuotaExceeded),
    ("busy", Busy),
    ("locked-out", LockedOut),
    ("bad-request", BadRequest),
    ("internal-error", InternalError),
    ("unsupported-version", VersionMismatch),
]


@pytest.mark.parametrize(("code", "cls"), WIRE_CODES, ids=[c for c, _ in WIRE_CODES])
def test_error_from_wire_maps_each_code_to_its_class(code: str, cls: type[FtpError]) -> None:
    err = error_from_wire(code, "what went wrong")
    assert type(err) is cls
    assert err.code == code
    assert err.message == "what went wrong"
    assert str(err) == "what went wrong"


def test_wire_error_table_is_exactly_the_known_codes() -> None:
    assert dict(WIRE_CODES) == WIRE_ERRORS
    # Every error a server may send is a RequestError, so the client's handling of a
    # refused request covers them all (VersionMismatch included, so the server answers it).
    assert all(issubclass(cls, RequestError) for cls in WIRE_ERRORS.values())
    # Local-only errors never come off the wire.
    assert (
        not {"network", "untrusted", "local", "local-exists", "stale-listing", "error"}
        & WIRE_ERRORS.keys()
    )


def test_error_from_wire_keeps_an_unknown_code() -> None:
    err = error_from_wire("rate-limited", "too many files")
    assert type(err) is RequestError
    assert err.code == "rate-limited"
    assert str(err) == "too many files"
    # The code is set on the instance, not on the class.
    assert RequestError.code == "error"
    assert error_from_wire("other", "x").code == "other"
    assert err.code == "rate-limited"


def test_an_error_message_round_trips_to_the_typed_error() -> None:
    wire = encode("error", S, code=NotFound.code, message="no file named 'x'")
    [message] = feed(S, [wire])
    assert isinstance(message, Message)
    err = error_from_wire(message["code"], message["message"])
    assert isinstance(err, NotFound)
    assert str(err) == "no file named 'x'"


# --- properties ----------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


def _json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    )


json_values = st.recursive(json_scalars, _json_containers, max_leaves=10)
json_headers = st.builds(
    lambda type_, fields: {"type": type_, **fields},
    st.sampled_from([*MESSAGES, "nope"]),
    st.dictionaries(st.sampled_from([*FIELDS, "x"]), json_values, max_size=5),
)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")  # ASCII: escapes any lone surrogate


def _framed(payloads: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return payloads.map(frame)


wire_pieces = st.one_of(
    st.binary(max_size=64),
    _framed(st.binary(max_size=64)),
    _framed(json_values.map(_json_bytes)),
    _framed(json_headers.map(_json_bytes)),
    # a body-carrying header followed by a few bytes of body
    st.tuples(
        st.sampled_from(
            [
                raw('{"type": "data", "size": 3}'),
                raw('{"type": "listing", "size": 2, "count": 0}'),
                raw(f'{{"type": "file", "name": "a", "size": 1, "md5": "{MD5}", "mtime": 0}}'),
            ]
        ),
        st.binary(max_size=4),
    ).map(b"".join),
)


@PROPERTY
@given(
    role=st.sampled_from(list(Role)),
    pieces=st.lists(wire_pieces, max_size=5),
    splits=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_any_bytes_give_events_need_data_or_a_remote_protocol_error(
    role: Role, pieces: list[bytes], splits: list[int]
) -> None:
    data = b"".join(pieces)
    cuts = sorted({min(s, len(data)) for s in splits} | {0, len(data)})
    decoder = Decoder(role)
    in_body: int | None = None  # body bytes still due after a body header
    try:
        for start, end in itertools.pairwise(cuts):
            decoder.receive_data(data[start:end])
            while (event := decoder.next_event()) is not NEED_DATA:
                if isinstance(event, Message):
                    assert in_body is None
                    assert MESSAGES[event.type].sender is role
                    in_body = event["size"] if MESSAGES[event.type].body else None
                elif isinstance(event, Data):
                    assert in_body is not None
                    assert 0 < len(event.data) <= in_body
                    in_body -= len(event.data)
                else:
                    assert isinstance(event, EndOfBody)
                    assert in_body == 0
                    in_body = None
    except RemoteProtocolError:
        assert decoder.state is State.BROKEN
        with pytest.raises(RemoteProtocolError):
            decoder.next_event()
    else:
        assert decoder.state is not State.BROKEN
        assert decoder.next_event() is NEED_DATA


names = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)
md5s = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
valid_requests = st.one_of(
    st.builds(lambda: ("ls", {})),
    st.builds(lambda name: ("get", {"name": name}), names),
    st.builds(
        lambda name, size, extra: ("put", {"name": name, "size": size, **extra}),
        names,
        st.integers(min_value=0, max_value=MAX_SIZE),
        st.fixed_dictionaries({}, optional={"md5": md5s, "overwrite": st.booleans()}),
    ),
)


@PROPERTY
@given(request=valid_requests, data=st.data())
def test_valid_requests_decode_the_same_however_they_are_split(
    request: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    type_, fields = request
    wire = encode(type_, C, **fields) + encode("quit", C)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(wire)), max_size=8))
    cuts = sorted({0, len(wire), *cuts})
    chunks = [wire[a:b] for a, b in itertools.pairwise(cuts)]
    assert feed(C, chunks) == [Message(type_, fields), Message("quit", {})]
