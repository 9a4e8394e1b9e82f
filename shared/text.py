"""Characters that must never reach a file name or a user's terminal unescaped."""

from __future__ import annotations

import re

CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
"""C0 and C1 controls, lone surrogates, the line and paragraph separators (line breaks to
many a log reader), and the bidi controls that make text display as something else.
One compiled regex keeps checking a 100,000-entry listing fast."""


def printable(text: str) -> str:
    """Escape control characters, so a peer's text cannot drive the user's terminal."""
    return CONTROL.sub(
        lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text
    )
