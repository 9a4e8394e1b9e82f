"""The click glue that both command lines share (the rest of `shared` is pure)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from shared.errors import ConfigError, FtpError
from shared.sizes import parse_size


class ByteSize(click.ParamType):
    """A size such as 500M or 2G (powers of 1024); rates use it too, in bytes per second."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class ConfigProblem(click.ClickException):
    """A bad configuration file: one `Error:` line and exit code 2, as for a bad option."""

    exit_code = 2


@contextmanager
def cli_errors() -> Iterator[None]:
    """Our errors and the file system's become one line on stderr and exit code 1
    (2 for a bad configuration file, which is a usage error)."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from exc
    except FtpError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"{where}{exc.strerror or exc}") from exc
