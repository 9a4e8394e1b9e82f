"""The account file and the SCRAM exchange, including the RFC 7677 test vector."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
import scramp

from ftpd.auth import (
    DEFAULT_ITERATIONS,
    AccountError,
    ScramLogin,
    UserStore,
    make_account,
)
from shared.errors import AuthFailed, BadRequest

# RFC 7677, section 3.
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_C_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_S_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_FIRST = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


@pytest.fixture
def rfc_store(tmp_path: Path) -> UserStore:
    store = UserStore(tmp_path / "users.json")
    store._accounts["user"] = make_account("user", "pencil", "rwd", 4096, salt=RFC_SALT)
    store._save()
    return store


def test_server_side_matches_rfc7677_vector(rfc_store: UserStore) -> None:
    login = ScramLogin(rfc_store, s_nonce=RFC_S_NONCE)
    assert login.first(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    account, server_final = login.final(RFC_CLIENT_FINAL)
    assert account.name == "user"
    assert server_final == RFC_SERVER_FINAL


def test_client_side_matches_rfc7677_vector() -> None:
    client = scramp.ScramClient(["SCRAM-SHA-256"], "user", "pencil", c_nonce=RFC_C_NONCE)
    assert client.get_client_first() == RFC_CLIENT_FIRST
    client.set_server_first(RFC_SERVER_FIRST)
    assert client.get_client_final() == RFC_CLIENT_FINAL
    client.set_server_final(RFC_SERVER_FINAL)  # raises if the server's proof were wrong


def _exchange(store: UserStore, user: str, password: str) -> tuple[str, str]:
    """Run a full exchange; return (server_first, error message or server_final)."""
    client = scramp.ScramClient(["SCRAM-SHA-256"], user, password)
    login = ScramLogin(store)
    server_first = login.first(client.get_client_first())
    client.set_server_first(server_first)
    try:
        _, server_final = login.final(client.get_client_final())
    except AuthFailed as exc:
        return server_first, str(exc)
    client.set_server_final(server_final)
    return server_first, server_final


def test_right_password_logs_in(rfc_store: UserStore) -> None:
    _, final = _exchange(rfc_store, "user", "pencil")
    assert final.startswith("v=")


def test_wrong_password_and_unknown_user_look_the_same(rfc_store: UserStore) -> None:
    _, wrong = _exchange(rfc_store, "user", "not-pencil")
    first, unknown = _exchange(rfc_store, "nobody", "pencil")
    assert wrong == unknown == "login failed: unknown user or wrong password"
    # The unknown name still gets a salt and the store's iteration count, not an early refusal.
    assert ",s=" in first and first.endswith(",i=4096")


def test_fake_salt_is_stable_per_name_and_secret_derived(rfc_store: UserStore) -> None:
    a1 = rfc_store.fake_auth_info("ghost")
    a2 = rfc_store.fake_auth_info("ghost")
    b = rfc_store.fake_auth_info("phantom")
    assert a1 == a2
    assert a1[0] != b[0]
    other = UserStore(rfc_store.path.parent / "other.json")
    other.add("x", "y", iterations=4096)
    assert other.fake_auth_info("ghost")[0] != a1[0]


def test_malformed_client_first_is_bad_request(rfc_store: UserStore) -> None:
    with pytest.raises(BadRequest):
        ScramLogin(rfc_store).first("garbage")


def test_account_file_holds_no_password(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "u.json")
    store.add("bob", "hunter2-secret", "r", iterations=4096)
    text = store.path.read_text()
    assert "hunter2-secret" not in text
    saved = json.loads(text)["users"]["bob"]
    assert set(saved) == {"salt", "iterations", "stored_key", "server_key", "perms"}
    assert saved["iterations"] == 4096 and saved["perms"] == "r"
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


def test_default_iteration_count_is_at_least_600000(tmp_path: Path) -> None:
    assert DEFAULT_ITERATIONS >= 600_000
    store = UserStore(tmp_path / "u.json")
    store.add("slow", "pw")
    assert store.get("slow").iterations == DEFAULT_ITERATIONS  # type: ignore[union-attr]


def test_store_manages_accounts(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "u.json")
    store.add("bob", "pw1", "wr", iterations=4096)
    assert store.get("bob").perms == "rw"  # type: ignore[union-attr]
    with pytest.raises(AccountError, match="already exists"):
        store.add("bob", "pw2", iterations=4096)
    old = store.get("bob")
    store.set_password("bob", "pw3", iterations=4096)
    assert store.get("bob").stored_key != old.stored_key  # type: ignore[union-attr]
    store.set_perms("bob", "d")
    assert store.get("bob").perms == "d"  # type: ignore[union-attr]
    store.remove("bob")
    assert store.get("bob") is None
    with pytest.raises(AccountError, match="no user"):
        store.remove("bob")


@pytest.mark.parametrize("name", ["", "a b", "x,y", "=x", "-lead", "a" * 65, "ünï"])
def test_bad_user_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(AccountError):
        UserStore(tmp_path / "u.json").add(name, "pw", iterations=4096)


@pytest.mark.parametrize("perms", ["x", "rr", "rwdx", "R"])
def test_bad_perms_are_refused(tmp_path: Path, perms: str) -> None:
    with pytest.raises(AccountError):
        UserStore(tmp_path / "u.json").add("bob", "pw", perms, iterations=4096)


def test_empty_password_and_low_iterations_are_refused(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "u.json")
    with pytest.raises(AccountError):
        store.add("bob", "", iterations=4096)
    with pytest.raises(AccountError):
        store.add("bob", "pw", iterations=1000)


def test_another_process_change_is_picked_up(tmp_path: Path) -> None:
    running = UserStore(tmp_path / "u.json")
    running.add("a", "pw", iterations=4096)
    UserStore(tmp_path / "u.json").add("b", "pw", iterations=4096)
    assert running.get("b") is None
    running.refresh()
    assert running.get("b") is not None


def test_initial_account_is_created_once(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "u.json")
    password = store.ensure_initial_account()
    assert password and len(password) >= 16
    assert store.get("admin") is not None
    assert UserStore(tmp_path / "u.json").ensure_initial_account() is None


def test_corrupt_account_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "u.json"
    path.write_text("{not json")
    with pytest.raises(AccountError, match="cannot read the account file"):
        UserStore(path)
