"""Channel.send_reading: a pipelining client never waits on a server that waits on it."""

from __future__ import annotations

import os
import resource
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpd import handler
from ftpd.tls import load_server_tls, make_self_signed
from ftpd.transfers import TransferVerbs
from shared import wire
from shared.errors import (
    BadRequest,
    RemoteProtocolError,
    RequestError,
    TransportError,
)
from shared.protocol import Role, encode
from shared.ratelimit import TokenBucket
from shared.wire import Channel
from tests.conftest import Daemon

BUFFER = 4096
"""Socket buffers set by hand (the kernel doubles them, and stops growing them)."""
EACH_WAY = 2 << 20
"""Far more than both buffers of a direction hold: whoever sends this without reading
waits until the other side reads."""


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A loopback TCP connection whose buffers are small and fixed."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    for s in (client, server):
        s.settimeout(5)
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def replies(count: int) -> bytes:
    return b"".join(
        encode("ok", Role.SERVER, name=f"f{i:06}", size=i, existed=False, md5="0" * 32)
        for i in range(count)
    )


def answering_server(
    server: socket.socket, answer: bytes, got: list[int], tls: ssl.SSLContext | None = None
) -> threading.Thread:
    """A peer that writes all its replies before it reads anything, as a group commit does."""

    def run() -> None:
        nonlocal server
        try:
            if tls is not None:
                server = tls.wrap_socket(server, server_side=True)
            server.sendall(answer)
            total = 0
            while total < EACH_WAY:
                chunk = server.recv(1 << 16)
                if not chunk:
                    break
                total += len(chunk)
            got.append(total)
        except OSError:
            got.append(-1)
        finally:
            if tls is not None:
                server.close()  # the SSL socket took over the fixture's descriptor

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_sending_while_the_peer_sends_reads_its_replies_instead_of_waiting(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    answer = replies(EACH_WAY // 70)  # about 2 MiB of `ok`s
    got: list[int] = []
    thread = answering_server(server, answer, got)
    chan = Channel(client, Role.CLIENT)
    chan.send_reading(b"\0" * EACH_WAY)
    thread.join(10)
    assert got == [EACH_WAY]  # the peer's sendall finished, and it read all we sent
    names = [chan.recv_message()["name"] for _ in range(EACH_WAY // 70)]
    assert names == [f"f{i:06}" for i in range(EACH_WAY // 70)]  # in order, none lost


def test_without_reading_both_sides_wait_until_a_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """What send_reading is for: the plain send waits on a peer that is waiting on it."""
    client, server = pair
    client.settimeout(1)
    server.settimeout(1)
    got: list[int] = []
    thread = answering_server(server, replies(EACH_WAY // 70), got)
    with pytest.raises(TransportError):
        Channel(client, Role.CLIENT).send_raw(b"\0" * EACH_WAY)
    thread.join(10)
    assert got == [-1]  # its sendall timed out too


def test_a_peer_that_closes_while_we_send_is_a_transport_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    server.sendall(replies(10))
    server.close()
    with pytest.raises(TransportError):
        Channel(client, Role.CLIENT).send_reading(b"\0" * EACH_WAY)


def test_over_tls_too(pair: tuple[socket.socket, socket.socket], tmp_path: Path) -> None:
    """An SSL write returns only when all it was given is out, so send_reading hands it small
    records: a large write would wait on a peer that is waiting to be read. (A send buffer of
    a few KiB cannot take even one record, so this one is 32 KiB, less than Linux gives a
    connection; the data is still 30 times what the buffers hold.)"""
    client, server = pair
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 << 10)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed("127.0.0.1", cert, key)
    got: list[int] = []
    thread = answering_server(
        server, replies(EACH_WAY // 70), got, tls=load_server_tls(cert, key).context
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # this test is about the flow, not about trust
    secure = context.wrap_socket(client, server_hostname="127.0.0.1")
    try:
        chan = Channel(secure, Role.CLIENT)
        chan.send_reading(b"\0" * EACH_WAY)
        thread.join(10)
        assert got == [EACH_WAY]
        assert chan.recv_message()["name"] == "f000000"
    finally:
        secure.close()


# --- found in a review of send_reading, and what it checked -----------------------


def test_put_many_reports_the_servers_fatal_error_and_the_files_it_stored(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review (it predates send_reading). The server answers the 8 files of the
    first two frames (`ok`, stored), then a fatal `bad-request` for the third, and closes
    with the client's later frames unread (a reset). The replies were in the client's
    receive queue (Linux keeps them past the reset), but the send failed first and
    put_many raised "connection lost while sending": on_result heard of none of the stored
    files, the server's error was never shown, and --retries sent the files again. Now the
    replies that arrived are read, and the server's error is raised."""
    calls = [0]
    real = TransferVerbs.do_uploads

    def third_frame_is_bad(self: TransferVerbs, msg: object) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise RemoteProtocolError("injected: a bad third frame")
        real(self, msg)  # type: ignore[arg-type]

    monkeypatch.setattr(handler.Session, "do_uploads", third_frame_is_bad)
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(600):  # 64 KiB each: 4 to a frame, far more than the buffers hold
        paths.append(src / f"f{i:03}")
        paths[-1].write_bytes(os.urandom(64 << 10))
    seen: list[str] = []
    with daemon.client() as c, pytest.raises(RequestError) as caught:
        c.put_many(paths, on_result=lambda p, o: seen.append(type(o).__name__))
    assert isinstance(caught.value, BadRequest)
    assert seen == ["PutResult"] * 8 + ["BadRequest"]


def test_send_reading_on_a_socket_without_timeout_still_reads(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Found in review. On a socket without a timeout the whole view went to a blocking
    send, which returns only when all of it is queued: the very wait on a peer that waits
    on us that send_reading exists to avoid, with no timeout to end it (Client(timeout=None)
    gets there). Sends are now MSG_DONTWAIT."""
    client, server = pair
    client.settimeout(None)
    server.settimeout(3)
    got: list[int] = []
    peer = answering_server(server, replies(EACH_WAY // 70), got)
    outcome: list[object] = []

    def run() -> None:
        try:
            Channel(client, Role.CLIENT).send_reading(b"\0" * EACH_WAY)
            outcome.append("sent")
        except TransportError as exc:
            outcome.append(exc)

    sender = threading.Thread(target=run, daemon=True)
    sender.start()
    sender.join(2.5)
    finished_in_time = not sender.is_alive()
    peer.join(5)
    assert finished_in_time and outcome == ["sent"] and got == [EACH_WAY]


def test_send_reading_bounds_what_it_buffers_from_a_peer_that_never_reads(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Found in review. While it could not send, send_reading appended whatever the peer
    wrote to the decoder without limit: a server that floods (here 24 MiB) made the client
    hold all of it. It now stops at READ_WHILE_SENDING, far above the ~128 KiB of replies
    put_many can owe."""
    client, server = pair
    flood = b"\0\0\0\0" + b"\0" * (24 << 20)

    def run() -> None:
        try:
            server.sendall(flood)
            while server.recv(1 << 16):
                pass
        except OSError:
            pass

    flooder = threading.Thread(target=run, daemon=True)
    flooder.start()
    chan = Channel(client, Role.CLIENT)
    with pytest.raises(RemoteProtocolError, match="without reading"):
        chan.send_reading(b"\0" * EACH_WAY)
    server.close()  # ends the flood
    flooder.join(10)
    assert not flooder.is_alive()
    limit = wire.READ_WHILE_SENDING + wire.HEADER_CHUNK
    assert chan.decoder.buffered <= limit, f"{chan.decoder.buffered} bytes buffered"


def test_an_idle_peer_times_out_after_the_socket_timeout_without_spinning(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A peer that neither reads nor writes: TransportError after one socket timeout; the
    wait is in poll, not a loop (an urgent byte, POLLPRI, was not registered: no spin)."""
    client, server = pair
    client.settimeout(0.5)
    server.send(b"!", socket.MSG_OOB)
    before = resource.getrusage(resource.RUSAGE_THREAD)
    started = time.monotonic()
    with pytest.raises(TransportError, match="neither reads nor writes"):
        Channel(client, Role.CLIENT).send_reading(b"\0" * EACH_WAY)
    after = resource.getrusage(resource.RUSAGE_THREAD)
    assert 0.45 <= time.monotonic() - started < 3
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 0.3


def test_send_reading_keeps_the_throttle_and_reads_replies_in_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """With limit_rate, pieces are at most one burst and the average stays under the rate
    (reads into the decoder are not charged, as recv_message's are not)."""
    client, server = pair
    count = EACH_WAY // 70
    got: list[int] = []
    peer = answering_server(server, replies(count), got)
    rate = 8 << 20
    chan = Channel(client, Role.CLIENT, throttle=TokenBucket(rate))
    started = time.monotonic()
    chan.send_reading(b"\0" * EACH_WAY)
    elapsed = time.monotonic() - started
    peer.join(10)
    assert got == [EACH_WAY]
    assert elapsed >= (EACH_WAY - chan.throttle.burst) / rate * 0.95  # type: ignore[union-attr]
    names = [chan.recv_message()["name"] for _ in range(count)]
    assert names == [f"f{i:06}" for i in range(count)]
