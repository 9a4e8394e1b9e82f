"""Whom the client trusts over TLS: a CA file, the system store, or a pinned fingerprint.

The rules, in order:
1. `fingerprint` given: the server's certificate must have exactly that SHA-256.
2. `cafile` given: the chain and host name are verified against it.
3. The host is in known_hosts: its certificate must match the pin. A change is
   refused loudly, as ssh does; it is never silently re-pinned.
4. The system store verifies it: trusted.
5. Otherwise, trust on first use: `confirm(host, port, fingerprint)` is asked
   once; a yes pins the fingerprint in known_hosts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.certs import fingerprint, parse_fingerprint
from shared.errors import AuthFailed, LocalFileError, TransportError, UntrustedServer

MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"
CHANNEL_BINDING = "tls-server-end-point"

Confirm = Callable[[str, int, str], bool]
"""Asked (host, port, fingerprint) when a server is met for the first time."""


def default_known_hosts() -> Path:
    override = os.environ.get("FTPC_KNOWN_HOSTS")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ftpc" / "known_hosts"


class KnownHosts:
    """Lines of `host:port FINGERPRINT`, like ssh's known_hosts."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_known_hosts()

    def _entries(self) -> dict[str, str]:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise LocalFileError(f"cannot read {self.path}: {exc.strerror}") from exc
        entries = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                with contextlib.suppress(ValueError):
                    entries[parts[0]] = parse_fingerprint(parts[1])
        return entries

    def get(self, host: str, port: int) -> str | None:
        return self._entries().get(_key(host, port))

    def add(self, host: str, port: int, fp: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{_key(host, port)} {fp}\n")
        except OSError as exc:
            raise LocalFileError(f"cannot write {self.path}: {exc.strerror}") from exc


def _key(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class TlsOptions:
    """How `ftpc.Client` decides to trust a server; see the module docstring."""

    cafile: str | None = None
    fingerprint: str | None = None
    known_hosts: KnownHosts = field(default_factory=KnownHosts)
    confirm: Confirm | None = None

    def __post_init__(self) -> None:
        if self.fingerprint is not None:
            self.fingerprint = parse_fingerprint(self.fingerprint)


def _context(verify: bool, cafile: str | None = None) -> ssl.SSLContext:
    if verify:
        context = ssl.create_default_context(cafile=cafile)
    else:
        # Only used where the certificate is then checked against a pin.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


Source = tuple[str, int] | None


def _handshake(
    host: str, port: int, timeout: float, context: ssl.SSLContext, source: Source = None
) -> ssl.SSLSocket:
    try:
        raw = socket.create_connection((host, port), timeout=timeout, source_address=source)
    except OSError as exc:
        raise TransportError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError:
        raw.close()
        raise
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        hint = " (is the server serving TLS?)" if reason == "WRONG_VERSION_NUMBER" else ""
        raise TransportError(f"TLS handshake with {host}:{port} failed: {reason}{hint}") from exc


def _pinned(
    host: str, port: int, timeout: float, expected: str, why: str, source: Source
) -> ssl.SSLSocket:
    sock = _handshake(host, port, timeout, _context(verify=False), source)
    actual = fingerprint(sock.getpeercert(binary_form=True) or b"")
    if actual != expected:
        sock.close()
        raise UntrustedServer(
            f"the certificate of {host}:{port} does not match {why}!\n"
            f"  expected SHA256 {expected}\n"
            f"  received SHA256 {actual}\n"
            "Someone may be intercepting the connection, or the server's certificate changed."
            " Nothing was sent. If you know the change is genuine, remove the line for"
            f" {_key(host, port)} from the known_hosts file, or pass --fingerprint."
        )
    return sock


def open_tls(
    host: str, port: int, timeout: float, options: TlsOptions, source: Source = None
) -> ssl.SSLSocket:
    """Connect, handshake and decide trust; return the socket or raise UntrustedServer."""
    if options.fingerprint is not None:
        return _pinned(host, port, timeout, options.fingerprint, "the --fingerprint given", source)
    if options.cafile is not None:
        try:
            context = _context(verify=True, cafile=options.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise LocalFileError(f"cannot use {options.cafile} as a CA file: {exc}") from exc
        try:
            return _handshake(host, port, timeout, context, source)
        except ssl.SSLCertVerificationError as exc:
            raise UntrustedServer(
                f"the certificate of {host}:{port} is not trusted by {options.cafile}:"
                f" {exc.verify_message}"
            ) from exc
    pinned = options.known_hosts.get(host, port)
    if pinned is not None:
        why = f"the fingerprint pinned in {options.known_hosts.path}"
        return _pinned(host, port, timeout, pinned, why, source)
    with contextlib.suppress(ssl.SSLCertVerificationError):
        return _handshake(host, port, timeout, _context(verify=True), source)
    sock = _handshake(host, port, timeout, _context(verify=False), source)
    fp = fingerprint(sock.getpeercert(binary_form=True) or b"")
    if options.confirm is None or not options.confirm(host, port, fp):
        sock.close()
        raise UntrustedServer(
            f"the certificate of {host}:{port} is not signed by a known authority, and it was"
            f" not accepted. Its SHA256 fingerprint is {fp}; if that is the one `ftpd serve`"
            " printed, pass --fingerprint with it, or --cafile with the server's certificate."
        )
    options.known_hosts.add(host, port, fp)
    return sock


def choose_mechanism(
    offered: list[str], sock: socket.socket
) -> tuple[str, tuple[str, ssl.SSLSocket] | None]:
    """Over TLS, only the channel-bound mechanism, so that a relay in the middle fails.

    A server that offers unbound SCRAM over TLS is treated as a downgrade (UntrustedServer).
    """
    if isinstance(sock, ssl.SSLSocket):
        if MECHANISM_PLUS not in offered:
            raise UntrustedServer(
                f"over TLS the server must offer {MECHANISM_PLUS} (channel binding), but it"
                f" offers {', '.join(offered) or 'nothing'}: something may be relaying"
                " the connection"
            )
        return MECHANISM_PLUS, (CHANNEL_BINDING, sock)
    if MECHANISM not in offered:
        if MECHANISM_PLUS in offered:
            raise AuthFailed("the server only accepts logins over TLS: use --tls")
        raise AuthFailed(f"the server offers no mechanism this client knows ({MECHANISM})")
    return MECHANISM, None
