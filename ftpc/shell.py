"""The interactive session: a prompt over one logged-in Client."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import click

from ftpc.client import Client
from ftpc.ui import format_listing, get_files, put_files
from shared.errors import FtpError, ProtocolError, TransportError

HELP = """commands:
  ls                     list files, numbered
  put FILE... [--overwrite]
  get [N|NAME...] [--overwrite]   without arguments, pick from the list
  rm N|NAME...
  help                   this text
  quit                   leave (also: exit, Ctrl-D)
numbers refer to this session's last ls"""


def _prompt(text: str) -> str:
    return str(click.prompt(text, default="", show_default=False, prompt_suffix=" "))


class Shell:
    """Reads commands until quit or end of input; a failed command does not end the session."""

    def __init__(
        self,
        client: Client,
        *,
        bars: bool = False,
        read: Callable[[str], str] = _prompt,
        echo: Callable[[str], None] = click.echo,
        cwd: Path | None = None,
    ) -> None:
        self.client = client
        self.bars = bars
        self.read = read
        self.echo = echo
        self.cwd = cwd or Path.cwd()
        self.commands: dict[str, Callable[[list[str]], None]] = {
            "ls": self.do_ls,
            "put": self.do_put,
            "get": self.do_get,
            "rm": self.do_rm,
            "help": self.do_help,
        }

    def run(self) -> None:
        while True:
            try:
                line = self.read("ftpc>")
            except (EOFError, click.exceptions.Abort):
                self.echo("")
                return
            try:
                words = shlex.split(line)
            except ValueError as exc:
                self.echo(f"error: {exc}")
                continue
            if not words:
                continue
            verb, args = words[0], words[1:]
            if verb in ("quit", "exit", "bye"):
                return
            command = self.commands.get(verb)
            if command is None:
                self.echo(f"error: unknown command {verb!r}; type help")
                continue
            try:
                command(args)
            except (TransportError, ProtocolError):
                raise  # the connection is gone or out of frame: end the session
            except FtpError as exc:
                self.echo(f"error: {exc}")

    def do_help(self, args: list[str]) -> None:
        self.echo(HELP)

    def do_ls(self, args: list[str]) -> None:
        self.echo(format_listing(self.client.list()))

    @staticmethod
    def _flag(args: list[str], flag: str) -> tuple[list[str], bool]:
        return [a for a in args if a != flag], flag in args

    def do_put(self, args: list[str]) -> None:
        args, overwrite = self._flag(args, "--overwrite")
        if not args:
            self.echo("usage: put FILE... [--overwrite]")
            return
        paths = [self.cwd / a for a in args]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            self.echo(f"error: no such file: {', '.join(missing)}")
            return
        put_files(self.client, paths, overwrite, self.bars, self.echo)

    def do_get(self, args: list[str]) -> None:
        args, overwrite = self._flag(args, "--overwrite")
        if not args:
            entries = self.client.list()
            self.echo(format_listing(entries))
            if not entries:
                return
            choice = self.read("number to download (empty to cancel):").strip()
            if not choice:
                return
            args = [choice]
        names = self.client.resolve(args)
        sizes = {e.name: e.size for e in self.client.last_listing or []}
        get_files(self.client, names, self.cwd, overwrite, self.bars, self.echo, sizes)

    def do_rm(self, args: list[str]) -> None:
        if not args:
            self.echo("usage: rm N|NAME...")
            return
        for name in self.client.resolve(args):
            self.echo(f"deleted {self.client.remove(name)}")
