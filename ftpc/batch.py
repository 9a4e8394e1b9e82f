"""`ftpc batch`: a script of ftpc commands run over one login, as `sftp -b` runs its own.

Each line is a command as typed after `ftpc` (put, get, ls, rm, mkdir), parsed with
shell quoting rules. The shell reads its lines through `run_line` too.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from ftpc.commands import COMMANDS
from ftpc.state import MemoryState
from shared.cli import OK, USAGE, Failed

if TYPE_CHECKING:
    from ftpc.cli import Settings
    from ftpc.session import Session

BY_NAME: dict[str, click.Command] = {c.name: c for c in COMMANDS if c.name}


def run_line(settings: Settings, line: str) -> None:
    """Run one command line; its failure raises a click.ClickException with its exit code."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise click.UsageError(f"cannot parse the line: {exc}") from exc
    if not words:
        return
    verb, args = words[0], words[1:]
    command = BY_NAME.get(verb)
    if command is None:
        raise click.UsageError(f"unknown command {verb!r}; the commands are {', '.join(BY_NAME)}")
    command.main(args, prog_name=verb, obj=settings, standalone_mode=False)


def run_script(settings: Settings, session: Session, lines: Sequence[str], source: str) -> None:
    """Run each line in turn over `session`; stop at the first failure of a line not marked -."""
    settings.active = session
    session.state = MemoryState()  # numbers mean what this script listed
    try:
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            tolerant = line.startswith("-")
            if tolerant:
                line = line[1:].lstrip()
            try:
                run_line(settings, line)
            except click.ClickException as exc:
                code = exc.exit_code if exc.exit_code else USAGE
                where = f"{source}, line {number} ({line})"
                if tolerant:
                    session.reporter.note(
                        "ignored",
                        line=number,
                        command=line,
                        exit=code,
                        message=exc.format_message(),
                        text=f"{where} failed, ignored: {exc.format_message()}",
                    )
                    continue
                session.reporter.note(
                    "stopped", line=number, command=line, exit=code, message=exc.format_message()
                )
                session.reporter.settle(code)  # the summary says what the exit code says
                raise Failed(f"{where}: {exc.format_message()}", code) from exc
        session.reporter.settle(OK)  # failures on lines marked - do not fail the script
    finally:
        settings.active = None
