"""Failed logins, counted per account and per address across connections: backoff, then lockout.

An account name is counted whether or not it exists, so that a lockout says
nothing about which names are real. A locked account refuses even the right
password until the lock expires; a success clears the account's count but not
the address's, so one valid login cannot launder guesses at other accounts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.errors import LockedOut

MAX_RECORDS = 100_000
"""Counters kept at most; expired ones go first, so a flood of names cannot grow memory."""


@dataclass(frozen=True)
class LockoutPolicy:
    backoff_after: int = 3
    """Failures answered at once; each one after waits twice as long as the last."""
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    account_limit: int = 10
    """Failures in `window` that lock an account."""
    ip_limit: int = 50
    """Failures in `window` that lock an address (it may be trying many accounts)."""
    window: float = 900.0
    """Seconds after which a failure is forgotten."""
    lock_seconds: float = 900.0
    """How long a lock lasts."""

    def __post_init__(self) -> None:
        if min(self.backoff_after, self.account_limit, self.ip_limit) < 1:
            raise ValueError("backoff_after, account_limit and ip_limit must be at least 1")
        if min(self.window, self.lock_seconds) <= 0 or self.backoff_base < 0:
            raise ValueError("window and lock_seconds must be positive")


@dataclass
class _Record:
    failures: int
    last: float
    locked_until: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """What one failure led to: how long to wait before replying, and what got locked."""

    delay: float
    failures: int
    locked: tuple[str, ...]


class LoginGuard:
    """Shared by every session of one server; thread-safe."""

    def __init__(
        self, policy: LockoutPolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or LockoutPolicy()
        self.clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], _Record] = {}

    def _live(self, key: tuple[str, str], now: float) -> _Record | None:
        record = self._records.get(key)
        if record is None:
            return None
        if record.locked_until <= now and now - record.last > self.policy.window:
            del self._records[key]
            return None
        return record

    def check(self, user: str, ip: str) -> None:
        """Raise LockedOut if the account or the address is locked now."""
        now = self.clock()
        with self._lock:
            for kind, key in (("account", ("user", user)), ("address", ("ip", ip))):
                record = self._live(key, now)
                if record is not None and record.locked_until > now:
                    wait = int(record.locked_until - now) + 1
                    raise LockedOut(
                        f"too many failed logins for this {kind}; try again in {wait} s"
                    )

    def failed(self, user: str, ip: str) -> Verdict:
        """Count a failure against both; return the delay to apply and any new locks."""
        now = self.clock()
        p = self.policy
        locked = []
        with self._lock:
            self._make_room(now)
            counts = []
            for kind, key, limit in (
                ("account", ("user", user), p.account_limit),
                ("address", ("ip", ip), p.ip_limit),
            ):
                record = self._live(key, now)
                if record is None:
                    record = self._records[key] = _Record(0, now)
                record.failures += 1
                record.last = now
                counts.append(record.failures)
                if record.failures >= limit and record.locked_until <= now:
                    record.locked_until = now + p.lock_seconds
                    record.failures = 0  # after the lock, counting starts again
                    locked.append(kind)
        worst = max(counts)
        over = worst - p.backoff_after
        delay = 0.0 if over <= 0 else min(p.backoff_base * 2 ** (over - 1), p.backoff_max)
        return Verdict(delay, counts[0], tuple(locked))

    def succeeded(self, user: str) -> None:
        with self._lock:
            record = self._records.get(("user", user))
            if record is not None and record.locked_until <= self.clock():
                del self._records[("user", user)]

    def _make_room(self, now: float) -> None:
        if len(self._records) < MAX_RECORDS:
            return
        for key in list(self._records):
            self._live(key, now)
        while len(self._records) >= MAX_RECORDS:
            oldest = min(self._records, key=lambda k: self._records[k].last)
            del self._records[oldest]

    def __len__(self) -> int:
        return len(self._records)
