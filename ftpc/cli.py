"""`ftpc`: a thin click layer over `ftpc.Client`. Exit codes: 0 ok, 1 failure, 2 usage."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import click
from click.core import ParameterSource

from ftpc.client import DEFAULT_PORT, Client
from ftpc.config import default_config_path, load_config, password_from_command
from ftpc.state import ListingState
from ftpc.trust import TlsOptions
from ftpc.ui import format_listing, get_files, listing_json, put_files
from shared import __version__, digests
from shared.cli import ByteSize, ConfigProblem, cli_errors
from shared.digests import MD5
from shared.errors import ConfigError
from shared.names import check_name


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

    @property
    def bars(self) -> bool:
        return not self.quiet and sys.stdout.isatty()

    def credentials(self) -> tuple[str, str]:
        user = self.user or click.prompt("User")
        password = os.environ.get("FTPC_PASSWORD")
        if password is None and self.password_command:
            password = password_from_command(self.profile or "", self.password_command)
        if password is None:
            password = click.prompt(f"Password for {user}@{self.host}", hide_input=True)
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


@main.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.pass_obj
def ls_cmd(settings: Settings, as_json: bool) -> None:
    """List stored files, numbered for get and rm."""
    with cli_errors(), settings.connect() as client:
        entries = client.list()
        settings.state().save(entries)
    click.echo(listing_json(entries) if as_json else format_listing(entries))


@main.command("put")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--overwrite", is_flag=True, help="Replace a stored file with the same name.")
@click.pass_obj
def put_cmd(settings: Settings, files: tuple[Path, ...], overwrite: bool) -> None:
    """Upload FILES over one connection; each md5 is verified."""
    with cli_errors():
        for path in files:
            check_name(path.name)
        with settings.connect() as client:
            put_files(client, files, overwrite, settings.bars, click.echo)


def _names(settings: Settings, client: Client, tokens: tuple[str, ...], by_name: bool) -> list[str]:
    """Numbers mean the listing last seen with `ftpc ls`, checked against the current one."""
    if by_name:
        return [check_name(t) for t in tokens]
    return client.resolve(tokens, settings.state().load())


@main.command("get")
@click.argument("items", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to download into (default: the current one).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing local files.")
@click.option("--by-name", is_flag=True, help="Treat every item as a name, even digits.")
@click.pass_obj
def get_cmd(
    settings: Settings, items: tuple[str, ...], output: Path | None, overwrite: bool, by_name: bool
) -> None:
    """Download ITEMS, each a number from the last `ls` or a name."""
    with cli_errors():
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
        with settings.connect() as client:
            names = _names(settings, client, items, by_name)
            sizes = {e.name: e.size for e in settings.state().load() or []}
            get_files(client, names, output, overwrite, settings.bars, click.echo, sizes)


@main.command("rm")
@click.argument("items", nargs=-1, required=True)
@click.option("--by-name", is_flag=True, help="Treat every item as a name, even digits.")
@click.pass_obj
def rm_cmd(settings: Settings, items: tuple[str, ...], by_name: bool) -> None:
    """Delete ITEMS, each a number from the last `ls` or a name."""
    with cli_errors(), settings.connect() as client:
        names = _names(settings, client, items, by_name)
        for name in names:
            click.echo(f"deleted {client.remove(name)}")


@main.command("shell")
@click.pass_obj
def shell_cmd(settings: Settings) -> None:
    """An interactive session: ls, put, get N, rm N, help, quit."""
    from ftpc.shell import Shell

    with cli_errors(), settings.connect() as client:
        click.echo(f"logged in to {settings.host}:{settings.port} as {client.user}; type help")
        Shell(client, bars=settings.bars).run()
