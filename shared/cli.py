"""The one piece of click glue that both command lines share (the rest of `shared` is pure)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from shared.errors import FtpError


@contextmanager
def cli_errors() -> Iterator[None]:
    """Our errors and the file system's become one line on stderr and exit code 1."""
    try:
        yield
    except FtpError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"{where}{exc.strerror or exc}") from exc
