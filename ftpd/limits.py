"""The daemon's limits, and the gate that admits connections before a thread is spent on them."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from shared.errors import Busy


@dataclass(frozen=True)
class Limits:
    """Every limit the daemon enforces; the defaults are the documented ones (docs/SECURITY.md)."""

    max_connections: int = 200
    """Open connections in total; each holds one thread, so this bounds the threads too."""
    max_per_ip: int = 20
    """Open connections from one address."""
    idle_timeout: float = 300.0
    """Seconds a connection may stay silent between requests."""
    header_timeout: float = 10.0
    """Seconds from a header's first byte to its last: a trickling peer cannot hold a thread."""
    handshake_timeout: float = 10.0
    """Seconds for the TLS handshake."""
    min_rate: int = 4096
    """Bytes per second a transfer must average over each `rate_window`; 0 turns it off."""
    rate_window: float = 30.0
    """Seconds over which `min_rate` is judged; a transfer stalled this long is dropped."""

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_per_ip"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("idle_timeout", "header_timeout", "handshake_timeout", "rate_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.min_rate < 0:
            raise ValueError("min_rate must not be negative")


class ConnectionGate:
    """Counts open connections in total and per address; refuses past the limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._total = 0
        self._per_ip: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return self._total

    def admit(self, ip: str) -> None:
        """Take a slot for `ip`, or raise Busy; every admit is paired with one release."""
        with self._lock:
            if self._total >= self.limits.max_connections:
                raise Busy(
                    f"the server is at its limit of {self.limits.max_connections} connections;"
                    " try again later"
                )
            if self._per_ip[ip] >= self.limits.max_per_ip:
                raise Busy(
                    f"{ip} already has {self.limits.max_per_ip} connections open;"
                    " close one and try again"
                )
            self._total += 1
            self._per_ip[ip] += 1

    def release(self, ip: str) -> None:
        with self._lock:
            self._total -= 1
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
