"""The only socket code in `shared`: send frames, receive messages, stream bodies."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import ssl
import struct
import termios
import time
from collections.abc import Callable, Iterator
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
from shared.ratelimit import RateGuard, TokenBucket

CHUNK = 1 << 20
"""Body bytes moved per system call: large buffers keep the per-chunk cost low."""
HEADER_CHUNK = 1 << 16
"""Bytes read per call between bodies; an idle connection holds no more than this."""
SENDFILE_CHUNK = 1 << 20
"""Bytes per sendfile call: small enough for smooth progress and rate checks between calls."""
TLS_PIECE = 64 << 10
"""Bytes per send over TLS: at the default minimum rate a piece takes well under a window."""
READ_WHILE_SENDING = 4 << 20
"""The most `send_reading` holds from a peer that does not read: far above the replies a
pipelining client owes (about 128 KiB), so only a peer that floods it gets there."""
TLS_RECORD = 8 << 10
"""What `send_reading` hands an SSL socket at a time: an SSL write returns only when all of it
is out, and a TCP socket that says it is writable has room for at least a third of its send
buffer, which Linux starts at tens of KiB."""

Sink = Callable[[memoryview], None]


class Landing:
    """Takes a body in buffers of its own: the bytes are received straight into them,
    which saves a copy per byte where the buffer is the one written to disk.

    A base class rather than a Protocol: `recv_body` tells the two kinds of sink apart
    once per body, and isinstance on a runtime Protocol costs about 20 µs."""

    def space(self) -> memoryview:
        """Where the next bytes go (never empty)."""
        raise NotImplementedError

    def filled(self, n: int) -> None:
        """`n` bytes were put at the start of the last `space()`."""
        raise NotImplementedError

    def write(self, data: memoryview) -> None:
        """Copy `data` in, for bytes that are in some other buffer already (those the
        decoder read with the header, or a caller's that it reuses)."""
        while data:
            room = self.space()
            n = min(len(room), len(data))
            room[:n] = data[:n]
            self.filled(n)
            data = data[n:]


class Channel:
    """One end of a connection: `role` is who we are.

    The socket's own timeout is the idle timeout. `header_timeout` bounds the
    time from a header's first byte to its last, and `min_rate` (bytes/s,
    judged over `rate_window` seconds) drops stalled bodies, so that a peer
    trickling bytes cannot hold the thread serving it. A `throttle` paces the
    bytes this end sends and reads, headers included; its pauses are not
    held against the peer by the rate guard.
    """

    def __init__(
        self,
        sock: socket.socket,
        role: Role,
        *,
        header_timeout: float | None = None,
        min_rate: int = 0,
        rate_window: float = 30.0,
        throttle: TokenBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sock = sock
        self.role = role
        peer = Role.SERVER if role is Role.CLIENT else Role.CLIENT
        self.decoder = Decoder(peer)
        self.header_timeout = header_timeout
        self.min_rate = min_rate
        self.rate_window = rate_window
        self.throttle = throttle
        self.clock = clock
        """The rate guard's clock (tests share a fake one with the throttle)."""
        self._guard: RateGuard | None = None
        self._small = bytearray(HEADER_CHUNK)
        self._small_view = memoryview(self._small)
        self._body_view: memoryview | None = None

    def _body_buffer(self, size: int) -> memoryview:
        """A buffer for a body of `size` bytes, up to CHUNK, made when first needed and
        reused: idle connections and small files never hold a whole CHUNK."""
        want = min(CHUNK, max(size, HEADER_CHUNK))
        if self._body_view is None or len(self._body_view) < want:
            self._body_view = memoryview(bytearray(want))
        return self._body_view

    @contextlib.contextmanager
    def _body_pace(self) -> Iterator[RateGuard | None]:
        """While a body moves, wait at most one rate window per call, and judge the rate."""
        if not self.min_rate:
            yield None
            return
        idle = self.sock.gettimeout()
        self.sock.settimeout(self.rate_window if idle is None else min(idle, self.rate_window))
        self._guard = RateGuard(self.min_rate, self.rate_window, self.clock)
        try:
            yield self._guard
        finally:
            self._guard = None
            with contextlib.suppress(OSError):
                self.sock.settimeout(idle)

    def _piece(self, want: int) -> int:
        """How many bytes to move in one call: all of `want`, or one burst when throttled."""
        return want if self.throttle is None else min(want, self.throttle.burst)

    def _pace(self, n: int) -> None:
        """Charge `n` bytes to the throttle, pausing if it is in debt; excuse the pause."""
        if self.throttle is None:
            return
        slept = self.throttle.spend(n)
        if slept and self._guard is not None:
            self._guard.excuse(slept)

    # --- sending ---------------------------------------------------------------

    def send(self, type_: str, **fields: Any) -> None:
        self.send_raw(encode(type_, self.role, **fields))

    # The public calls: a transport failure closes the socket, so that every holder of
    # this channel sees at once that the link is gone (and a client reconnects).

    def send_raw(self, data: bytes | memoryview) -> None:
        with self._link():
            self._send_raw(data)

    def send_reading(self, data: bytes | memoryview) -> None:
        """Send `data`, reading whatever the peer sends meanwhile into the decoder, for the
        next recv_message. A client that pipelines requests without reading their replies
        must send this way: if it blocked in a send while its peer blocked sending replies,
        each would wait on the other until a timeout."""
        with self._link():
            try:
                self._send_reading(data)
            except RemoteProtocolError:
                self.close()  # a peer that floods us: the stream is of no more use
                raise

    def send_body(
        self,
        f: BinaryIO,
        size: int,
        on_chunk: Sink | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        """Send exactly `size` bytes of `f` after a body header (see `_send_body`)."""
        with self._link():
            self._send_body(f, size, on_chunk, on_sent)

    def recv_message(self) -> Message:
        """Return the next header; a body must have been read first."""
        with self._link():
            return self._recv_message()

    def recv_body(self, sink: Sink | Landing) -> int:
        """Stream the body that follows the last header into `sink`; return its size."""
        with self._link():
            return self._recv_body(sink)

    @contextlib.contextmanager
    def _link(self) -> Iterator[None]:
        try:
            yield
        except TransportError:
            self.close()
            raise

    def _send_raw(self, data: bytes | memoryview) -> None:
        try:
            if self.throttle is None:
                self.sock.sendall(data)
                return
            view = memoryview(data)
            while view:
                n = self._piece(len(view))
                self.sock.sendall(view[:n])
                self._pace(n)
                view = view[n:]
        except OSError as exc:
            raise TransportError(f"connection lost while sending: {_describe(exc)}") from exc

    def _send_reading(self, data: bytes | memoryview) -> None:
        """Send while the socket takes bytes; read only when it does not and the peer has
        something to say, so the common case is one send after another."""
        view = memoryview(data)
        tls = isinstance(self.sock, ssl.SSLSocket)
        # An SSL write does not return until all it was given is out: small records, so that
        # one never waits on a peer that is itself waiting to be read. A plain send must not
        # wait either, even on a socket without a timeout.
        piece = TLS_RECORD if tls else len(view)
        flags = 0 if tls else socket.MSG_DONTWAIT
        timeout = self.sock.gettimeout()
        wait_ms = None if timeout is None else int(timeout * 1000) + 1
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLOUT)
        try:
            while view:
                events = poller.poll(wait_ms)
                if not events:
                    raise TransportError("timed out: the peer neither reads nor writes")
                ready = events[0][1]
                if ready & select.POLLOUT:
                    try:
                        n = self.sock.send(view[: min(self._piece(len(view)), piece)], flags)
                    except BlockingIOError:
                        continue
                    self._pace(n)
                    view = view[n:]
                elif ready & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    if self.decoder.buffered > READ_WHILE_SENDING:
                        raise RemoteProtocolError(
                            f"the peer sent over {READ_WHILE_SENDING} bytes without reading"
                        )
                    self._fill()  # raises on EOF or a reset, as a read would
        except OSError as exc:
            self._take_what_arrived()
            raise TransportError(f"connection lost while sending: {_describe(exc)}") from exc

    def _take_what_arrived(self) -> None:
        """After a send failed: read what the peer sent before it went away. A peer that ends
        the session with a fatal error sends the replies it owes first, and they are worth
        more to the caller than the reset that followed them."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        with contextlib.suppress(OSError, TransportError):  # EOF or the reset: all there was
            while self.decoder.buffered <= READ_WHILE_SENDING and poller.poll(0):
                self._fill()

    def _send_body(
        self,
        f: BinaryIO,
        size: int,
        on_chunk: Sink | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        """Send exactly `size` bytes of `f` after a body header.

        With no `on_chunk` the kernel copies the file (sendfile), and `on_sent`
        hears how many bytes each call moved. A file that
        shrank under us cannot be padded honestly, so that is an error
        and the caller must drop the connection (LocalFileError).
        """
        with self._body_pace() as guard:

            def moved(n: int) -> None:
                if guard is not None:
                    guard.update(n)
                if on_sent is not None:
                    on_sent(n)

            if on_chunk is None and not isinstance(self.sock, ssl.SSLSocket):
                sent = self._sendfile(f, size, moved)
            elif on_chunk is None:
                # TLS: the kernel cannot encrypt for us; small pieces keep the rate honest.
                sent = self._send_pieces(f, size, TLS_PIECE, None, moved)
            else:
                sent = self._send_pieces(f, size, CHUNK, on_chunk, moved)
        if sent != size:
            name = getattr(f, "name", "the file")
            raise LocalFileError(f"{name} shrank while it was sent: {sent} of {size} bytes")

    def _sendfile(
        self,
        f: BinaryIO,
        size: int,
        moved: Callable[[int], None],
    ) -> int:
        """os.sendfile on the non-blocking socket, judging the rate after every partial send,
        so a reader that drains slowly is caught within a window, not after a whole chunk."""
        out, src, offset = self.sock.fileno(), f.fileno(), f.tell()
        timeout = self.sock.gettimeout()
        poller = select.poll()
        poller.register(out, select.POLLOUT)
        sent = 0
        while sent < size:
            try:
                count = self._piece(min(SENDFILE_CHUNK, size - sent))
                n = os.sendfile(out, src, offset + sent, count)
            except BlockingIOError:
                if not poller.poll(None if timeout is None else int(timeout * 1000) + 1):
                    raise TransportError("the peer stopped reading") from None
                continue
            except OSError as exc:
                raise TransportError(f"connection lost while sending: {_describe(exc)}") from exc
            if not n:
                break
            sent += n
            moved(n)
            self._pace(n)
        return sent

    def _send_pieces(
        self,
        f: BinaryIO,
        size: int,
        piece: int,
        on_chunk: Sink | None,
        moved: Callable[[int], None],
    ) -> int:
        """Read and send through our own buffer: for TLS, or when the caller sees each chunk."""
        buf = self._body_buffer(min(size, piece))
        sent = 0
        while sent < size:
            n = f.readinto(buf[: min(len(buf), piece, size - sent)])  # type: ignore[attr-defined]
            if not n:
                break
            chunk = buf[:n]
            if on_chunk is not None:
                on_chunk(chunk)
            self.send_raw(chunk)
            sent += n
            moved(n)
        return sent

    # --- receiving -------------------------------------------------------------

    def _fill(self) -> None:
        queued: int | None = None
        while True:
            try:
                n = self.sock.recv_into(self._small, HEADER_CHUNK)
                break
            except TimeoutError as exc:
                # A client whose upload is still leaving its send buffer is waiting on a
                # peer that reads (a rate-limited server): not silence. Never the server:
                # a slow reader must not stretch its idle timeout.
                left = unsent_bytes(self.sock) if self.role is Role.CLIENT else 0
                draining = left > 0 if queued is None else left < queued
                if draining:
                    queued = left
                    continue
                raise TransportError("timed out waiting for the peer") from exc
            except OSError as exc:
                raise TransportError(f"connection lost: {_describe(exc)}") from exc
        if n == 0:
            raise TransportError("connection closed by the peer")
        self.decoder.receive_data(self._small_view[:n])

    def _recv_message(self) -> Message:
        """Return the next header; a body must have been read first."""
        deadline: float | None = None
        idle = self.sock.gettimeout()
        try:
            while True:
                event = self.decoder.next_event()
                if isinstance(event, Message):
                    return event
                if event is not NEED_DATA or self.decoder.state is State.BODY:
                    raise LocalProtocolError("recv_message called with a body unread")
                if self.header_timeout is not None and self.decoder.mid_header:
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self.header_timeout
                    if now >= deadline:
                        raise TransportError(
                            f"a header took longer than {self.header_timeout:g} s to arrive"
                        )
                    left = deadline - now
                    self.sock.settimeout(left if idle is None else min(idle, left))
                try:
                    self._fill()
                except TransportError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TransportError(
                            f"a header took longer than {self.header_timeout:g} s to arrive"
                        ) from None
                    raise
        finally:
            if deadline is not None:
                with contextlib.suppress(OSError):
                    self.sock.settimeout(idle)

    def _recv_body(self, sink: Sink | Landing) -> int:
        """Stream the body that follows the last header into `sink`; return its size.

        Buffered bytes come from the decoder; the rest is read straight into a reused
        buffer (a Landing's own, or the channel's for a plain sink), so large bodies are
        never framed or copied twice.
        """
        total = 0
        landing = (
            sink
            if isinstance(sink, Landing)
            else _Forward(self._body_buffer(self.decoder.body_remaining), sink)
        )
        with self._body_pace() as guard:
            while True:
                event = self.decoder.next_event()
                if isinstance(event, Data):
                    landing.write(memoryview(event.data))
                    total += len(event.data)
                    self._pace(len(event.data))
                elif isinstance(event, EndOfBody):
                    return total
                elif event is NEED_DATA:
                    buf = landing.space()
                    want = self._piece(min(len(buf), self.decoder.body_remaining))
                    try:
                        n = self.sock.recv_into(buf, want)
                    except TimeoutError as exc:
                        raise TransportError("timed out in the middle of a body") from exc
                    except OSError as exc:
                        raise TransportError(f"connection lost: {_describe(exc)}") from exc
                    if n == 0:
                        raise TransportError("connection closed in the middle of a body")
                    self.decoder.consume_body(n)
                    landing.filled(n)
                    total += n
                    if guard is not None:
                        guard.update(n)
                    self._pace(n)
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


class _Forward(Landing):
    """The Landing for a plain sink: the channel's reused buffer, handed on as it fills."""

    def __init__(self, buf: memoryview, sink: Sink) -> None:
        self.buf = buf
        self.sink = sink

    def space(self) -> memoryview:
        return self.buf

    def filled(self, n: int) -> None:
        self.sink(self.buf[:n])


def unsent_bytes(sock: socket.socket) -> int:
    """Bytes still in our send queue, not yet acknowledged by the peer (Linux SIOCOUTQ);
    0 where the kernel cannot say."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError, AttributeError):
        return 0
    return int(struct.unpack("i", raw)[0])


def _describe(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
