"""The only socket code in `shared`: send frames, receive messages, stream bodies."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any, BinaryIO

from shared.errors import LocalFileError, LocalProtocolError, RemoteProtocolError, TransportError
from shared.protocol import (
    NEED_DATA,
    Data,
    Decoder,
    EndOfBody,
    Message,
    Role,
    State,
    encode,
)

CHUNK = 1 << 20
"""Body bytes moved per system call: large buffers keep the per-chunk cost low."""

Sink = Callable[[memoryview], None]


class Channel:
    """One end of a connection: `role` is who we are."""

    def __init__(self, sock: socket.socket, role: Role) -> None:
        self.sock = sock
        self.role = role
        peer = Role.SERVER if role is Role.CLIENT else Role.CLIENT
        self.decoder = Decoder(peer)
        self._buf = bytearray(CHUNK)
        self._view = memoryview(self._buf)

    # --- sending ---------------------------------------------------------------

    def send(self, type_: str, **fields: Any) -> None:
        self.send_raw(encode(type_, self.role, **fields))

    def send_raw(self, data: bytes | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise TransportError(f"connection lost while sending: {_describe(exc)}") from exc

    def send_body(self, f: BinaryIO, size: int, on_chunk: Sink | None = None) -> None:
        """Send exactly `size` bytes of `f` after a body header.

        With no `on_chunk` the kernel copies the file (sendfile). A file that
        shrank under us cannot be padded honestly, so that is an error
        and the caller must drop the connection (LocalFileError).
        """
        sent = 0
        if on_chunk is None and size:
            try:
                sent = self.sock.sendfile(f, offset=f.tell(), count=size)
            except OSError as exc:
                raise TransportError(f"connection lost while sending: {_describe(exc)}") from exc
        else:
            while sent < size:
                n = f.readinto(self._view[: min(CHUNK, size - sent)])  # type: ignore[attr-defined]
                if not n:
                    break
                chunk = self._view[:n]
                if on_chunk is not None:
                    on_chunk(chunk)
                self.send_raw(chunk)
                sent += n
        if sent != size:
            name = getattr(f, "name", "the file")
            raise LocalFileError(f"{name} shrank while it was sent: {sent} of {size} bytes")

    # --- receiving -------------------------------------------------------------

    def _fill(self) -> None:
        try:
            n = self.sock.recv_into(self._buf, CHUNK)
        except TimeoutError as exc:
            raise TransportError("timed out waiting for the peer") from exc
        except OSError as exc:
            raise TransportError(f"connection lost: {_describe(exc)}") from exc
        if n == 0:
            raise TransportError("connection closed by the peer")
        self.decoder.receive_data(self._view[:n])

    def recv_message(self) -> Message:
        """Return the next header; a body must have been read first."""
        while True:
            event = self.decoder.next_event()
            if event is NEED_DATA:
                if self.decoder.state is State.BODY:
                    raise LocalProtocolError("recv_message called with a body unread")
                self._fill()
            elif isinstance(event, Message):
                return event
            else:
                raise LocalProtocolError("recv_message called with a body unread")

    def recv_body(self, sink: Sink) -> int:
        """Stream the body that follows the last header into `sink`; return its size.

        Buffered bytes come from the decoder; the rest is read straight into a
        reused buffer, so large bodies are never framed or copied twice.
        """
        total = 0
        while True:
            event = self.decoder.next_event()
            if isinstance(event, Data):
                sink(memoryview(event.data))
                total += len(event.data)
            elif isinstance(event, EndOfBody):
                return total
            elif event is NEED_DATA:
                want = min(CHUNK, self.decoder.body_remaining)
                try:
                    n = self.sock.recv_into(self._buf, want)
                except TimeoutError as exc:
                    raise TransportError("timed out in the middle of a body") from exc
                except OSError as exc:
                    raise TransportError(f"connection lost: {_describe(exc)}") from exc
                if n == 0:
                    raise TransportError("connection closed in the middle of a body")
                self.decoder.consume_body(n)
                sink(self._view[:n])
                total += n
            else:
                raise RemoteProtocolError("a header arrived where a body was expected")

    def expect(self, *types: str) -> Message:
        """Receive the next message and insist on its type."""
        message = self.recv_message()
        if message.type not in types:
            wanted = " or ".join(repr(t) for t in types)
            raise RemoteProtocolError(f"expected {wanted}, got {message.type!r}")
        return message

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _describe(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
