"""The server object: a ThreadingTCPServer holding its settings and shared state on the instance."""

from __future__ import annotations

import contextlib
import logging
import socketserver
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ftpd.auth import MECHANISM, MECHANISM_PLUS, UserStore
from ftpd.limits import ConnectionGate, Limits
from ftpd.lockout import LockoutPolicy, LoginGuard
from ftpd.storage import Storage
from shared.errors import Busy
from shared.protocol import Role, encode
from shared.ratelimit import TokenBucket

if TYPE_CHECKING:
    from ftpd.auth import Account
    from ftpd.handler import Session
    from ftpd.tls import ServerTLS

DEFAULT_PORT = 8021


class FtpServer(socketserver.ThreadingTCPServer):
    """One daemon. Everything it needs lives on the instance, so tests can run many.

    A connection is admitted or refused in the accepting thread, before a
    thread is started for it, so the number of threads is bounded by
    `limits.max_connections` whatever peers do.
    """

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        storage: Storage,
        users: UserStore,
        *,
        limits: Limits | None = None,
        lockout: LockoutPolicy | None = None,
        tls: ServerTLS | None = None,
        logger: logging.Logger | None = None,
        make_throttle: Callable[[int], TokenBucket] = TokenBucket,
    ) -> None:
        """`make_throttle(rate)` builds an account's bucket; tests pass one with a fake clock."""
        from ftpd.handler import Handler  # the handler imports nothing from here at runtime

        self.storage = storage
        self.users = users
        self.limits = limits or Limits()
        self.tls = tls
        self.log = logger or logging.getLogger("ftpd")
        self.mechanisms = [MECHANISM_PLUS] if tls else [MECHANISM]
        self.gate = ConnectionGate(self.limits)
        self.guard = LoginGuard(lockout)
        self.stopping = threading.Event()
        self._sessions: set[Session] = set()
        self._sessions_lock = threading.Lock()
        self.make_throttle = make_throttle
        self._throttles: dict[str, TokenBucket] = {}
        self._throttles_lock = threading.Lock()
        super().__init__(address, Handler)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Take a connection slot, or refuse at once with a fatal `busy` error."""
        ip = str(client_address[0])
        try:
            self.gate.admit(ip)
        except Busy as exc:
            self.log.warning("refused ip=%s port=%s: %s", ip, client_address[1], exc)
            if self.tls is None:  # over TLS there is no channel to say it on before a handshake
                frame = encode("error", Role.SERVER, code=exc.code, message=str(exc), fatal=True)
                with contextlib.suppress(OSError):
                    request.setblocking(False)
                    request.send(frame)
            return False
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.gate.release(str(client_address[0]))  # no thread will release it
            raise

    def throttle_for(self, account: Account) -> TokenBucket | None:
        """The account's bucket, shared by all its sessions, so that opening more
        connections does not multiply its rate; a changed rate starts a new bucket."""
        if account.rate is None:
            return None
        with self._throttles_lock:
            bucket = self._throttles.get(account.name)
            if bucket is None or bucket.rate != account.rate:
                bucket = self._throttles[account.name] = self.make_throttle(account.rate)
            return bucket

    def track(self, session: Session) -> None:
        with self._sessions_lock:
            self._sessions.add(session)

    def untrack(self, session: Session) -> None:
        with self._sessions_lock:
            self._sessions.discard(session)

    def service_actions(self) -> None:
        """Called by serve_forever between polls: purge partial uploads past their TTL."""
        try:
            purged = self.storage.partials.purge_expired()
        except OSError as exc:
            self.log.warning("cannot purge expired partial uploads: %s", exc)
            return
        if purged:
            self.log.info("purged %d partial uploads past their resume TTL", purged)

    def server_close(self) -> None:
        """Stop listening, cut every open session, wait for their threads, close storage."""
        self.stopping.set()
        self.socket.close()
        with self._sessions_lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.abort()
        super().server_close()
        self.storage.close()
