"""ftpc profiles: named sets of connection settings in a TOML file.

    # ~/.config/ftpc/config.toml
    [profiles.work]
    host = "files.example.org"
    user = "alice"
    tls = true
    password_command = ["pass", "show", "ftp/alice"]

`ftpc --profile work ls` uses them; with no profile named, a profile called
`default` applies if the file has one. A value from the command line or the
environment wins over the profile, which wins over the built-in default.
Passwords are never stored here: a `password` key is refused, and
`password_command` names a program that prints the password instead.

Everything but `password_from_command` is pure: it parses and checks, it does
not connect or prompt.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from shared import digests
from shared.configfile import read_toml, type_name, unknown_key
from shared.errors import ConfigError, CredentialsUnavailable
from shared.sizes import parse_size

DEFAULT_PROFILE = "default"
"""The profile used when none is named, if the file has one."""


def default_config_path() -> Path:
    """~/.config/ftpc/config.toml, under $XDG_CONFIG_HOME if that is set."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ftpc" / "config.toml"


@dataclass(frozen=True)
class Profile:
    """One `[profiles.NAME]` table; None means "not set here"."""

    name: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    tls: bool | None = None
    cafile: str | None = None
    fingerprint: str | None = None
    digest: str | None = None
    timeout: float | None = None
    limit_rate: int | None = None
    """Bytes per second; 0 means no limit."""
    password_command: tuple[str, ...] | None = None

    def options(self) -> dict[str, Any]:
        """The values it sets for `ftpc` options of the same name."""
        skip = {"name", "password_command"}
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in skip and getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class Config:
    path: Path
    profiles: Mapping[str, Profile]
    found: bool = True
    """Whether the file exists (a missing default file is an empty config)."""

    def profile(self, name: str | None) -> Profile | None:
        """The named profile (which must exist), or `default` if there is one."""
        if name is None:
            return self.profiles.get(DEFAULT_PROFILE)
        if not self.found:
            raise ConfigError(f"{self.path}: no such file, so no profile named {name!r}")
        if name not in self.profiles:
            have = ", ".join(repr(n) for n in sorted(self.profiles)) or "none"
            raise ConfigError(f"{self.path}: no profile named {name!r} (profiles: {have})")
        return self.profiles[name]


def _text(where: str, key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} {key!r} must be a non-empty string, not {_shown(value)}")
    return value


def _shown(value: object) -> str:
    return "an empty string" if value == "" else type_name(value)


def _port(where: str, key: str, value: object) -> int:
    if type(value) is not int or not 1 <= value <= 65535:
        raise ConfigError(f"{where} {key!r} must be an integer from 1 to 65535, not {value!r}")
    return value


def _flag(where: str, key: str, value: object) -> bool:
    if type(value) is not bool:
        raise ConfigError(f"{where} {key!r} must be true or false, not {type_name(value)}")
    return value


def _timeout(where: str, key: str, value: object) -> float:
    if type(value) not in (int, float) or not value >= 0.1:  # type: ignore[operator]
        raise ConfigError(f"{where} {key!r} must be a number of seconds, at least 0.1")
    return float(value)  # type: ignore[arg-type]


def _digest(where: str, key: str, value: object) -> str:
    if value not in digests.available():
        have = ", ".join(digests.available())
        raise ConfigError(f"{where} {key!r} must be one of {have}, not {value!r}")
    return str(value)


def _rate(where: str, key: str, value: object) -> int:
    if type(value) not in (int, str):
        raise ConfigError(f"{where} {key!r} must be bytes per second, like 500K or 10M")
    try:
        return parse_size(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"{where} {key!r}: {exc}") from exc


def _command(where: str, key: str, value: object) -> tuple[str, ...]:
    """A list of arguments, or a string split as a shell would (but never run by one)."""
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise ConfigError(f"{where} {key!r} cannot be split into words: {exc}") from exc
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) for v in value)
        or not value[0]
    ):
        raise ConfigError(
            f'{where} {key!r} must be a command, like ["pass", "show", "ftp/alice"] or a string'
        )
    return tuple(value)


Check = Callable[[str, str, object], Any]

CHECKS: dict[str, Check] = {
    "host": _text,
    "port": _port,
    "user": _text,
    "tls": _flag,
    "cafile": _text,
    "fingerprint": _text,
    "digest": _digest,
    "timeout": _timeout,
    "limit_rate": _rate,
    "password_command": _command,
}
"""Every key a profile may hold, and how its value is checked."""


def parse_profile(path: Path, name: str, table: object) -> Profile:
    where = f"{path}: [profiles.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, not {type_name(table)}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        field = key.replace("-", "_")
        if field == "password":
            raise ConfigError(
                f"{where} has a 'password': plaintext passwords are not allowed in the"
                " config file; use password_command (for example"
                ' ["pass", "show", "ftp/alice"]) or $FTPC_PASSWORD'
            )
        check = CHECKS.get(field)
        if check is None:
            raise unknown_key(path, key, CHECKS, where=f" in [profiles.{name}]")
        if field in values:
            raise ConfigError(f"{where} sets {field!r} twice")
        values[field] = check(where, key, value)
    cafile = values.get("cafile")
    if cafile is not None:
        values["cafile"] = str(path.absolute().parent / Path(cafile).expanduser())
    return Profile(name, **values)


def parse_config(path: Path, data: Mapping[str, object]) -> Config:
    """Check a parsed file; every problem is one ConfigError naming the file."""
    for key in data:
        if key != "profiles":
            raise unknown_key(path, key, ["profiles"], where=" (only [profiles.NAME] tables)")
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be tables, like [profiles.work]")
    parsed = {name: parse_profile(path, name, table) for name, table in profiles.items()}
    return Config(path, MappingProxyType(parsed))


def load_config(path: Path, required: bool) -> Config:
    """Read and check `path`; a missing file is an empty config unless it was asked for."""
    if not required and not path.exists():
        return Config(path, MappingProxyType({}), found=False)
    return parse_config(path, read_toml(path))


def password_from_command(profile: str, argv: Sequence[str]) -> str:
    """Run a profile's password_command (no shell) and return its first line of output.

    Its stdin and stderr are the user's, so a pinentry or an error message gets
    through; its output is never shown, even when it fails.
    """
    try:
        done = subprocess.run(list(argv), stdout=subprocess.PIPE, check=False)
    except OSError as exc:
        raise CredentialsUnavailable(
            f"profile {profile!r}: cannot run password_command {argv[0]!r}:"
            f" {exc.strerror or type(exc).__name__}"
        ) from exc
    if done.returncode != 0:
        how = (
            f"was killed by signal {-done.returncode}"
            if done.returncode < 0
            else f"failed with exit status {done.returncode}"
        )
        raise CredentialsUnavailable(f"profile {profile!r}: password_command {argv[0]!r} {how}")
    try:
        lines = done.stdout.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise CredentialsUnavailable(
            f"profile {profile!r}: password_command {argv[0]!r} printed something not UTF-8"
        ) from None
    if not lines or not lines[0]:
        raise CredentialsUnavailable(
            f"profile {profile!r}: password_command {argv[0]!r} printed no password"
        )
    return lines[0]
