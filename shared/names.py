"""File name rules, shared so that the client refuses what the server would."""

from __future__ import annotations

import unicodedata

from shared.errors import BadName
from shared.text import CONTROL

MAX_NAME_BYTES = 255
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
