"""One error tree for both sides, with a stable wire code on each error.

    FtpError                      code
    ├── ProtocolError             bad-request
    │   ├── LocalProtocolError    we were about to break the protocol
    │   └── RemoteProtocolError   the peer broke it
    ├── TransportError            network (never sent: the link is gone)
    │   └── UntrustedServer       untrusted (client side: TLS check or pin failed)
    ├── LocalFileError            local (client side only)
    │   └── LocalFileExists       local-exists
    ├── StaleListing              stale-listing (client side only)
    ├── ConfigError               config (a bad configuration file; never sent)
    ├── CredentialsUnavailable    no-password (a profile's password_command failed)
    └── RequestError              a request the server refused
        ├── NotAuthenticated      not-authenticated
        ├── AuthFailed            auth-failed
        ├── PermissionDenied      permission-denied
        ├── BadName               bad-name
        ├── NotFound              not-found
        ├── Exists                exists
        ├── NotEmpty              not-empty (a folder to remove still holds entries)
        ├── ChecksumMismatch      checksum-mismatch
        ├── TooLarge              too-large
        ├── NoSpace               no-space
        ├── QuotaExceeded         quota-exceeded
        ├── Busy                  busy (too many connections; always fatal)
        ├── LockedOut             locked-out (too many failed logins)
        ├── BadRequest            bad-request
        ├── VersionMismatch       unsupported-version
        └── InternalError         internal-error

The server sends `{"type": "error", "code": ..., "message": ...}`; the client
turns it back into the class with `error_from_wire`, so callers can catch the
specific class rather than compare strings.
"""

from __future__ import annotations

from typing import ClassVar

from shared.text import printable


class FtpError(Exception):
    """Base of every error this project raises on purpose."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def wire_fields(self) -> dict[str, str]:
        """The `code` and `message` of the `error` reply that carries this error (the
        message cut well within its field's 4,096 characters)."""
        return {"code": self.code, "message": self.message[:4000]}


class ProtocolError(FtpError):
    """A frame or message that breaks the protocol."""

    code = "bad-request"


class LocalProtocolError(ProtocolError):
    """We were about to send something that breaks the protocol (a bug here)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks the protocol."""


class TransportError(FtpError):
    """The connection failed, timed out or was closed part way through."""

    code = "network"


class UntrustedServer(TransportError):
    """The server's certificate failed verification, or differs from the pinned one."""

    code = "untrusted"


class LocalFileError(FtpError):
    """A local file could not be read or written (client side)."""

    code = "local"


class LocalFileExists(LocalFileError):
    """A download would replace a local file without --overwrite."""

    code = "local-exists"


class StaleListing(FtpError):
    """A number no longer names the entry the user saw listed."""

    code = "stale-listing"


class ConfigError(FtpError):
    """A configuration file (ftpc profiles, ftpd.toml) that cannot be used as written."""

    code = "config"


class CredentialsUnavailable(FtpError):
    """No password could be had: the profile's password_command failed (client side)."""

    code = "no-password"


class RequestError(FtpError):
    """The server refused a request; the session goes on."""

    code = "error"


class NotAuthenticated(RequestError):
    code = "not-authenticated"


class AuthFailed(RequestError):
    code = "auth-failed"


class PermissionDenied(RequestError):
    code = "permission-denied"


class BadName(RequestError):
    code = "bad-name"


class NotFound(RequestError):
    code = "not-found"


class Exists(RequestError):
    code = "exists"


class NotEmpty(RequestError):
    """Only an empty folder can be removed."""

    code = "not-empty"


class ChecksumMismatch(RequestError):
    code = "checksum-mismatch"


class TooLarge(RequestError):
    code = "too-large"


class NoSpace(RequestError):
    code = "no-space"


class QuotaExceeded(RequestError):
    """The upload would take the account over its byte quota."""

    code = "quota-exceeded"


class Busy(RequestError):
    """The server is at its connection limit, in total or for this address."""

    code = "busy"


class LockedOut(RequestError):
    """Too many failed logins for this account or address: wait, then try again."""

    code = "locked-out"


class BadRequest(RequestError):
    code = "bad-request"


class VersionMismatch(RequestError):
    """The two sides speak different protocol versions."""

    code = "unsupported-version"


class InternalError(RequestError):
    code = "internal-error"


WIRE_ERRORS: dict[str, type[FtpError]] = {
    cls.code: cls
    for cls in (
        NotAuthenticated,
        AuthFailed,
        PermissionDenied,
        BadName,
        NotFound,
        Exists,
        NotEmpty,
        ChecksumMismatch,
        TooLarge,
        NoSpace,
        QuotaExceeded,
        Busy,
        LockedOut,
        BadRequest,
        InternalError,
        VersionMismatch,
    )
}
"""Codes that may appear in an `error` message, and the class each one maps to."""


def error_from_wire(code: str, message: str) -> FtpError:
    """Rebuild the typed error for a code the server sent.

    An unknown code (from a newer server) still becomes a `RequestError`, keeping
    the code, so the session can go on. The message is made printable.
    """
    message = printable(message)
    cls = WIRE_ERRORS.get(code)
    if cls is None:
        err = RequestError(message)
        err.code = code  # type: ignore[misc]
        return err
    return cls(message)
