"""The interactive session: a prompt over one login, taking the same commands as ftpc itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ftpc.batch import BY_NAME, run_line
from ftpc.client import Client
from ftpc.report import HumanReporter
from ftpc.session import Session
from ftpc.state import MemoryState
from ftpc.ui import format_listing
from shared.cli import NETWORK

HELP = """commands (each takes the options it takes on the ftpc command line; CMD --help):
  ls [FOLDER|N]          list a folder, numbered
  put FILE... [-r] [--to FOLDER] [--on-conflict fail|overwrite|rename|skip]
  get N|PATH... [-r] [-o DIR] [--on-conflict ...]   without arguments, pick from the list
  rm N|PATH...           delete files or empty folders
  mkdir [-p] FOLDER...   create folders
  help                   this text
  quit                   leave (also: exit, Ctrl-D)
numbers refer to this session's last ls"""


def _prompt(text: str) -> str:
    return str(click.prompt(text, default="", show_default=False, prompt_suffix=" "))


class Shell:
    """Reads commands until quit or end of input; a failed command does not end the session,
    but a lost connection does."""

    def __init__(
        self,
        client: Client,
        *,
        bars: bool = False,
        read: Callable[[str], str] = _prompt,
        echo: Callable[[str], None] = click.echo,
        cwd: Path | None = None,
    ) -> None:
        from ftpc.cli import Settings  # the shell is a front end of the command line

        self.client = client
        self.read = read
        self.echo = echo
        self.settings = Settings(
            client.host,
            client.port,
            client.user,
            quiet=not bars,
            timeout=client.chan.sock.gettimeout() or 60.0,
            echo=echo,
            workdir=cwd,
        )
        self.session = Session(lambda: client, HumanReporter(bars, echo), MemoryState())
        self.session.parallel = False  # one login, one connection: --jobs runs serially

    def run(self) -> None:
        self.settings.active = self.session
        try:
            while True:
                try:
                    line = self.read("ftpc>")
                except (EOFError, click.exceptions.Abort):
                    self.echo("")
                    return
                words = line.split()
                if not words:
                    continue
                if words[0] in ("quit", "exit", "bye"):
                    return
                if words[0] in ("help", "?"):
                    self.echo(HELP)
                    continue
                if words == ["get"]:
                    line = self._pick()
                    if not line:
                        continue
                self._run(line)
        finally:
            self.settings.active = None

    def _run(self, line: str) -> None:
        try:
            run_line(self.settings, line)
        except click.ClickException as exc:
            if exc.exit_code == NETWORK and not self.client.connected:
                raise  # the connection is gone: end the session
            self.echo(f"error: {exc.format_message()}")

    def _pick(self) -> str:
        """`get` alone: show the listing and ask for a number."""
        entries = self.client.list()
        self.session.state.save(entries)
        self.echo(format_listing(entries))
        if not entries:
            return ""
        choice = self.read("number to download (empty to cancel):").strip()
        return f"get {choice}" if choice else ""


__all__ = ["BY_NAME", "HELP", "Shell"]
