"""Failed logins: backoff, lockout per account and per address, fail2ban, and no starvation."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import scramp

from ftpc import Client
from ftpd import lockout
from ftpd.auth import UserStore
from ftpd.lockout import LockoutPolicy, LoginGuard
from ftpd.server import FtpServer
from shared.errors import AuthFailed, LockedOut
from tests.conftest import ACCOUNTS, Raw, assert_no_traceback, start_daemon, stop_daemon, wait_until

DOCS = Path(__file__).resolve().parent.parent / "docs" / "SECURITY.md"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_then_the_account_locks() -> None:
    clock = Clock()
    guard = LoginGuard(
        LockoutPolicy(backoff_after=2, backoff_base=1, backoff_max=3, account_limit=6), clock
    )
    delays = [guard.failed("bob", "10.0.0.1").delay for _ in range(5)]
    assert delays == [0, 0, 1, 2, 3]
    guard.check("bob", "10.0.0.1")  # five failures: not locked yet
    verdict = guard.failed("bob", "10.0.0.1")
    assert verdict.locked == ("account",)
    with pytest.raises(LockedOut, match="this account; try again in 901 s"):
        guard.check("bob", "10.0.0.2")  # from anywhere
    guard.check("alice", "10.0.0.1")  # the address itself is not locked
    guard.succeeded("bob")  # a success cannot happen while locked, and clears nothing
    clock.now += 901
    guard.check("bob", "10.0.0.1")


def test_failures_are_forgotten_after_the_window() -> None:
    clock = Clock()
    guard = LoginGuard(LockoutPolicy(account_limit=3, window=60), clock)
    guard.failed("bob", "ip")
    guard.failed("bob", "ip")
    clock.now += 61
    guard.failed("bob", "ip")
    guard.check("bob", "ip")  # the first two expired: only one counts


def test_success_clears_the_account_but_not_the_address() -> None:
    guard = LoginGuard(LockoutPolicy(account_limit=3, ip_limit=4))
    for name in ("bob", "bob", "carol"):
        guard.failed(name, "ip")
    guard.succeeded("bob")
    guard.failed("bob", "ip")  # bob starts again from 1: not locked
    guard.check("bob", "other-ip")
    with pytest.raises(LockedOut, match="this address"):
        guard.check("dave", "ip")  # but the address made 4 failures


def test_the_number_of_counters_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lockout, "MAX_RECORDS", 50)
    guard = LoginGuard()
    for i in range(500):
        guard.failed(f"name-{i}", "ip")
    assert len(guard) <= 50


@contextmanager
def daemon_with(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture, policy: LockoutPolicy
) -> Iterator[FtpServer]:
    caplog.set_level(logging.INFO, logger="ftpd")
    server, thread = start_daemon(tmp_path / "root", users, lockout=policy)
    try:
        yield server
    finally:
        stop_daemon(server, thread)
    assert_no_traceback(caplog)


def login(server: FtpServer, user: str, password: str, source: str = "127.0.0.1") -> Client:
    """Log in from a chosen loopback address, to stand for different hosts."""
    return Client(*server.address, user, password, timeout=5, source_address=(source, 0))


def test_a_locked_account_refuses_the_right_password_until_the_lock_ends(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    policy = LockoutPolicy(backoff_after=2, backoff_base=0.01, account_limit=4, lock_seconds=1)
    with daemon_with(tmp_path, users, caplog, policy) as server:
        for _ in range(4):  # each on a new connection: the count lives on the server
            with pytest.raises(AuthFailed):
                Client(*server.address, "alice", "wrong", timeout=5)
        with pytest.raises(LockedOut, match="this account"):
            Client(*server.address, "alice", ACCOUNTS["alice"][0], timeout=5)
        with Client(*server.address, "reader", ACCOUNTS["reader"][0], timeout=5) as other:
            assert other.list() == []  # other accounts are not affected
        assert wait_until(lambda: _can_login(server, "alice"), timeout=5)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith('lockout ip=127.0.0.1 account "alice" locked') for m in messages)
    assert any("result=locked-out" in m for m in messages)


def _can_login(server: FtpServer, user: str) -> bool:
    try:
        Client(*server.address, user, ACCOUNTS[user][0], timeout=5).close()
    except LockedOut:
        return False
    return True


def test_an_address_guessing_many_accounts_is_locked(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    policy = LockoutPolicy(backoff_base=0, account_limit=100, ip_limit=3, lock_seconds=60)
    with daemon_with(tmp_path, users, caplog, policy) as server:
        for name in ("nobody", "root", "admin"):  # names that do not exist count the same
            with pytest.raises(AuthFailed):
                login(server, name, "guess", source="127.0.0.3")
        with pytest.raises(LockedOut, match="this address"):
            login(server, "alice", ACCOUNTS["alice"][0], source="127.0.0.3")
        login(server, "alice", ACCOUNTS["alice"][0], source="127.0.0.4").close()


def test_fail2ban_filter_in_the_docs_matches_and_cannot_be_spoofed(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    failregex = re.search(r"^failregex = (.+)$", DOCS.read_text(), re.MULTILINE)
    assert failregex, "docs/SECURITY.md must give a fail2ban failregex"
    pattern = re.compile(failregex.group(1).replace("<HOST>", r"(?P<host>\S+)"))
    with daemon_with(tmp_path, users, caplog, LockoutPolicy(backoff_base=0)) as server:
        for name in ("alice", 'x result=failed ip=6.6.6.6 peer=6.6.6.6:1 "'):
            with pytest.raises(AuthFailed):
                login(server, name, "wrong", source="127.0.0.5")
        login(server, "alice", ACCOUNTS["alice"][0]).close()
    # What fail2ban matches: the line `ftpd serve` logs, less its timestamp.
    lines = [f"{r.levelname} {r.getMessage()}" for r in caplog.records]
    hosts = [m.group("host") for line in lines if (m := pattern.search(line))]
    assert hosts == ["127.0.0.5", "127.0.0.5"]


def test_a_flood_of_bad_logins_does_not_starve_logged_in_clients(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    policy = LockoutPolicy(backoff_after=1, backoff_base=0.05, backoff_max=0.2, ip_limit=10**6)
    with daemon_with(tmp_path, users, caplog, policy) as server:
        src = tmp_path / "f"
        src.write_bytes(b"x" * 100_000)
        (tmp_path / "out").mkdir()
        stop = threading.Event()
        failures = [0]

        def flood() -> None:
            for _ in range(200):
                if stop.is_set():
                    return
                try:
                    Client(*server.address, "writer", "wrong", timeout=5)
                except (AuthFailed, LockedOut):
                    failures[0] += 1

        with Client(*server.address, "alice", ACCOUNTS["alice"][0], timeout=5) as alice:
            threads = [threading.Thread(target=flood) for _ in range(6)]
            for t in threads:
                t.start()
            try:
                for i in range(15):
                    alice.put(src, name=f"f{i}")
                    assert alice.get(f"f{i}", tmp_path / "out").size == 100_000
                    assert len(alice.list()) == i + 1
            finally:
                stop.set()
                for t in threads:
                    t.join(30)
            assert not any(t.is_alive() for t in threads)
        assert failures[0] > 0


def test_a_login_begun_before_the_lock_cannot_finish(
    tmp_path: Path, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Open challenges must not give guesses past a lock: auth-final checks it again."""
    policy = LockoutPolicy(backoff_base=0, account_limit=3, lock_seconds=60)
    with daemon_with(tmp_path, users, caplog, policy) as server, Raw(server.address) as early:
        scram = scramp.ScramClient(["SCRAM-SHA-256"], "alice", ACCOUNTS["alice"][0])
        early.send("auth", version=1, mechanism="SCRAM-SHA-256", data=scram.get_client_first())
        scram.set_server_first(early.recv()["data"])
        for _ in range(3):  # meanwhile, the account gets locked from elsewhere
            with pytest.raises(AuthFailed):
                login(server, "alice", "wrong")
        early.send("auth-final", data=scram.get_client_final())  # the right password
        reply = early.recv()
        assert (reply.type, reply["code"]) == ("error", "locked-out")
