"""Bandwidth limits: the token bucket on a fake clock, its use in Channel, ftpc and ftpd.

No test here measures wall-clock time: the buckets run on a clock that moves only
when they sleep, so the pauses they compute are checked exactly. Speed is for bench/.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from ftpc import Client
from ftpd.auth import AccountError, UserStore
from ftpd.cli import main as ftpd_main
from ftpd.handler import MIN_RCVBUF
from shared.errors import TransportError
from shared.protocol import Role, encode
from shared.ratelimit import MAX_BURST, RateGuard, TokenBucket, default_burst
from shared.wire import Channel, unsent_bytes
from tests.conftest import ACCOUNTS, Daemon, start_daemon, stop_daemon


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
        assert b.fileno() == -1  # the channel closed the link it gave up on
        thread.join(10)
    assert not thread.is_alive()


# --- ftpc ------------------------------------------------------------------------


def test_client_limit_rate_paces_puts_and_gets(daemon: Daemon, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    with daemon.client(limit_rate=1 << 20) as c:
        assert c.chan.throttle is not None and c.chan.throttle.rate == 1 << 20
        clock = FakeClock()
        bucket = RecordingBucket(1 << 20, clock)
        c.chan.throttle = bucket
        c.put(src)
        sent = sum(bucket.charged)
        c.get("big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data
    assert sent >= len(data) and sum(bucket.charged) >= 2 * len(data)
    assert max(bucket.charged) <= bucket.burst
    assert sum(clock.sleeps) == pytest.approx(bucket.expected_sleep())


def test_client_limit_rate_paces_pipelined_uploads(daemon: Daemon, tmp_path: Path) -> None:
    paths = []
    for i in range(20):
        p = tmp_path / f"small{i}.txt"
        p.write_bytes(os.urandom(10_000))
        paths.append(p)
    with daemon.client(limit_rate=50_000) as c:
        clock = FakeClock()
        c.chan.throttle = bucket = RecordingBucket(50_000, clock)
        outcomes = c.put_many(paths)
    assert all(not isinstance(o, Exception) for o in outcomes)
    assert sum(bucket.charged) >= 200_000 and max(bucket.charged) <= bucket.burst
    assert sum(clock.sleeps) == pytest.approx(bucket.expected_sleep())


def test_client_without_a_limit_has_no_throttle(daemon: Daemon) -> None:
    with daemon.client(limit_rate=0) as c:
        assert c.chan.throttle is None
    with pytest.raises(ValueError, match="positive"):
        daemon.client(limit_rate=-1)


# --- ftpd: per-account rates -----------------------------------------------------


def test_an_accounts_rate_paces_its_sessions_both_ways(tmp_path: Path, users: UserStore) -> None:
    users.set_rate("alice", 1 << 20)
    clock = FakeClock()
    made: list[RecordingBucket] = []

    def make(rate: int) -> TokenBucket:
        made.append(RecordingBucket(rate, clock))
        return made[-1]

    data = os.urandom(3 << 20)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    server, thread = start_daemon(tmp_path / "root", users, make_throttle=make)
    host, port = server.address
    try:
        with Client(host, port, "alice", ACCOUNTS["alice"][0], timeout=10) as c:
            c.put(src)
            c.get("big.bin", tmp_path / "back.bin")
        with Client(host, port, "alice", ACCOUNTS["alice"][0], timeout=10) as c:
            c.list()  # a second session: the same bucket, so connections share the rate
        with Client(host, port, "reader", ACCOUNTS["reader"][0], timeout=10) as c:
            c.list()  # no rate: no bucket
        alice = users.get("alice")
        assert alice is not None
        assert server.throttle_for(alice) is made[0]
        users.set_rate("alice", 2 << 20)
        renewed = server.throttle_for(users.get("alice"))  # type: ignore[arg-type]
        assert renewed is made[1] and renewed.rate == 2 << 20
    finally:
        stop_daemon(server, thread)
    assert (tmp_path / "back.bin").read_bytes() == data
    bucket = made[0]
    assert bucket.rate == 1 << 20 and len(made) == 2
    assert sum(bucket.charged) >= 2 * len(data)  # the upload read and the download sent
    assert max(bucket.charged) <= bucket.burst
    assert sum(clock.sleeps) == pytest.approx(bucket.expected_sleep())


def test_rate_is_kept_in_the_account_file(tmp_path: Path, users: UserStore) -> None:
    users.set_rate("alice", 500 << 10)
    users.set_password("alice", "new-password", iterations=4096)
    again = UserStore(users.path)
    alice = again.get("alice")
    assert alice is not None and alice.rate == 500 << 10
    assert json.loads(users.path.read_text())["users"]["alice"]["rate"] == 500 << 10
    users.set_rate("alice", None)
    assert "rate" not in json.loads(users.path.read_text())["users"]["alice"]
    for bad in (0, -5, 2.5, "1M"):
        with pytest.raises(AccountError, match="bad rate"):
            users.set_rate("alice", bad)  # type: ignore[arg-type]


def test_ftpd_user_rate_commands(tmp_path: Path) -> None:
    users = str(tmp_path / "users.json")
    r = CliRunner()

    def ftpd(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return r.invoke(ftpd_main, [*args, "--users", users], input=input)

    result = ftpd(
        "user", "add", "bob", "--rate", "10M", "--password-stdin", "--iterations", "4096",
        input="pw\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ftpd("user", "list").stdout == f"bob\trwd\t-\t{10 << 20}\n"
    result = ftpd("user", "rate", "bob", "500K")
    assert result.exit_code == 0 and f"{500 << 10} bytes/s" in result.stdout
    assert UserStore(users).get("bob").rate == 500 << 10  # type: ignore[union-attr]
    assert ftpd("user", "rate", "bob", "none").exit_code == 0
    assert ftpd("user", "list").stdout == "bob\trwd\t-\t-\n"
    result = ftpd("user", "rate", "bob", "0")
    assert result.exit_code == 1 and "bad rate 0" in result.stderr
    result = ftpd("user", "rate", "bob", "fast")
    assert result.exit_code == 2 and "is not a size" in result.stderr
    result = ftpd("user", "rate", "nobody", "1M")
    assert result.exit_code == 1 and "no user" in result.stderr
    result = ftpd("user", "add", "carol", "--rate", "0", "--password-stdin", input="pw\n")
    assert result.exit_code == 1 and UserStore(users).get("carol") is None


# --- waiting for a reply while an upload drains ------------------------------------


class _SlowSocket:
    """Times out `silences` times, then delivers `frame`: a peer that reads, then answers."""

    def __init__(self, frame: bytes, silences: int) -> None:
        self.frame = frame
        self.silences = silences

    def gettimeout(self) -> float:
        return 5.0

    def close(self) -> None:
        """A channel closes the socket of a link that failed."""

    def recv_into(self, buf: bytearray, n: int) -> int:
        if self.silences:
            self.silences -= 1
            raise TimeoutError
        buf[: len(self.frame)] = self.frame
        return len(self.frame)


@pytest.mark.parametrize(
    ("role", "queue", "answered"),
    [
        (Role.CLIENT, [500, 300, 0], True),  # the upload kept leaving: keep waiting
        (Role.CLIENT, [500, 500, 500], False),  # stuck: a real timeout
        (Role.CLIENT, [0, 0, 0], False),  # nothing was queued: plain silence
        (Role.SERVER, [500, 300, 0], False),  # a slow reader never stretches the server's wait
    ],
)
def test_a_client_waits_while_its_upload_still_drains(
    monkeypatch: pytest.MonkeyPatch, role: Role, queue: list[int], answered: bool
) -> None:
    peer = Role.SERVER if role is Role.CLIENT else Role.CLIENT
    frame = encode("quit", peer) if peer is Role.CLIENT else encode("continue", peer)
    sizes = iter(queue)
    monkeypatch.setattr("shared.wire.unsent_bytes", lambda sock: next(sizes))
    chan = Channel(_SlowSocket(frame, silences=3), role)  # type: ignore[arg-type]
    if answered:
        assert chan.recv_message().type == "continue"
    else:
        with pytest.raises(TransportError, match="timed out"):
            chan.recv_message()


def test_unsent_bytes_reads_the_send_queue() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"x" * 1000)
        assert unsent_bytes(a) >= 1000  # not read by b yet (a Unix socket counts overhead too)
        b.recv(1000)
        assert unsent_bytes(a) == 0
    assert unsent_bytes(a) == 0  # closed: unknown, so nothing


def test_a_rate_limited_session_gets_a_small_receive_buffer(
    tmp_path: Path, users: UserStore
) -> None:
    """Else megabytes of an upload would wait in it, beyond what the client's timeout allows."""
    users.set_rate("alice", 6000)
    server, thread = start_daemon(tmp_path / "root", users)
    host, port = server.address
    try:
        with Client(host, port, "alice", ACCOUNTS["alice"][0], timeout=10) as c:
            c.list()
            (session,) = server._sessions
            assert session.chan.throttle is not None and session.chan.throttle.rate == 6000
            assert session.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * MIN_RCVBUF
    finally:
        stop_daemon(server, thread)
