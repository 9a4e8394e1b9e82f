"""Sizes and rates as people write them (500K, 10M, 2G): one parser for both CLIs and configs."""

from __future__ import annotations

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: int | str) -> int:
    """Bytes for `value`: an int, or digits with an optional K, M, G or T (powers of 1024).

    "KB", "KiB" and lower case are accepted too. Raises ValueError with the text to show.
    """
    if type(value) is int:
        if value < 0:
            raise ValueError(f"{value} is not a size: it is negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a size such as 1048576, 500M or 2G")
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    number = text[: len(text) - len(unit)]
    if not number.isascii() or not number.isdigit():
        raise ValueError(f"{value!r} is not a size such as 1048576, 500M or 2G")
    return int(number) * _UNITS[unit]
