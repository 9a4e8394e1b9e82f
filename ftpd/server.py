"""The server object: a ThreadingTCPServer holding its settings on the instance."""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading

from ftpd.auth import MECHANISM, UserStore
from ftpd.storage import Storage

DEFAULT_PORT = 8021
DEFAULT_IDLE_TIMEOUT = 300.0


class FtpServer(socketserver.ThreadingTCPServer):
    """One daemon. Everything it needs lives on the instance, so tests can run many."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        storage: Storage,
        users: UserStore,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        logger: logging.Logger | None = None,
    ) -> None:
        from ftpd.handler import Handler  # the handler imports nothing from here at runtime

        self.storage = storage
        self.users = users
        self.idle_timeout = idle_timeout
        self.log = logger or logging.getLogger("ftpd")
        self.mechanisms = [MECHANISM]
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, Handler)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def track(self, sock: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(sock)

    def server_close(self) -> None:
        """Stop listening, cut every open session, wait for their threads, close storage."""
        self.socket.close()
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        super().server_close()
        self.storage.close()
