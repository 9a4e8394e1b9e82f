"""`ftpd user ...`: the account commands, and the options they share with `serve`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ftpd.auth import (
    DEFAULT_ITERATIONS,
    MIN_ITERATIONS,
    PERMS,
    UserStore,
    check_rate,
    check_user_name,
)
from shared.cli import ByteSize, cli_errors


def default_users_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ftpd" / "users.json"


def iterations_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--iterations",
        type=click.IntRange(min=MIN_ITERATIONS),
        default=DEFAULT_ITERATIONS,
        show_default=True,
        help="PBKDF2 iterations for the SCRAM keys.",
    )(f)


def users_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--users",
        "users_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="FTPD_USERS",
        default=default_users_file,
        show_default="$FTPD_USERS or ~/.config/ftpd/users.json",
        help="The account file (kept outside the storage root).",
    )(f)


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("the password must not be empty")
    return password


@click.group("user")
def user() -> None:
    """Manage accounts: add, del, passwd, perm, quota, rate, list."""


@user.command("add")
@click.argument("name")
@click.option(
    "--perm",
    default=PERMS,
    show_default=True,
    help="Letters: r (ls, get), w (put, mkdir), d (rm, and replacing a file with other content).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@click.option("--quota", type=ByteSize(), default=None, help="Bytes it may keep stored (e.g. 10G).")
@click.option(
    "--rate", type=ByteSize(), default=None, help="Bytes/s its transfers may move (e.g. 10M)."
)
@iterations_option
@users_option
def user_add(
    name: str,
    perm: str,
    password_stdin: bool,
    quota: int | None,
    rate: int | None,
    iterations: int,
    users_file: Path,
) -> None:
    """Create an account."""
    with cli_errors():
        store = UserStore(users_file)
        check_user_name(name)
        check_rate(rate)
        account = store.add(name, _read_password(password_stdin), perm, iterations)
        if quota is not None:
            store.set_quota(name, quota)
        if rate is not None:
            store.set_rate(name, rate)
    click.echo(f"added {account.name} ({account.perms or 'no permissions'})")


@user.command("quota")
@click.argument("name")
@click.argument("size")
@users_option
def user_quota(name: str, size: str, users_file: Path) -> None:
    """Set an account's quota, e.g. `ftpd user quota bob 10G`, or `none`."""
    quota = None if size.lower() == "none" else ByteSize().convert(size, None, None)
    with cli_errors():
        UserStore(users_file).set_quota(name, quota)
    click.echo(f"quota of {name} set to {'none' if quota is None else f'{quota} bytes'}")


@user.command("rate")
@click.argument("name")
@click.argument("rate")
@users_option
def user_rate(name: str, rate: str, users_file: Path) -> None:
    """Limit an account's transfers to RATE bytes/s each way, e.g. `ftpd user rate bob 10M`,
    or `none`. All its connections share the rate; running sessions keep the old one."""
    value = None if rate.lower() == "none" else ByteSize().convert(rate, None, None)
    with cli_errors():
        UserStore(users_file).set_rate(name, value)
    click.echo(f"rate of {name} set to {'none' if value is None else f'{value} bytes/s'}")


@user.command("del")
@click.argument("name")
@users_option
def user_del(name: str, users_file: Path) -> None:
    """Delete an account."""
    with cli_errors():
        UserStore(users_file).remove(name)
    click.echo(f"deleted {name}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@iterations_option
@users_option
def user_passwd(name: str, password_stdin: bool, iterations: int, users_file: Path) -> None:
    """Set an account's password."""
    with cli_errors():
        store = UserStore(users_file)
        if store.get(name) is None:
            raise click.ClickException(f"no user named {name!r}")
        store.set_password(name, _read_password(password_stdin), iterations)
    click.echo(f"password changed for {name}")


@user.command("perm")
@click.argument("name")
@click.argument("perms")
@users_option
def user_perm(name: str, perms: str, users_file: Path) -> None:
    """Set an account's permissions, e.g. `ftpd user perm bob r`."""
    with cli_errors():
        UserStore(users_file).set_perms(name, perms)
    click.echo(f"permissions of {name} set to {perms!r}")


@user.command("list")
@users_option
def user_list(users_file: Path) -> None:
    """List accounts: name, permissions, quota (bytes) and rate (bytes/s), tab-separated."""
    with cli_errors():
        accounts = UserStore(users_file).accounts()
    for account in accounts:
        quota = "-" if account.quota is None else str(account.quota)
        rate = "-" if account.rate is None else str(account.rate)
        click.echo(f"{account.name}\t{account.perms or '-'}\t{quota}\t{rate}")
