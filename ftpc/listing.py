"""What a number from a listing means, and when it no longer means it."""

from __future__ import annotations

from shared.errors import NotFound, StaleListing
from shared.listing import Entry, decode_listing
from shared.names import check_path

__all__ = ["Entry", "decode_listing", "is_index", "resolve"]


def is_index(token: str) -> bool:
    return token.isascii() and token.isdigit()


def resolve(token: str, seen: list[Entry] | None, current: list[Entry]) -> str:
    """Turn a number from the listing the user saw, or a path, into a path.

    A number must still name the same file in the server's current listing;
    otherwise the user would act on a file they never saw, so we refuse.
    """
    if not is_index(token):
        return check_path(token)
    if len(token.lstrip("0")) > 18:  # past any listing; int() of 4,301 digits even raises
        raise NotFound(f"there is no #{token[:20]}... in the last listing")
    index = int(token)
    if seen is None:
        raise StaleListing(f"#{index} refers to a listing, but none was seen: run ls first")
    if not 1 <= index <= len(seen):
        raise NotFound(f"there is no #{index} in the last listing (it had {len(seen)} entries)")
    was = seen[index - 1]
    now = current[index - 1] if index <= len(current) else None
    if now is None or now.path != was.path:
        now_text = f"{now.path!r}" if now is not None else "gone"
        raise StaleListing(
            f"the listing changed since you saw it: #{index} was {was.path!r}, now {now_text};"
            " run ls again"
        )
    if (now.size, now.md5, now.kind) != (was.size, was.md5, was.kind):
        raise StaleListing(
            f"#{index} ({was.path!r}) was replaced since you listed it; run ls again"
        )
    return was.path
