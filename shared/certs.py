"""Certificate fingerprints, written the way `openssl x509 -fingerprint -sha256` writes them."""

from __future__ import annotations

import hashlib
import re

_PREFIX = re.compile(r"^\s*(sha-?256\s*(fingerprint)?\s*[:=]?)?\s*", re.IGNORECASE)


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as colon-separated upper-case hex, e.g. 'AB:01:...'."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def parse_fingerprint(text: str) -> str:
    """Accept 'AB:01:...', 'ab01...' or 'SHA256:AB:01...'; return the canonical form."""
    hexdigits = _PREFIX.sub("", text).replace(":", "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", hexdigits):
        raise ValueError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons optional)")
    upper = hexdigits.upper()
    return ":".join(upper[i : i + 2] for i in range(0, 64, 2))
