"""Bandwidth limits: the token bucket on a fake clock, and its use in Channel.

No test here measures wall-clock time: the buckets run on a clock that moves only
when they sleep, so the pauses they compute are checked exactly. Speed is for bench/.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from shared.errors import TransportError
from shared.protocol import Role
from shared.ratelimit import MAX_BURST, TokenBucket, default_burst
from shared.wire import Channel, RateGuard


class FakeClock:
    """Time that moves only when someone sleeps on it; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


class RecordingBucket(TokenBucket):
    """A bucket on a fake clock that remembers each charge."""

    def __init__(self, rate: int, clock: FakeClock, burst: int | None = None) -> None:
        super().__init__(rate, burst, clock=clock, sleep=clock.sleep)
        self.charged: list[int] = []

    def spend(self, n: int) -> float:
        self.charged.append(n)
        return super().spend(n)

    def expected_sleep(self) -> float:
        """On a clock that only sleeps moves, all but the first burst is paid for in sleep."""
        return max(0, sum(self.charged) - self.burst) / self.rate


# --- the bucket ------------------------------------------------------------------


def test_a_full_burst_goes_at_once_then_debt_is_slept_off() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=100, clock=clock, sleep=clock.sleep)
    assert bucket.spend(60) == 0
    assert bucket.spend(60) == pytest.approx(0.020)  # 20 bytes of debt at 1000 B/s
    assert bucket.spend(100) == pytest.approx(0.100)  # the sleep refilled exactly the debt
    assert clock.sleeps == pytest.approx([0.020, 0.100])
    assert bucket.slept == pytest.approx(0.120)


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=100, clock=clock, sleep=clock.sleep)
    bucket.spend(100)
    clock.now += 3600  # an hour idle earns one burst, not 3.6 MB
    assert bucket.spend(100) == 0
    assert bucket.spend(1) == pytest.approx(0.001)


def test_delay_for_is_pure_arithmetic() -> None:
    clock = FakeClock()
    bucket = TokenBucket(500, burst=50, clock=clock, sleep=clock.sleep)
    assert bucket.delay_for(150) == pytest.approx(0.2)
    assert clock.sleeps == [] and bucket.slept == 0


def test_the_average_over_many_pieces_is_the_rate() -> None:
    clock = FakeClock()
    bucket = RecordingBucket(64_000, clock)
    for _ in range(1000):
        bucket.spend(1000)
    assert clock.now == pytest.approx((1_000_000 - bucket.burst) / 64_000)
    assert max(clock.sleeps) <= bucket.burst / bucket.rate + 1e-9


@pytest.mark.parametrize(
    ("rate", "burst"), [(1, 1), (3, 1), (1000, 250), (1 << 20, MAX_BURST), (10**9, MAX_BURST)]
)
def test_default_burst_is_a_quarter_second_within_bounds(rate: int, burst: int) -> None:
    assert default_burst(rate) == burst


@pytest.mark.parametrize("rate", [0, -1, 1.5, True, "10M"])
def test_a_bucket_needs_a_positive_whole_rate(rate: object) -> None:
    with pytest.raises(ValueError, match="positive number of bytes per second"):
        TokenBucket(rate)  # type: ignore[arg-type]


def test_the_rate_guard_leaves_out_excused_pauses() -> None:
    clock = FakeClock()
    guard = RateGuard(min_rate=100, window=1.0, clock=clock)
    clock.now = 10.0
    guard.excuse(9.9)
    guard.update(50)  # 50 bytes in the 0.1 s that were the peer's
    clock.now = 20.0
    with pytest.raises(TransportError, match="too slow"):
        guard.update(50)  # 50 bytes in 10 unexcused seconds


# --- the channel -----------------------------------------------------------------


def _drain(sock: socket.socket, size: int, into: bytearray) -> threading.Thread:
    """Read `size` bytes in a thread (bounded by the socket's timeout)."""

    def run() -> None:
        while len(into) < size:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return
            into.extend(chunk)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("hashing", [False, True], ids=["sendfile", "pieces"])
def test_a_throttled_body_goes_in_pieces_no_larger_than_a_burst(
    tmp_path: Path, hashing: bool
) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    clock = FakeClock()
    bucket = RecordingBucket(100_000, clock, burst=16_384)
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(10)
        b.settimeout(10)
        received = bytearray()
        reader = _drain(b, len(data), received)
        chunks: list[int] = []
        sender = Channel(a, Role.SERVER, throttle=bucket)
        with path.open("rb") as f:
            sender.send_body(f, len(data), (lambda c: chunks.append(len(c))) if hashing else None)
        reader.join(10)
    assert bytes(received) == data
    assert sum(bucket.charged) == len(data) and max(bucket.charged) <= 16_384
    assert sum(clock.sleeps) == pytest.approx(bucket.expected_sleep())
    assert sum(chunks) == (len(data) if hashing else 0)


def test_a_throttled_receiver_paces_its_reads() -> None:
    body = os.urandom(400_000)
    clock = FakeClock()
    bucket = RecordingBucket(1 << 20, clock)
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(10)
        b.settimeout(10)
        sender = Channel(a, Role.CLIENT)

        def send() -> None:
            sender.send("data", size=len(body))
            sender.send_raw(body)

        thread = threading.Thread(target=send)
        thread.start()
        receiver = Channel(b, Role.SERVER, throttle=bucket)
        assert receiver.recv_message().type == "data"
        got = bytearray()
        assert receiver.recv_body(got.extend) == len(body)
        thread.join(10)
    assert bytes(got) == body
    assert sum(bucket.charged) == len(body) and max(bucket.charged) <= bucket.burst
    assert sum(clock.sleeps) == pytest.approx(bucket.expected_sleep())


def test_throttle_pauses_do_not_trip_the_minimum_rate(tmp_path: Path) -> None:
    """1000 B/s against a 4096 B/s floor, for five windows: the pauses are ours, not the peer's."""
    data = os.urandom(5000)
    path = tmp_path / "f"
    path.write_bytes(data)
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=100, clock=clock, sleep=clock.sleep)
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(10)
        b.settimeout(10)
        received = bytearray()
        reader = _drain(b, len(data), received)
        sender = Channel(
            a, Role.SERVER, min_rate=4096, rate_window=1.0, throttle=bucket, clock=clock
        )
        with path.open("rb") as f:
            sender.send_body(f, len(data))
        reader.join(10)
    assert bytes(received) == data
    assert clock.now == pytest.approx(4.9)  # well past the window, at a quarter of the floor


def test_a_slow_peer_is_still_dropped_on_a_throttled_channel() -> None:
    body = os.urandom(200_000)
    clock = FakeClock()
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(10)
        b.settimeout(10)
        sender = Channel(a, Role.CLIENT)

        def send() -> None:
            try:
                sender.send("data", size=len(body))
                sender.send_raw(body)
            except TransportError:
                pass  # the receiver gave up on us, as it should

        thread = threading.Thread(target=send)
        thread.start()
        bucket = TokenBucket(10**9, clock=clock, sleep=clock.sleep)
        receiver = Channel(
            b, Role.SERVER, min_rate=4096, rate_window=1.0, throttle=bucket, clock=clock
        )
        assert receiver.recv_message().type == "data"

        def slow_sink(chunk: memoryview) -> None:
            clock.now += 100.0  # the peer's bytes take 100 s per read to arrive

        with pytest.raises(TransportError, match="too slow"):
            receiver.recv_body(slow_sink)
        b.shutdown(socket.SHUT_RDWR)
        thread.join(10)
    assert not thread.is_alive()
