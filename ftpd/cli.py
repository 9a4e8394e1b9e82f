"""`ftpd`: run the daemon and manage its accounts."""

from __future__ import annotations

import logging
import signal
import ssl
import sys
import threading
from pathlib import Path

import click

from ftpd.auth import UserStore
from ftpd.config import config_option
from ftpd.limits import Limits
from ftpd.lockout import LockoutPolicy
from ftpd.logwriter import BackgroundLog, ServeFormatter
from ftpd.partials import DEFAULT_TTL
from ftpd.server import DEFAULT_PORT, FtpServer
from ftpd.storage import Storage
from ftpd.tls import ServerTLS, load_server_tls, make_self_signed
from ftpd.usercli import user, users_option
from shared import __version__
from shared.cli import ByteSize, cli_errors
from shared.errors import FtpError

_LIMITS = Limits()
_POLICY = LockoutPolicy()


@click.group()
@click.version_option(__version__, prog_name="ftpd")
def main() -> None:
    """ftpd: an authenticated file drop box (SCRAM login, verified, atomic uploads)."""


@main.command()
@config_option("FTPD_CONFIG")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default="storage",
    show_default=True,
    help="Upload directory; created if missing.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@users_option
@click.option(
    "--max-file-size",
    type=ByteSize(),
    default=None,
    help="Refuse uploads larger than this (e.g. 2G). Default: no limit but free space.",
)
@click.option(
    "--reserve",
    type=ByteSize(),
    default="0",
    help="Free space uploads must leave on the disk (e.g. 1G).",
)
@click.option(
    "--resume-ttl",
    type=click.FloatRange(min=0),
    default=DEFAULT_TTL,
    show_default=True,
    help="Seconds an interrupted resumable upload is kept for `ftpc put --resume`; 0: none.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Serve TLS only, with this certificate (PEM); see `ftpd cert`.",
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Its key."
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=_LIMITS.max_connections,
    show_default=True,
    help="Open connections in total (one thread each).",
)
@click.option(
    "--max-per-ip",
    type=click.IntRange(min=1),
    default=_LIMITS.max_per_ip,
    show_default=True,
    help="Open connections from one address.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=1),
    default=_LIMITS.idle_timeout,
    show_default=True,
    help="Seconds a connection may stay silent.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    default=_LIMITS.header_timeout,
    show_default=True,
    help="Seconds for a whole request header to arrive once it has started.",
)
@click.option(
    "--min-rate",
    type=ByteSize(),
    default=str(_LIMITS.min_rate),
    show_default=True,
    help="Bytes/s a transfer must average over 30 s, or it is dropped; 0 turns it off.",
)
@click.option(
    "--lockout-after",
    type=click.IntRange(min=1),
    default=_POLICY.account_limit,
    show_default=True,
    help="Failed logins in 15 minutes that lock an account (an address: 5 times as many).",
)
@click.option(
    "--lockout-seconds",
    type=click.FloatRange(min=1),
    default=_POLICY.lock_seconds,
    show_default=True,
    help="How long a lockout lasts.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def serve(
    root: Path,
    host: str,
    port: int,
    users_file: Path,
    max_file_size: int | None,
    reserve: int,
    resume_ttl: float,
    tls_cert: Path | None,
    tls_key: Path | None,
    max_connections: int,
    max_per_ip: int,
    idle_timeout: float,
    header_timeout: float,
    min_rate: int,
    lockout_after: int,
    lockout_seconds: float,
    log_level: str,
) -> None:
    """Serve ROOT until SIGINT or SIGTERM.

    Every option can also be set in a TOML file given with --config (keys are the
    option names: root = "/srv/ftpd", max-file-size = "2G"); relative paths in it
    are relative to the file, and the command line and environment win over it.
    """
    if not logging.getLogger().handlers:  # a host (a test, an embedding) may log its own way
        stderr = logging.StreamHandler()
        stderr.setFormatter(ServeFormatter())
        logging.basicConfig(level=log_level.upper(), handlers=[stderr])
        # That format shows no thread, process or source line: do not look them up for every
        # record (the switches of the logging HOWTO's "Optimization"; a tenth of a small
        # upload's server time).
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
        logging._srcfile = None
    root_abs = root.resolve()
    if users_file.resolve().is_relative_to(root_abs):
        raise click.ClickException(f"the account file {users_file} must be outside the root {root}")
    tls = _load_tls(tls_cert, tls_key)
    limits = Limits(
        max_connections=max_connections,
        max_per_ip=max_per_ip,
        idle_timeout=idle_timeout,
        header_timeout=header_timeout,
        min_rate=min_rate,
    )
    lockout = LockoutPolicy(
        account_limit=lockout_after, ip_limit=5 * lockout_after, lock_seconds=lockout_seconds
    )
    with cli_errors():
        store = UserStore(users_file)
        password = store.ensure_initial_account()
    if password is not None:
        click.echo(f"created account 'admin' with password: {password}")
        click.echo(f"  (shown only this once; stored as SCRAM keys in {users_file})")
    try:
        storage = Storage(root, max_file_size=max_file_size, reserve=reserve, resume_ttl=resume_ttl)
    except FtpError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot use {root} as the root: {exc.strerror}") from exc
    try:
        server = FtpServer((host, port), storage, store, limits=limits, lockout=lockout, tls=tls)
    except OSError as exc:
        storage.close()  # the server closed it already if it got that far; closing is idempotent
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    if storage.purged:
        logging.getLogger("ftpd").info(
            "purged %d staging files left by a crash or past their resume TTL", storage.purged
        )

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    listener = BackgroundLog()
    bound_host, bound_port = server.address
    if tls is not None:
        click.echo(f"TLS certificate SHA256 fingerprint: {tls.fingerprint}")
    click.echo(f"listening on {bound_host}:{bound_port}" + (" (TLS)" if tls else ""))
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        listener.stop()  # writes what is still queued
    click.echo("stopped")


def _load_tls(cert: Path | None, key: Path | None) -> ServerTLS | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise click.UsageError("--tls-cert and --tls-key go together")
    try:
        return load_server_tls(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot use {cert} and {key} for TLS: {exc}") from exc


@main.command()
@click.argument("host")
@click.option(
    "--cert",
    "cert_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default="ftpd-cert.pem",
    show_default=True,
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default="ftpd-key.pem",
    show_default=True,
)
@click.option("--days", type=click.IntRange(1, 3650), default=825, show_default=True)
@click.option("--force", is_flag=True, help="Replace existing files.")
def cert(host: str, cert_file: Path, key_file: Path, days: int, force: bool) -> None:
    """Write a self-signed certificate and key for HOST, and print its SHA-256 fingerprint."""
    for path in (cert_file, key_file):
        if path.exists() and not force:
            raise click.ClickException(f"{path} already exists; use --force to replace it")
    try:
        fp = make_self_signed(host, cert_file, key_file, days)
    except OSError as exc:
        raise click.ClickException(f"cannot write {exc.filename}: {exc.strerror}") from exc
    except ValueError as exc:
        raise click.ClickException(f"cannot make a certificate for {host!r}: {exc}") from exc
    click.echo(f"wrote {cert_file} and {key_file} (key readable only by you)")
    click.echo(f"SHA256 fingerprint: {fp}")
    click.echo(f"serve with: ftpd serve --tls-cert {cert_file} --tls-key {key_file}")
    click.echo(f"clients can pin it: ftpc --tls --fingerprint {fp} ...")


main.add_command(user)
