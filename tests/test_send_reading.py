"""Channel.send_reading: a pipelining client never waits on a server that waits on it."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpd.tls import load_server_tls, make_self_signed
from shared.errors import TransportError
from shared.protocol import Role, encode
from shared.wire import Channel

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
