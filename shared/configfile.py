"""Reading a TOML configuration file, with errors that name the file, the line and the key."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shared.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    """The file's table; any problem reading or parsing it is one ConfigError naming it.

    tomllib's message carries the line and column of a syntax error.
    """
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text ({exc.reason})") from exc


def unknown_key(path: Path, key: str, known: Iterable[str], where: str = "") -> ConfigError:
    """The error for a key nobody reads, with the nearest known key as a hint."""
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{path}: unknown key {key!r}{where}{hint}")


TOML_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def type_name(value: object) -> str:
    """How TOML calls the value's type, for error messages."""
    return TOML_NAMES.get(type(value), type(value).__name__)
