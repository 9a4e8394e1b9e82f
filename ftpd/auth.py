"""The account file and the SCRAM-SHA-256 login exchange (RFC 5802, RFC 7677).

The account file keeps, per user, only the salt, the iteration count and the
two derived keys: the password cannot be recovered from it, and it never
crosses the wire. It also keeps a random server secret, from which fake salts
for unknown names are derived, so that an unknown user and a wrong password
look the same from outside.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import scramp

from shared.errors import AuthFailed, BadRequest, FtpError

MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"
"""Over TLS, the only mechanism offered: the login is bound to the server's certificate."""
CHANNEL_BINDING = "tls-server-end-point"
DEFAULT_ITERATIONS = 600_000
MIN_ITERATIONS = 4096
PERMS = "rwd"
MAX_CLIENT_FIRST = 1024
"""The server-first echoes the client's nonce, and must itself fit in a header field."""
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class AccountError(FtpError):
    """A bad account name, permission string or account file."""

    code = "account"


def check_user_name(name: str) -> str:
    if not _USER_NAME.fullmatch(name):
        raise AccountError(
            f"bad user name {name!r}: use 1-64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def check_perms(perms: str) -> str:
    if any(p not in PERMS for p in perms) or len(set(perms)) != len(perms):
        raise AccountError(f"bad permissions {perms!r}: use letters from {PERMS!r}, each once")
    return "".join(p for p in PERMS if p in perms)


def check_quota(quota: object) -> int | None:
    if quota is None:
        return None
    if type(quota) is not int or quota < 0:
        raise AccountError(f"bad quota {quota!r}: use a number of bytes, or none")
    return quota


def check_rate(rate: object) -> int | None:
    """Bytes per second, at least 1 (0 would stop every transfer: use none for no limit)."""
    if rate is None:
        return None
    if type(rate) is not int or rate < 1:
        raise AccountError(f"bad rate {rate!r}: use bytes per second (at least 1), or none")
    return rate


@dataclass(frozen=True)
class Account:
    name: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes
    perms: str
    quota: int | None = None
    """Bytes this account may keep stored, or no limit."""
    rate: int | None = None
    """Bytes per second its transfers may move, each way, across all its sessions; or no limit."""

    def to_json(self) -> dict[str, object]:
        def b64(b: bytes) -> str:
            return base64.b64encode(b).decode("ascii")

        return {
            "salt": b64(self.salt),
            "iterations": self.iterations,
            "stored_key": b64(self.stored_key),
            "server_key": b64(self.server_key),
            "perms": self.perms,
            **({} if self.quota is None else {"quota": self.quota}),
            **({} if self.rate is None else {"rate": self.rate}),
        }

    @classmethod
    def from_json(cls, name: str, obj: dict[str, object]) -> Account:
        try:
            return cls(
                name=check_user_name(name),
                salt=base64.b64decode(str(obj["salt"]), validate=True),
                iterations=int(obj["iterations"]),  # type: ignore[call-overload]
                stored_key=base64.b64decode(str(obj["stored_key"]), validate=True),
                server_key=base64.b64decode(str(obj["server_key"]), validate=True),
                perms=check_perms(str(obj["perms"])),
                quota=check_quota(obj.get("quota")),
                rate=check_rate(obj.get("rate")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise AccountError(f"account {name!r} is malformed: {exc}") from exc


def make_account(
    name: str, password: str, perms: str, iterations: int, salt: bytes | None = None
) -> Account:
    if not password:
        raise AccountError("the password must not be empty")
    if iterations < MIN_ITERATIONS:
        raise AccountError(f"iterations must be at least {MIN_ITERATIONS}")
    mech = scramp.ScramMechanism(MECHANISM)
    salt, stored_key, server_key, i = mech.make_auth_info(
        password, iteration_count=iterations, salt=salt
    )
    return Account(check_user_name(name), salt, i, stored_key, server_key, check_perms(perms))


class UserStore:
    """The account file. Reloaded when it changes, so `ftpd user ...` needs no restart."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._accounts: dict[str, Account] = {}
        self.secret = b""
        if self.path.exists():
            self._load()

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def _load(self) -> None:
        try:
            st = self.path.stat()
            obj = json.loads(self.path.read_text("utf-8"))
            users = obj["users"]
            secret = bytes.fromhex(obj["secret"])
            accounts = {n: Account.from_json(n, u) for n, u in users.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AccountError(f"cannot read the account file {self.path}: {exc}") from exc
        self._accounts, self.secret = accounts, secret
        self._stamp = (st.st_mtime_ns, st.st_ino)

    def refresh(self) -> None:
        """Reload if another process (such as `ftpd user add`) changed the file."""
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                return
            if (st.st_mtime_ns, st.st_ino) != self._stamp:
                self._load()

    def _save(self) -> None:
        if not self.secret:
            self.secret = secrets.token_bytes(32)
        data = {
            "version": 1,
            "secret": self.secret.hex(),
            "users": {n: a.to_json() for n, a in sorted(self._accounts.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(data, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_ino)

    def get(self, name: str) -> Account | None:
        return self._accounts.get(name)

    def accounts(self) -> list[Account]:
        return sorted(self._accounts.values(), key=lambda a: a.name)

    def add(
        self, name: str, password: str, perms: str = PERMS, iterations: int = DEFAULT_ITERATIONS
    ) -> Account:
        with self._lock:
            if check_user_name(name) in self._accounts:
                raise AccountError(f"user {name!r} already exists")
            account = make_account(name, password, perms, iterations)
            self._accounts[name] = account
            self._save()
            return account

    def set_password(self, name: str, password: str, iterations: int = DEFAULT_ITERATIONS) -> None:
        with self._lock:
            old = self._require(name)
            new = make_account(name, password, old.perms, iterations)
            self._accounts[name] = replace(new, quota=old.quota, rate=old.rate)
            self._save()

    def set_perms(self, name: str, perms: str) -> None:
        with self._lock:
            self._accounts[name] = replace(self._require(name), perms=check_perms(perms))
            self._save()

    def set_quota(self, name: str, quota: int | None) -> None:
        with self._lock:
            self._accounts[name] = replace(self._require(name), quota=check_quota(quota))
            self._save()

    def set_rate(self, name: str, rate: int | None) -> None:
        with self._lock:
            self._accounts[name] = replace(self._require(name), rate=check_rate(rate))
            self._save()

    def remove(self, name: str) -> None:
        with self._lock:
            self._require(name)
            del self._accounts[name]
            self._save()

    def _require(self, name: str) -> Account:
        account = self._accounts.get(name)
        if account is None:
            raise AccountError(f"no user named {name!r}")
        return account

    def ensure_initial_account(self, name: str = "admin") -> str | None:
        """On first start, create one account; return its generated password (shown once)."""
        if self.path.exists():
            return None
        password = secrets.token_urlsafe(15)
        self.add(name, password)
        return password

    def fake_auth_info(self, name: str) -> tuple[bytes, bytes, bytes, int]:
        """Stable, secret-derived credentials for a name with no account."""
        key = self.secret or b"no-secret"

        def derive(label: bytes) -> bytes:
            return hmac.new(key, label + name.encode(), hashlib.sha256).digest()

        # Look like the typical account: same salt length, most common iteration count.
        counts = Counter(a.iterations for a in self._accounts.values())
        iterations = counts.most_common(1)[0][0] if counts else DEFAULT_ITERATIONS
        salt_len = max((len(a.salt) for a in self._accounts.values()), default=32)
        return derive(b"salt:")[:salt_len], derive(b"stored:"), derive(b"server:"), iterations


class ScramLogin:
    """The server side of one login exchange."""

    def __init__(
        self, store: UserStore, s_nonce: str | None = None, cert_pem: str | None = None
    ) -> None:
        """With `cert_pem` (the server's certificate), the client must bind to the channel."""
        self.store = store
        self.account: Account | None = None
        if cert_pem is None:
            self._server = scramp.ScramMechanism(MECHANISM).make_server(
                self._auth_info, s_nonce=s_nonce
            )
        else:
            self._server = scramp.ScramMechanism(MECHANISM_PLUS).make_server(
                self._auth_info, channel_binding=(CHANNEL_BINDING, cert_pem), s_nonce=s_nonce
            )
        self.user = ""

    def _auth_info(self, name: str) -> tuple[bytes, bytes, bytes, int]:
        self.user = name
        self.account = self.store.get(name)
        if self.account is None:
            return self.store.fake_auth_info(name)
        a = self.account
        return a.salt, a.stored_key, a.server_key, a.iterations

    def first(self, client_first: str) -> str:
        """Take the client-first message; return the server-first (salt, iterations, nonce)."""
        if len(client_first) > MAX_CLIENT_FIRST:
            raise BadRequest(
                f"the SCRAM client-first message is over {MAX_CLIENT_FIRST} characters"
            )
        try:
            self._server.set_client_first(client_first)
            return self._server.get_server_first()
        except scramp.ScramException as exc:
            raise BadRequest(f"malformed SCRAM client-first message: {exc}") from exc

    def final(self, client_final: str) -> tuple[Account, str]:
        """Check the client's proof; return the account and the server's signature."""
        try:
            self._server.set_client_final(client_final)
            server_final = self._server.get_server_final()
        except scramp.ScramException as exc:
            if exc.server_error is scramp.core.ServerError.CHANNEL_BINDINGS_DONT_MATCH:
                raise AuthFailed(
                    "login failed: the TLS channel binding does not match;"
                    " something between client and server is relaying the connection"
                ) from exc
            raise AuthFailed("login failed: unknown user or wrong password") from exc
        if self.account is None:
            raise AuthFailed("login failed: unknown user or wrong password")
        return self.account, server_final
