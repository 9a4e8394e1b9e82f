"""Rates of body bytes: a token bucket that paces them (`ftpc --limit-rate`, per-account
rates), and a guard that drops a peer moving them too slowly (`ftpd serve --min-rate`).

The bucket is charged after the bytes moved and, when it is in debt, sleeps
until the debt is paid: the average never exceeds `rate`, and a burst never
exceeds `burst` bytes plus one piece. Callers move at most `burst` bytes per
system call, so the pauses stay short (a quarter of a second at most, by
default) and no socket timeout on the other side can fire during one.

The clock and the sleep are injectable, so the arithmetic is tested without
waiting; the lock lets several sessions of one account share a bucket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.errors import TransportError

MAX_BURST = 64 << 10
"""Largest burst, and so the largest piece moved per system call, when throttled."""
BURST_SECONDS = 0.25
"""The default burst is what the rate allows in this long: the longest single pause."""


def default_burst(rate: int) -> int:
    """A quarter of a second's worth of bytes, from 1 byte to MAX_BURST."""
    return max(1, min(MAX_BURST, int(rate * BURST_SECONDS)))


class TokenBucket:
    """At most `rate` bytes per second on average, in bursts of at most `burst` bytes."""

    def __init__(
        self,
        rate: int,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if type(rate) is not int or rate < 1:
            raise ValueError(f"a rate must be a positive number of bytes per second, not {rate!r}")
        self.rate = rate
        self.burst = default_burst(rate) if burst is None else burst
        if self.burst < 1:
            raise ValueError("a burst must be at least 1 byte")
        self.clock = clock
        self.sleep = sleep
        self.slept = 0.0
        """Seconds spent sleeping so far, in total."""
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def delay_for(self, n: int) -> float:
        """Charge `n` bytes just moved; return the seconds to wait before moving more.

        Pure arithmetic on the clock: the bucket refills at `rate` up to `burst`,
        and may go into debt, which the returned delay pays off.
        """
        with self._lock:
            now = self.clock()
            refill = (now - self._stamp) * self.rate
            self._tokens = min(float(self.burst), self._tokens + refill) - n
            self._stamp = now
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def spend(self, n: int) -> float:
        """Charge `n` bytes just moved and sleep off any debt; return the seconds slept."""
        delay = self.delay_for(n)
        if delay > 0:
            self.sleep(delay)
            with self._lock:
                self.slept += delay
        return delay


class RateGuard:
    """Drops a transfer that averages under `min_rate` bytes/s over any `window` seconds.

    Time this side chose to wait (its own throttle, see `excuse`) is not the
    peer's fault, and does not count: a deliberately slow transfer is not dropped.
    """

    def __init__(
        self, min_rate: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.min_rate = min_rate
        self.window = window
        self.clock = clock
        self._start = clock()
        self._count = 0

    def update(self, n: int) -> None:
        self._count += n
        now = self.clock()
        elapsed = now - self._start
        if elapsed < self.window:
            return
        if self._count < self.min_rate * elapsed:
            raise TransportError(
                f"transfer too slow: {self._count} bytes in {elapsed:.0f} s,"
                f" under the minimum of {self.min_rate} bytes/s"
            )
        self._start, self._count = now, 0

    def excuse(self, seconds: float) -> None:
        """Leave out `seconds` this side spent pausing on purpose."""
        self._start += seconds
