"""`ftpc`: a thin click layer over `ftpc.Client`.

Exit codes: 0 ok, 1 other failure, 2 usage, 3 auth, 4 not found, 5 conflict, 6 checksum,
7 network, 8 no space or quota (shared/cli.py; docs/SCRIPTING.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import click
from click.core import ParameterSource

from ftpc.client import DEFAULT_PORT, Client
from ftpc.commands import COMMANDS
from ftpc.config import default_config_path, load_config, password_from_command
from ftpc.report import HumanReporter, JsonReporter, Reporter
from ftpc.session import Session
from ftpc.state import ListingState
from ftpc.trust import TlsOptions
from shared import __version__, digests
from shared.cli import ByteSize, ConfigProblem, cli_errors
from shared.digests import MD5
from shared.errors import ConfigError, FtpError


@dataclass
class Settings:
    host: str
    port: int
    user: str | None
    quiet: bool
    timeout: float
    tls: bool = False
    cafile: str | None = None
    fingerprint: str | None = None
    digest: str = MD5
    limit_rate: int | None = None
    profile: str | None = None
    password_command: tuple[str, ...] | None = None
    json: bool = False
    active: Session | None = None
    """The session a batch script or the shell shares between its commands."""
    echo: Callable[[str], None] = click.echo
    workdir: Path | None = None
    _password: str | None = field(default=None, repr=False)

    @property
    def bars(self) -> bool:
        return not self.quiet and not self.json and sys.stdout.isatty()

    def cwd(self) -> Path:
        return self.workdir or Path.cwd()

    def credentials(self) -> tuple[str, str]:
        """Asked once, then kept: --jobs opens more connections with the same login."""
        user = self.user or click.prompt("User", err=True)
        password = self._password or os.environ.get("FTPC_PASSWORD")
        if password is None and self.password_command:
            password = password_from_command(self.profile or "", self.password_command)
        if password is None:
            password = click.prompt(f"Password for {user}@{self.host}", hide_input=True, err=True)
        self.user, self._password = user, password
        return user, password

    def tls_options(self) -> TlsOptions | None:
        if not (self.tls or self.cafile or self.fingerprint):
            return None
        try:
            return TlsOptions(self.cafile, self.fingerprint, confirm=_confirm_new_server)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--fingerprint") from exc

    def connect(self) -> Client:
        tls = self.tls_options()
        user, password = self.credentials()
        self.user = user
        return Client(
            self.host,
            self.port,
            user,
            password,
            timeout=self.timeout,
            tls=tls,
            digest=self.digest,
            limit_rate=self.limit_rate,
        )

    def state(self) -> ListingState:
        return ListingState(self.host, self.port, self.user or "")

    def reporter(self, json: bool | None = None) -> Reporter:
        if json or (json is None and self.json):
            return JsonReporter()
        return HumanReporter(self.bars, self.echo)

    @contextmanager
    def session(self, *, json: bool | None = None, connect: bool = True) -> Iterator[Session]:
        """The shared session inside batch or shell; otherwise a new one for this command,
        logged in up front (unless `connect` is false) and closed with a summary after."""
        if self.active is not None:
            yield self.active
            return
        session = Session(self.connect, self.reporter(json), self.state())
        try:
            if connect:
                session.open()  # log in now, so that a bad password is the first thing said
            yield session
        except FtpError as exc:  # the command failed as a whole (login, rm, ...)
            session.reporter.failure("command", "", exc)
            raise
        except click.ClickException as exc:
            session.reporter.settle(exc.exit_code)  # the summary says what the exit code says
            raise
        finally:
            try:
                session.close()
            finally:
                session.reporter.close()


def _confirm_new_server(host: str, port: int, fingerprint: str) -> bool:
    """Trust on first use, as ssh does: show the fingerprint and ask once, on a terminal only."""
    if not sys.stdin.isatty():
        return False
    click.echo(
        f"The certificate of {host}:{port} is not signed by an authority this machine knows.\n"
        f"Its SHA256 fingerprint is {fingerprint}\n"
        "Compare it with the one `ftpd serve` printed.",
        err=True,
    )
    return click.confirm("Trust this server from now on?", default=False, err=True)


@click.group()
@click.option(
    "--host",
    envvar="FTPC_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Server address [env FTPC_HOST].",
)
@click.option(
    "--port",
    envvar="FTPC_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Server port [env FTPC_PORT].",
)
@click.option("--user", envvar="FTPC_USER", help="Account name [env FTPC_USER].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds to wait on the network.",
)
@click.option("--tls/--no-tls", envvar="FTPC_TLS", help="Encrypt [env FTPC_TLS=1].")
@click.option(
    "--cafile",
    type=click.Path(dir_okay=False, exists=True),
    envvar="FTPC_CAFILE",
    help="Verify the server against these CA certificates (implies --tls).",
)
@click.option(
    "--fingerprint",
    envvar="FTPC_FINGERPRINT",
    help="Trust only a certificate with this SHA-256 fingerprint (implies --tls).",
)
@click.option(
    "--digest",
    type=click.Choice(digests.available()),
    envvar="FTPC_DIGEST",
    default=MD5,
    show_default=True,
    help="Checksum verifying each transfer; xxh3-128 is several times faster [env FTPC_DIGEST].",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    envvar="FTPC_JSON",
    help="Write newline-delimited JSON events to stdout, and nothing else there.",
)
@click.option(
    "--limit-rate",
    type=ByteSize(),
    envvar="FTPC_LIMIT_RATE",
    help="Bytes/s to send and receive at most, e.g. 500K or 10M; 0: no limit"
    " [env FTPC_LIMIT_RATE].",
)
@click.option(
    "--profile",
    envvar="FTPC_PROFILE",
    help="Settings from [profiles.NAME] in the config file; else [profiles.default],"
    " if any [env FTPC_PROFILE].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FTPC_CONFIG",
    help="The profiles file [env FTPC_CONFIG; default ~/.config/ftpc/config.toml].",
)
@click.version_option(__version__, prog_name="ftpc")
@click.pass_context
def main(
    ctx: click.Context,
    host: str,
    port: int,
    user: str | None,
    quiet: bool,
    timeout: float,
    tls: bool,
    cafile: str | None,
    fingerprint: str | None,
    digest: str,
    as_json: bool,
    limit_rate: int | None,
    profile: str | None,
    config_path: Path | None,
) -> None:
    """ftpc: list, upload, download and delete files on an ftpd server.

    The password comes from FTPC_PASSWORD, a profile's password_command, or a
    hidden prompt; it never crosses the wire (SCRAM-SHA-256). With --tls,
    everything is encrypted and the login is bound to the server's certificate;
    a server met for the first time is pinned after you accept its fingerprint,
    and a changed one is refused.
    A profile (--profile) supplies any option not given on the command line or
    in the environment.
    """
    settings = Settings(
        host, port, user, quiet, timeout, tls, cafile, fingerprint, digest, limit_rate
    )
    settings.json = as_json
    _apply_profile(ctx, settings, config_path, profile)
    ctx.obj = settings


def _apply_profile(
    ctx: click.Context, settings: Settings, config_path: Path | None, name: str | None
) -> None:
    """Fill in from the profile what neither the command line nor the environment gave."""
    try:
        config = load_config(config_path or default_config_path(), required=bool(config_path))
        profile = config.profile(name)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from exc
    if profile is None:
        return
    for key, value in profile.options().items():
        if ctx.get_parameter_source(key) in (None, ParameterSource.DEFAULT):
            setattr(settings, key, value)
    settings.profile, settings.password_command = profile.name, profile.password_command


for _command in COMMANDS:
    main.add_command(_command)


@main.command("shell")
@click.pass_obj
def shell_cmd(settings: Settings) -> None:
    """An interactive session: the same commands as here, over one login; type help."""
    from ftpc.shell import Shell

    with cli_errors(), settings.session() as session:
        client = session.client
        click.echo(f"logged in to {settings.host}:{settings.port} as {client.user}; type help")
        Shell(client, bars=settings.bars).run()


@main.command("batch")
@click.argument("script", type=click.File("r", encoding="utf-8"))
@click.pass_obj
def batch_cmd(settings: Settings, script: TextIO) -> None:
    """Run the commands in SCRIPT ('-': standard input) over one login.

    One command per line, as on this command line without 'ftpc': put -r site --to www.
    Blank lines and lines starting with # are skipped. A line starting with - may fail
    without stopping the script (as in sftp -b); any other failure stops it, naming the
    line, with that failure's exit code.
    """
    from ftpc.batch import run_script

    with cli_errors(), settings.session() as session:
        run_script(settings, session, script.read().split("\n"), getattr(script, "name", "-"))
