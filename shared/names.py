"""File name and path rules, shared so that the client refuses what the server would.

A path is one or more names joined by "/": `reports/2026/q3.pdf`. Every component is
checked as a name, so no path can climb out of the root or spell a separator another way.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from shared.errors import BadName
from shared.text import CONTROL

MAX_NAME_BYTES = 255
FAIL, OVERWRITE, RENAME, SKIP = "fail", "overwrite", "rename", "skip"
CONFLICTS = (FAIL, OVERWRITE, RENAME, SKIP)
"""What a transfer does when its target name is taken by other content (docs/PROTOCOL.md)."""
MAX_DEPTH = 32
"""Folders nest at most this deep: a bound on every walk, on both sides."""
MAX_PATH_CHARS = 4096
"""A whole path, in NFC, has at most this many characters: the limit of a `name` field, which
NFC can pass (U+FB2C is three characters in NFC), so that every reply can name its file."""
RESERVED_PREFIX = ".ftpd"
"""The server keeps its staging files and md5 cache under this prefix in the root."""
RESERVED_NAMES = frozenset({".gitkeep"})
"""Placeholders that keep an empty root in version control (as the repo's storage/ does):
never listed, served, replaced or deleted."""


def check_name(name: str) -> str:
    """Return `name` in NFC if it is one safe path component; raise BadName otherwise."""
    if not isinstance(name, str):
        raise BadName("a name must be a string")
    if not name:
        raise BadName("a name must not be empty")
    ascii_only = name.isascii()
    if not ascii_only:
        name = unicodedata.normalize("NFC", name)
    bad = CONTROL.search(name)
    if bad:
        raise BadName(f"name {name!r} contains the control character U+{ord(bad.group()):04X}")
    if "/" in name or "\\" in name:
        raise BadName(f"name {name!r} must be a single component, without / or \\")
    if name in (".", ".."):
        raise BadName(f"name {name!r} is not allowed")
    if not ascii_only:
        # Compatibility forms such as FULLWIDTH SOLIDUS fold to "/" on other systems.
        folded = unicodedata.normalize("NFKC", name)
        if "/" in folded or "\\" in folded or folded in (".", ".."):
            raise BadName(f"name {name!r} looks like a path separator or a dot entry")
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise BadName(f"name is longer than {MAX_NAME_BYTES} bytes in UTF-8")
    elif len(name) > MAX_NAME_BYTES:
        raise BadName(f"name is longer than {MAX_NAME_BYTES} bytes in UTF-8")
    if name.startswith(RESERVED_PREFIX):
        raise BadName(f"names starting with {RESERVED_PREFIX!r} are reserved for the server")
    if name in RESERVED_NAMES:
        raise BadName(f"{name!r} is a placeholder the server keeps, not a stored file")
    return name


def check_path(path: str) -> str:
    """Return `path` in NFC if every "/"-separated component is a safe name; else BadName."""
    if not isinstance(path, str):
        raise BadName("a path must be a string")
    if len(path) <= CACHED_PATH_CHARS:
        return _remembered_path(path)
    return _check_path(path)


CACHED_PATH_CHARS = 255
"""Paths up to this long are remembered, at most 1,024 of them: well under a megabyte,
whatever names a peer sends."""


@functools.lru_cache(maxsize=1024)
def _remembered_path(path: str) -> str:
    """An upload's name is checked by the session, storage and the publish step in turn (each
    must not trust the others), and the answer never changes. Raising is not remembered."""
    return _check_path(path)


def _plain_component() -> str:
    """A regex for one ASCII name that check_name accepts unchanged: no control character, no
    separator, not . or .., not reserved, 1 to 255 characters."""
    dot_entry = r"\.\.?(?:/|$)"
    reserved = "|".join(re.escape(n) + "(?:/|$)" for n in sorted(RESERVED_NAMES))
    chars = rf"[^\x00-\x1f\x7f/\\]{{1,{MAX_NAME_BYTES}}}"
    return rf"(?!{dot_entry})(?!{re.escape(RESERVED_PREFIX)})(?!{reserved}){chars}"


_PLAIN = _plain_component()
_PLAIN_ASCII_PATH = re.compile(rf"{_PLAIN}(?:/{_PLAIN}){{0,{MAX_DEPTH - 1}}}")
"""The paths almost every upload names, matched in C in one pass; anything else, including
every path that breaks a rule, takes the checks below, which say what is wrong."""


def _check_path(path: str) -> str:
    if path.isascii() and len(path) <= MAX_PATH_CHARS and _PLAIN_ASCII_PATH.fullmatch(path):
        return path  # ASCII is its own NFC and NFKC
    return _check_each(path)


def _check_each(path: str) -> str:
    if "/" not in path:
        return check_name(path)  # at most 255 bytes, so within MAX_PATH_CHARS
    parts = path.split("/")
    if "" in parts:
        raise BadName(f"path {path!r} has an empty component (a leading, trailing or double /)")
    if len(parts) > MAX_DEPTH:
        raise BadName(f"path {path[:64]!r}... is deeper than {MAX_DEPTH} folders")
    checked = "/".join(check_name(part) for part in parts)
    if len(checked) > MAX_PATH_CHARS:
        raise BadName(f"path {path[:64]!r}... is longer than {MAX_PATH_CHARS} characters in NFC")
    return checked


def check_folder(path: str) -> str:
    """A folder path, where "" (or "/") means the root."""
    return "" if path in ("", "/") else check_path(path)


def split_path(path: str) -> tuple[str, str]:
    """("reports/2026", "q3.pdf") for "reports/2026/q3.pdf"; ("", name) at the top."""
    folder, _, leaf = path.rpartition("/")
    return folder, leaf


def join_path(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def numbered(name: str, n: int, max_chars: int = MAX_PATH_CHARS) -> str:
    """The n-th variant of a taken name, for `rename`: report.pdf, report.1.pdf, ...

    The number goes before the first dot that is not leading, so that every extension
    (.tar.gz) is kept, and stays within the byte limit of a name and within `max_chars`
    characters (what is left of a path's limit below its folder), trimming the stem.
    """
    if n == 0:
        return name
    lead = len(name) - len(name.lstrip("."))
    stem, dot, ext = name[lead:].partition(".")
    head, suffix = name[:lead] + stem, f".{n}{dot}{ext}"
    if _utf8_len(suffix) >= MAX_NAME_BYTES - 1:  # an absurdly long extension: number at the end
        head, suffix = name, f".{n}"
    while len(head) > 1 and (
        _utf8_len(head) + _utf8_len(suffix) > MAX_NAME_BYTES or len(head) + len(suffix) > max_chars
    ):
        head = head[:-1]
    return head + suffix


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def conflict_mode(overwrite: bool, on_conflict: str | None) -> str:
    """One of CONFLICTS; `overwrite=True` is the older spelling of on_conflict="overwrite"."""
    mode = on_conflict or (OVERWRITE if overwrite else FAIL)
    if mode not in CONFLICTS:
        raise ValueError(f"on_conflict must be one of {', '.join(CONFLICTS)}, not {mode!r}")
    if overwrite and mode != OVERWRITE:
        raise ValueError(f"overwrite=True contradicts on_conflict={mode!r}")
    return mode


def conflict_fields(mode: str) -> dict[str, str]:
    return {} if mode == FAIL else {"on_conflict": mode}
