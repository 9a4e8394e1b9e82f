"""One connection's session: greeting, login, and the verb dispatch."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import socketserver
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ftpd.auth import AccountError, ScramLogin
from ftpd.batch import CommitBatch
from ftpd.transfers import TransferVerbs
from shared import __version__, digests
from shared.errors import (
    BadRequest,
    FtpError,
    InternalError,
    NotAuthenticated,
    PermissionDenied,
    ProtocolError,
    RemoteProtocolError,
    RequestError,
    TransportError,
    VersionMismatch,
)
from shared.protocol import (
    MAX_HEADER,
    MESSAGES,
    PIPELINED,
    PROTOCOL_VERSION,
    VERBS,
    Message,
    Role,
    State,
    replies_owed,
)
from shared.ratelimit import TokenBucket
from shared.wire import Channel

if TYPE_CHECKING:
    from ftpd.auth import Account
    from ftpd.server import FtpServer

CAPABILITIES = [
    "md5",
    "md5-trailer",
    "overwrite",
    "upload",
    "uploads",
    "folders",
    "on-conflict",
    "resume",
]
"""What this server does beyond the first protocol: a client checks before it asks."""
MIN_RCVBUF = 8 << 10
MAX_RCVBUF = 1 << 20
"""Bounds of the receive buffer of a rate-limited session (the kernel doubles it)."""


class Handler(socketserver.BaseRequestHandler):
    server: FtpServer

    def handle(self) -> None:
        ip, port = str(self.client_address[0]), int(self.client_address[1])
        try:
            session = Session(self.server, self.request, ip, port)
            self.server.track(session)
            try:
                session.run()
            finally:
                self.server.untrack(session)
        finally:
            self.server.gate.release(ip)


def _discard(chunk: memoryview) -> None:
    """A sink for the body of a request refused before its handler ran."""


def _one_token(text: str) -> str:
    """Quote a peer's words as one log token with no space or '=', so no field can be forged."""
    return json.dumps(text).replace(" ", "\\u0020").replace("=", "\\u003d")


