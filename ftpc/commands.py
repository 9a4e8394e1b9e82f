"""The ftpc commands. The same click commands serve the command line, `ftpc batch` scripts
and the interactive shell, so each option means the same thing everywhere.

Each command takes the Settings object from ctx.obj and works through a Session:
a fresh one on the command line, or the script's shared one in batch and shell.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ftpc.plan import Item, Plan, plan_get, plan_put, read_list
from ftpc.session import Session, Transfer
from ftpc.ui import human_size
from shared.cli import cli_errors
from shared.names import CONFLICTS, FAIL, check_folder, check_path

if TYPE_CHECKING:
    from ftpc.cli import Settings


conflict_option = click.option(
    "--on-conflict",
    "conflict",
    type=click.Choice(CONFLICTS),
    default=FAIL,
    show_default=True,
    help="When the name is taken by other content: fail, overwrite, rename (name.1.ext) or "
    "skip. Identical content always counts as done.",
)
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Same as --on-conflict overwrite."
)
jobs_option = click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Transfers to run at once, each over its own connection.",
)
dry_run_option = click.option(
    "--dry-run", "-n", is_flag=True, help="Print what would be transferred, and stop."
)
recursive_option = click.option("--recursive", "-r", is_flag=True, help="Whole folders.")


def resume_options(f: Callable[..., None]) -> Callable[..., None]:
    """--resume, --retries and --retry-wait, shared by put and get."""
    f = click.option(
        "--retry-wait",
        type=click.FloatRange(min=0),
        default=1.0,
        show_default=True,
        help="Seconds before the first retry; each next one waits twice as long (at most 60).",
    )(f)
    f = click.option(
        "--retries",
        type=click.IntRange(0, 1000),
        default=0,
        show_default=True,
        help="Reconnect this many times after a dropped connection, resuming where it stopped.",
    )(f)
    return click.option(
        "--resume",
        is_flag=True,
        help="Continue an interrupted transfer from the bytes already verified on the other side.",
    )(f)


def _mode(conflict: str, overwrite: bool) -> str:
    if overwrite and conflict not in (FAIL, "overwrite"):
        raise click.UsageError(f"--overwrite contradicts --on-conflict {conflict}")
    return "overwrite" if overwrite else conflict


def _tokens(session: Session, tokens: tuple[str, ...], by_name: bool) -> list[str]:
    """Paths for tokens that are paths, or numbers from the listing last seen."""
    if by_name:
        return [check_path(t) for t in tokens]
    return session.client.resolve(tokens, session.state.load())


@click.command("ls")
@click.argument("folder", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON lines.")
@click.pass_obj
def ls_cmd(settings: Settings, folder: str, as_json: bool) -> None:
    """List a folder (default: the top), numbered for get, rm and ls.

    FOLDER is a path, or the number of a folder in the last listing.
    """
    with cli_errors(), settings.session(json=as_json or None) as session:
        if folder and not folder.strip("/").isdigit():
            folder = check_folder(folder)
        elif folder:
            folder = _tokens(session, (folder.strip("/"),), False)[0]
        entries = session.client.list(folder)
        session.state.save(entries)
        session.reporter.listing(entries)


@click.command("put")
@click.argument("sources", nargs=-1)
@click.option("--to", "to", default="", help="Folder to upload into (created if missing).")
@recursive_option
@click.option(
    "--from-file",
    "from_file",
    help="Also upload the paths listed in this file, one per line ('-': standard input).",
)
@conflict_option
@overwrite_option
@jobs_option
@resume_options
@dry_run_option
@click.pass_obj
def put_cmd(
    settings: Settings,
    sources: tuple[str, ...],
    to: str,
    recursive: bool,
    from_file: str | None,
    conflict: str,
    overwrite: bool,
    jobs: int,
    resume: bool,
    retries: int,
    retry_wait: float,
    dry_run: bool,
) -> None:
    """Upload files (and with -r, folders); each checksum is verified.

    SOURCES may be glob patterns, such as 'logs/*.gz', expanded here when quoted.
    """
    mode = _mode(conflict, overwrite)
    with cli_errors():
        arguments = list(sources) + (read_list(from_file) if from_file else [])
        if not arguments:
            raise click.UsageError("nothing to upload: name files, or use --from-file")
        plan = plan_put(arguments, to, recursive)
        with settings.session(connect=not dry_run) as session:
            mark = session.mark()
            if dry_run:
                _show_plan(session, "put", plan, lambda i: f"{i.local} -> {i.remote}")
            else:
                session.put(plan, Transfer(mode, jobs, resume, retries, retry_wait))
            session.failures_since(mark)


@click.command("get")
@click.argument("items", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to download into (default: the current one).",
)
@recursive_option
@conflict_option
@overwrite_option
@click.option("--by-name", is_flag=True, help="Treat every item as a name, even digits.")
@jobs_option
@resume_options
@dry_run_option
@click.pass_obj
def get_cmd(
    settings: Settings,
    items: tuple[str, ...],
    output: Path | None,
    recursive: bool,
    conflict: str,
    overwrite: bool,
    by_name: bool,
    jobs: int,
    resume: bool,
    retries: int,
    retry_wait: float,
    dry_run: bool,
) -> None:
    """Download ITEMS, each a number from the last `ls` or a path; -r for folders."""
    mode = _mode(conflict, overwrite)
    with cli_errors(), settings.session() as session:
        mark = session.mark()
        dest = output if output is not None else settings.cwd()
        names = _tokens(session, items, by_name)
        seen = {e.path: e for e in session.state.load() or []}
        plan = plan_get(session.client, names, seen, dest, recursive)
        if dry_run:
            _show_plan(session, "get", plan, lambda i: f"{i.remote} -> {i.local}")
        else:
            dest.mkdir(parents=True, exist_ok=True)
            session.get(plan, Transfer(mode, jobs, resume, retries, retry_wait))
        session.failures_since(mark)


def _show_plan(session: Session, op: str, plan: Plan, describe: Callable[[Item], str]) -> None:
    session.refuse(op, plan)
    for item in plan.items:
        _plan_line(session, op, item, describe(item))
    session.reporter.note(
        "plan",
        op=op,
        files=len(plan.items),
        bytes=plan.total,
        refused=len(plan.refused),
        dry_run=True,
        text=f"would {op} {len(plan.items)} files, {human_size(plan.total)}",
    )


def _plan_line(session: Session, op: str, item: Item, text: str) -> None:
    session.reporter.note(
        "would",
        op=op,
        name=item.remote,
        path=str(item.local),
        size=item.size,
        text=f"would {op} {text} ({human_size(item.size)})",
    )


@click.command("rm")
@click.argument("items", nargs=-1, required=True)
@click.option("--by-name", is_flag=True, help="Treat every item as a name, even digits.")
@click.pass_obj
def rm_cmd(settings: Settings, items: tuple[str, ...], by_name: bool) -> None:
    """Delete ITEMS (files, or empty folders), each a number from the last `ls` or a path."""
    with cli_errors(), settings.session() as session:
        for name in _tokens(session, items, by_name):
            gone = session.client.remove(name)
            session.reporter.note("deleted", name=gone, text=f"deleted {gone}")


@click.command("mkdir")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--parents", "-p", is_flag=True, help="Also make missing folders above; no error if it exists."
)
@click.pass_obj
def mkdir_cmd(settings: Settings, paths: tuple[str, ...], parents: bool) -> None:
    """Create folders."""
    with cli_errors(), settings.session() as session:
        for path in paths:
            created = session.client.mkdir(check_path(path), parents=parents)
            text = f"created folder {path}" if created else f"folder {path} already exists"
            session.reporter.note("mkdir", name=path, created=created, text=text)


COMMANDS = (ls_cmd, put_cmd, get_cmd, rm_cmd, mkdir_cmd)
"""The commands a batch script or the shell may run."""
