"""`ftpd serve --config ftpd.toml`: a file of defaults for the command's own options.

Every key is the long name of one of the command's options, with dashes or
underscores (`max-file-size` or `max_file_size`); the accepted keys come from the
click command itself, so a new option can be set from the file with no change
here. The values become click's `default_map`, which ranks below the command line
and environment variables and above the built-in defaults. Relative paths are
taken from the file's directory, so a file means the same from any working directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from shared.cli import ByteSize, ConfigProblem
from shared.configfile import TOML_NAMES, read_toml, type_name, unknown_key
from shared.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def option_keys(command: click.Command) -> dict[str, click.Option]:
    """Each key a file may use for `command`, both spellings, mapped to its option."""
    keys: dict[str, click.Option] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or not param.expose_value:
            continue  # --config itself, --help, --version: nothing to set
        for opt in param.opts:
            if opt.startswith("--"):
                keys[opt[2:]] = param
                keys[opt[2:].replace("-", "_")] = param
    return keys


def _accepted(param: click.Option) -> tuple[type, ...]:
    """The TOML types that can mean a value of this option."""
    kind = param.type
    if param.is_flag or isinstance(kind, click.types.BoolParamType):
        return (bool,)
    if isinstance(kind, ByteSize):
        return (int, str)  # 1048576 or "1M"
    if isinstance(kind, click.types.IntParamType):
        return (int,)
    if isinstance(kind, click.types.FloatParamType):
        return (int, float)
    return (str,)


def _check_one(path: Path, key: str, param: click.Option, value: object) -> object:
    accepted = _accepted(param)
    if isinstance(value, bool) != (bool in accepted) or not isinstance(value, accepted):
        wanted = " or ".join(TOML_NAMES[t] for t in accepted)
        raise ConfigError(f"{path}: {key!r} must be {wanted}, not {type_name(value)}")
    if isinstance(param.type, click.Path) and isinstance(value, str):
        value = str(path.absolute().parent / Path(value).expanduser())  # absolute stays absolute
    return value


def defaults_from_file(command: click.Command, path: Path, ctx: click.Context) -> dict[str, Any]:
    """The file's values, checked as the command line would check them, keyed by param name."""
    data = read_toml(path)
    keys = option_keys(command)
    seen: dict[str, str] = {}
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        param = keys.get(key)
        if param is None or param.name is None:
            raise unknown_key(path, key, keys)
        if param.name in seen:
            raise ConfigError(f"{path}: {seen[param.name]!r} and {key!r} set the same option")
        seen[param.name] = key
        if param.multiple or param.nargs != 1:
            if not isinstance(value, list):
                raise ConfigError(f"{path}: {key!r} must be an array, not {type_name(value)}")
            value = [_check_one(path, key, param, v) for v in value]
        else:
            value = _check_one(path, key, param, value)
        try:
            param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise ConfigError(f"{path}: bad value for {key!r}: {exc.message}") from exc
        defaults[param.name] = value
    return defaults


def _load(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is None:
        return
    try:
        defaults = defaults_from_file(ctx.command, value, ctx)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from exc
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def config_option(envvar: str) -> Callable[[F], F]:
    """`--config FILE`: read before the other options (eager), so its values are their defaults."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=envvar,
        is_eager=True,
        expose_value=False,
        callback=_load,
        help=f"A TOML file of defaults for these options; the command line wins [env {envvar}].",
    )
