"""The header fields: every one that may appear in a message, with the check of its value.

The limits here are part of the protocol (docs/PROTOCOL.md, section 3); a value failing
its check is a protocol error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shared.names import CONFLICTS, MAX_PATH_CHARS

MAX_HEADER = 65536
MAX_SIZE = 1 << 50
"""Largest body or file size accepted on the wire (1 PiB): anything above is absurd."""

_MD5 = re.compile(r"[0-9a-f]{32}")
_SUM = re.compile(r"[0-9a-f]{16,128}")


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        # bool is a subclass of int; float and NaN are not ints at all.
        if type(value) is not int:
            return f"must be an integer, not {type(value).__name__}"
        if not low <= value <= high:
            return f"must be between {low} and {high}"
        return None

    return check


def _text(max_len: int, *, empty: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be a string, not {type(value).__name__}"
        if not value and not empty:
            return "must not be empty"
        if len(value) > max_len:
            return f"must be at most {max_len} characters"
        return None

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _md5(value: Any) -> str | None:
    if isinstance(value, str) and _MD5.fullmatch(value):
        return None
    return "must be 32 lowercase hex digits"


def _hex_sum(value: Any) -> str | None:
    if isinstance(value, str) and _SUM.fullmatch(value):
        return None
    return "must be 16 to 128 lowercase hex digits"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices and isinstance(value, str) else f"must be one of {choices}"

    return check


def _list_of_text(items: int, length: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, list) or len(value) > items:
            return f"must be a list of at most {items} strings"
        if not all(isinstance(v, str) and 0 < len(v) <= length for v in value):
            return f"must hold only non-empty strings of at most {length} characters"
        return None

    return check


_text_list = _list_of_text(64, 64)

MAX_FRAME_FILES = 64
MAX_FRAME_NAMES = 8192
"""Most files one `uploads` frame may carry, and most characters in all their names: any
frame within both fits a header (even a name of 4,096 characters goes in a frame alone)."""
_entry_name = _text(MAX_PATH_CHARS)
_entry_size = _integer(0, MAX_SIZE)


def _files(value: Any) -> str | None:
    """The files of an `uploads` frame: [name, size, checksum] each, in body order."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_FRAME_FILES:
        return f"must be a list of 1 to {MAX_FRAME_FILES} files"
    for n, entry in enumerate(value):
        if not isinstance(entry, list) or len(entry) != 3:
            return f"entry {n} must be a list of name, size and checksum"
        problem = _entry_name(entry[0]) or _entry_size(entry[1]) or _hex_sum(entry[2])
        if problem:
            return f"entry {n}: {problem}"
    if sum(len(entry[0]) for entry in value) > MAX_FRAME_NAMES:
        return f"must have at most {MAX_FRAME_NAMES} characters of names in all"
    return None


FIELDS: dict[str, Callable[[Any], str | None]] = {
    "version": _integer(1, 65535),
    "server": _text(256),
    "mechanisms": _text_list,
    "capabilities": _text_list,
    "max_header": _integer(1, MAX_HEADER),
    "mechanism": _text(64),
    "data": _text(4096),
    "user": _text(64),
    "perms": _text(3, empty=True),
    "name": _text(MAX_PATH_CHARS),
    "size": _integer(0, MAX_SIZE),
    "md5": _md5,
    "digest": _text(32),
    "digests": _list_of_text(16, 32),
    "sum": _hex_sum,
    "mtime": _integer(-(1 << 53), 1 << 53),
    "count": _integer(0, 1 << 32),
    "overwrite": _boolean,
    "on_conflict": _one_of(*CONFLICTS),
    "parents": _boolean,
    "resume": _boolean,
    "offset": _integer(0, MAX_SIZE),
    "prefix": _hex_sum,
    "existed": _boolean,
    "skipped": _boolean,
    "created": _boolean,
    "code": _text(64),
    "message": _text(4096, empty=True),
    "fatal": _boolean,
    "files": _files,
}
"""Every field that may appear in any header, with its check."""