class Session(TransferVerbs):
    """The state of one logged-in (or not yet) client."""

    def __init__(self, server: FtpServer, sock: socket.socket, ip: str, port: int) -> None:
        self.server = server
        self.storage = server.storage
        self.log = server.log
        self.ip = ip
        self.peer = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.chan = self._channel(sock)
        self.account: Account | None = None
        self.login: ScramLogin | None = None
        self.login_started = 0.0
        self.handlers: dict[str, Callable[[Message], None]] = {
            verb: getattr(self, "do_" + verb.replace("-", "_")) for verb in VERBS
        }
        self.running = True
        self.batch = CommitBatch(
            self.storage,
            lambda frames: self.chan.send_raw(frames),
            lambda name, size, checksum, started, result, digest: self._log_transfer(
                "put", name, size, checksum, started, result, digest
            ),
        )

    @property
    def user(self) -> str:
        return self.account.name if self.account else "-"

    def _channel(self, sock: socket.socket) -> Channel:
        limits = self.server.limits
        sock.settimeout(limits.idle_timeout)
        return Channel(
            sock,
            Role.SERVER,
            header_timeout=limits.header_timeout,
            min_rate=limits.min_rate,
            rate_window=limits.rate_window,
        )

    def abort(self) -> None:
        """Cut the connection from another thread (server shutdown); the session then ends."""
        with contextlib.suppress(OSError):
            # The plain socket's shutdown: SSLSocket's would also drop its TLS state under
            # the session thread's feet.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def _start_tls(self) -> None:
        """Handshake within its own deadline; every byte after it is encrypted."""
        tls = self.server.tls
        assert tls is not None
        self.sock.settimeout(self.server.limits.handshake_timeout)
        try:
            sock = tls.context.wrap_socket(
                self.sock, server_side=True, do_handshake_on_connect=False
            )
            self.sock = sock
            sock.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
            raise TransportError(f"TLS handshake failed: {reason}") from exc
        self.chan = self._channel(sock)

    def run(self) -> None:
        try:
            if self.server.stopping.is_set():
                return
            if self.server.tls is not None:
                self._start_tls()
            self.chan.send(
                "hello",
                version=PROTOCOL_VERSION,
                server=f"ftpd {__version__}",
                mechanisms=self.server.mechanisms,
                capabilities=CAPABILITIES,
                max_header=MAX_HEADER,
                digests=digests.available(),
            )
            while self.running:
                self.dispatch(self.chan.recv_message())
                if self.batch and (self.batch.full or not self._input_ready()):
                    self.batch.flush()  # nothing more pipelined right now: commit and answer
        except TransportError as exc:
            if str(exc) != "connection closed by the peer":
                self.log.info("dropped peer=%s user=%s: %s", self.peer, self.user, exc)
        except ProtocolError as exc:
            self.log.warning("protocol error peer=%s user=%s: %s", self.peer, self.user, exc)
            self._settle()
            self.reply_error(BadRequest(str(exc)), fatal=True)
        except Exception:
            self.log.exception("internal error peer=%s user=%s", self.peer, self.user)
            self._settle()  # the replies owed for earlier uploads go first, in order
            self.reply_error(InternalError("internal server error"), fatal=True)
        finally:
            self._settle()
            self.chan.close()
            with contextlib.suppress(OSError):
                self.sock.close()  # the TLS socket, when a handshake failed before the channel

    def _input_ready(self) -> bool:
        """Is another request already here (buffered, or readable without waiting)?"""
        if self.chan.decoder.buffered:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def _settle(self) -> None:
        """Commit and answer uploads already received, whatever ends the session.

        They arrived whole and verified; if the answers cannot be delivered, the
        files are stored all the same (as after a crash between publish and reply).
        """
        if not self.batch:
            return
        try:
            self.batch.flush()
        except FtpError:
            pass
        except Exception:
            self.log.exception("cannot commit uploads peer=%s user=%s", self.peer, self.user)

    def reply_error(self, exc: FtpError, fatal: bool = False) -> None:
        """Send the final reply for a refused request; `fatal` says the connection ends now."""
        fields = {"fatal": True} if fatal else {}
        with contextlib.suppress(FtpError):
            self.chan.send("error", **exc.wire_fields(), **fields)

    def dispatch(self, msg: Message) -> None:
        """Check a message against the verb table, then run its do_<verb>."""
        if msg.type not in VERBS:
            raise RemoteProtocolError(f"{msg.type!r} is not a request here")
        spec = MESSAGES[msg.type]
        if self.batch and msg.type not in PIPELINED:
            self.batch.flush()  # replies go out in request order
        try:
            if spec.login and self.account is None:
                raise NotAuthenticated(f"log in before {msg.type!r}")
            if spec.perm and self.account and spec.perm not in self.account.perms:
                raise PermissionDenied(f"user {self.user!r} may not {msg.type!r}")
            self.handlers[msg.type](msg)
        except RequestError as exc:
            # Raised before the verb ran (do_upload and do_uploads answer their own files).
            if self.chan.decoder.state is State.BODY:
                self.chan.recv_body(_discard)  # an upload refused before its bytes were read
            owed = replies_owed(msg)
            if self.batch or owed > 1:
                for _ in range(owed):
                    self.batch.add_reply("error", 0.0, **exc.wire_fields())
            else:
                self.reply_error(exc)

    # --- login -----------------------------------------------------------------

    def do_auth(self, msg: Message) -> None:
        if self.account is not None:
            raise BadRequest(f"already logged in as {self.user!r}")
        if msg["version"] != PROTOCOL_VERSION:
            raise VersionMismatch(
                f"this server speaks protocol version {PROTOCOL_VERSION}, not {msg['version']}"
            )
        if msg["mechanism"] not in self.server.mechanisms:
            raise BadRequest(f"unsupported mechanism {msg['mechanism']!r}")
        try:
            self.server.users.refresh()
        except AccountError as exc:
            # Keep serving with the accounts loaded before the file broke.
            self.log.error("account file unreadable, using the last good copy: %s", exc)
        self.login_started = time.monotonic()
        tls = self.server.tls
        self.login = ScramLogin(self.server.users, cert_pem=tls.cert_pem if tls else None)
        try:
            challenge = self.login.first(msg["data"])
            self.server.guard.check(self.login.user, self.ip)
        except RequestError as exc:
            if self.login.user:
                self._log_login(self.login.user, exc.code)
            self.login = None
            raise
        self.chan.send("challenge", data=challenge)

    def _log_login(self, user: str, result: str) -> None:
        """One line per login; the address comes before the user's words, for fail2ban."""
        self.log.info(
            "login ip=%s peer=%s result=%s seconds=%.3f user=%s",
            self.ip,
            self.peer,
            result,
            time.monotonic() - self.login_started,
            _one_token(user),
        )

    def do_auth_final(self, msg: Message) -> None:
        login, self.login = self.login, None
        if login is None:
            raise BadRequest("'auth-final' must follow 'auth'")
        guard = self.server.guard
        try:
            # Again here: a login begun before the lock must not get a guess past it.
            guard.check(login.user, self.ip)
        except RequestError as exc:
            self._log_login(login.user, exc.code)
            raise
        try:
            self.account, server_final = login.final(msg["data"])
        except RequestError as exc:
            self._log_login(login.user, "failed")
            verdict = guard.failed(login.user, self.ip)
            for kind in verdict.locked:
                who = f"account {_one_token(login.user)}" if kind == "account" else "address"
                self.log.warning(
                    "lockout ip=%s %s locked for %.0f s after too many failed logins",
                    self.ip,
                    who,
                    guard.policy.lock_seconds,
                )
            if verdict.delay:
                self.server.stopping.wait(verdict.delay)  # backoff; cut short at shutdown
            raise exc
        guard.succeeded(login.user)
        self._log_login(login.user, "ok")
        self.chan.send("ok", data=server_final, user=self.account.name, perms=self.account.perms)
        self._throttle(self.server.throttle_for(self.account))

    def _throttle(self, bucket: TokenBucket | None) -> None:
        """Pace this session at the account's rate, and shrink the receive buffer to about
        a second or two of it: otherwise megabytes of an upload wait in it, and the client,
        done sending, waits for the reply longer than its timeout while we drain them."""
        self.chan.throttle = bucket
        if bucket is None:
            return
        size = max(MIN_RCVBUF, min(MAX_RCVBUF, bucket.rate))  # the kernel doubles it
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    def do_quit(self, msg: Message) -> None:
        self.chan.send("ok")
        self.running = False
