"""The click glue that both command lines share: errors to messages and exit codes.

Each class of failure has its own exit code, so that scripts can tell them apart
(docs/SCRIPTING.md lists them):

    0  success             4  not found            7  network or protocol
    1  any other failure   5  conflict (exists)    8  no space, quota or size limit
    2  usage               6  checksum mismatch
    3  authentication or permission (also an untrusted certificate)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from shared.errors import (
    AuthFailed,
    BadName,
    Busy,
    ChecksumMismatch,
    ConfigError,
    CredentialsUnavailable,
    Exists,
    FtpError,
    LocalFileExists,
    LockedOut,
    NoSpace,
    NotAuthenticated,
    NotEmpty,
    NotFound,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    StaleListing,
    TooLarge,
    TransportError,
    UntrustedServer,
)
from shared.sizes import parse_size

OK, FAILURE, USAGE, AUTH, NOT_FOUND, CONFLICT, CHECKSUM, NETWORK, SPACE = range(9)

EXIT_CODES: tuple[tuple[type[FtpError], int], ...] = (
    (UntrustedServer, AUTH),  # before TransportError, its base
    (AuthFailed, AUTH),
    (LockedOut, AUTH),
    (NotAuthenticated, AUTH),
    (PermissionDenied, AUTH),
    (NotFound, NOT_FOUND),
    (StaleListing, NOT_FOUND),
    (Exists, CONFLICT),
    (LocalFileExists, CONFLICT),
    (NotEmpty, CONFLICT),
    (ChecksumMismatch, CHECKSUM),
    (TransportError, NETWORK),
    (ProtocolError, NETWORK),
    (Busy, NETWORK),
    (NoSpace, SPACE),
    (QuotaExceeded, SPACE),
    (TooLarge, SPACE),
    (BadName, USAGE),
    (ConfigError, USAGE),
    (CredentialsUnavailable, AUTH),
)
"""The first class an error is an instance of decides its code."""


def exit_code_for(exc: FtpError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return FAILURE


class Failed(click.ClickException):
    """A ClickException with the exit code of an error's class."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ByteSize(click.ParamType):
    """A size such as 500M or 2G (powers of 1024); rates use it too, in bytes per second."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class ConfigProblem(click.ClickException):
    """A bad configuration file: one `Error:` line and exit code 2, as for a bad option."""

    exit_code = USAGE


@contextmanager
def cli_errors() -> Iterator[None]:
    """Our errors and the file system's become one line on stderr and their exit code."""
    try:
        yield
    except FtpError as exc:
        raise Failed(str(exc), exit_code_for(exc)) from exc
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise Failed(f"{where}{exc.strerror or exc}", FAILURE) from exc
