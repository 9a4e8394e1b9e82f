"""Upload frames for tests that drive the daemon by hand: a valid `uploads` frame, and a
header the encoder would refuse to build (so that the decoder's checks can be reached)."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

from shared.protocol import Role, encode


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def uploads_frame(files: list[tuple[str, bytes]], **fields: Any) -> bytes:
    """An `uploads` frame of (name, bytes) pairs, each with its md5."""
    entries = [[name, len(data), md5(data)] for name, data in files]
    body = b"".join(data for _, data in files)
    return encode("uploads", Role.CLIENT, files=entries, size=len(body), **fields) + body


def unchecked_header(obj: dict[str, Any]) -> bytes:
    """A length-prefixed header built without the encoder's checks (ASCII JSON)."""
    payload = json.dumps(obj).encode("ascii")
    return struct.pack("!I", len(payload)) + payload
