"""File name rules in `shared.names`: one safe path component, in NFC, at most 255 bytes."""

from __future__ import annotations

import random
import unicodedata

import pytest

from shared import names
from shared.errors import BadName, RequestError
from shared.names import MAX_NAME_BYTES, RESERVED_PREFIX, check_name, check_path


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "report.pdf",
        "archive.tar.gz",
        "no extension",
        " leading and trailing spaces ",
        "UPPER_lower-123",
        "..hidden-with-two-dots",
        "...",
        ".bashrc",
        "a.",
        "文件.txt",
        "中文 名字",
        "😀",
        "party 🎉🎈.png",
        "👩‍👩‍👧",  # emoji joined by ZERO WIDTH JOINER
        "Ελληνικά",
        "עברית.txt",  # right-to-left text is fine; only the bidi controls are not
        "ftpd",
        ".ftp",
        "x.ftpd",
        "a:b",
        "*?<>|",
        "%2F",
        "a" * MAX_NAME_BYTES,
    ],
)
def test_accepts_normal_names(name: str) -> None:
    assert unicodedata.is_normalized("NFC", name)
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "a" * 255,
        "中" * 85,  # 3 bytes each
        "😀" * 63 + "abc",  # 4 bytes each
        "é" * 127 + "a",  # 2 bytes each
    ],
)
def test_accepts_names_of_exactly_255_utf8_bytes(name: str) -> None:
    assert len(name.encode("utf-8")) == 255
    assert check_name(name) == name


def test_returns_nfc_for_nfd_input() -> None:
    nfd = unicodedata.normalize("NFD", "café résumé.txt")
    assert nfd != "café résumé.txt"
    result = check_name(nfd)
    assert result == "café résumé.txt"
    assert unicodedata.is_normalized("NFC", result)
    # Hangul decomposes into jamo under NFD.
    assert check_name(unicodedata.normalize("NFD", "한국어")) == "한국어"


def test_the_byte_limit_applies_to_the_nfc_form() -> None:
    nfd = "e\u0301" * 100  # 300 bytes as given, 200 bytes once composed
    assert len(nfd.encode("utf-8")) > MAX_NAME_BYTES
    assert check_name(nfd) == "é" * 100


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "/",
        "a/b",
        "/etc/passwd",
        "../x",
        "a/",
        "\\",
        "a\\b",
        "..\\x",
        "\x00",
        "a\x00b",
        "line\nbreak",
        "\r",
        "tab\there",
        "\x1b[31mred",
        "\x7f",
        "\x85",  # NEXT LINE, a C1 control
        "evil\u202etxt.exe",  # RIGHT-TO-LEFT OVERRIDE
        "\u202d",
        "\u2066isolate\u2069",
        "\u200f",
        "\u061c",
        "a\uff0fb",  # FULLWIDTH SOLIDUS
        "\uff0f",
        "a\uff3cb",  # FULLWIDTH REVERSE SOLIDUS
        "\uff0e",  # FULLWIDTH FULL STOP folds to "."
        "\uff0e\uff0e",
        "\ufe52\ufe52",  # SMALL FULL STOP, folds to ".."
        "a" * (MAX_NAME_BYTES + 1),
        "中" * 86,  # 258 bytes, though only 86 characters
        "😀" * 64,
        RESERVED_PREFIX,
        ".ftpd",
        ".ftpdx",
        ".ftpd.part",
        ".ftpd-staging",
        "\ud800",  # lone surrogates
        "\udfff",
        "a\udcffb",  # what surrogateescape makes of a byte that is not UTF-8
    ],
)
def test_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(BadName):
        check_name(name)


@pytest.mark.parametrize("value", [None, b"abc", 5, ["a"]])
def test_refuses_what_is_not_a_string(value: object) -> None:
    with pytest.raises(BadName, match="must be a string"):
        check_name(value)  # type: ignore[arg-type]


def test_reserved_prefix_is_what_the_server_uses() -> None:
    assert RESERVED_PREFIX == ".ftpd"
    assert MAX_NAME_BYTES == 255


def test_reserved_prefix_is_checked_after_normalising() -> None:
    # The prefix is ASCII, so NFC cannot hide it; an NFD tail still counts as reserved.
    with pytest.raises(BadName, match="reserved"):
        check_name(".ftpd" + unicodedata.normalize("NFD", "é"))


def test_bad_name_is_a_request_error_with_its_wire_code() -> None:
    with pytest.raises(BadName) as info:
        check_name("a/b")
    assert isinstance(info.value, RequestError)
    assert info.value.code == "bad-name"
    assert "a/b" in str(info.value)


def test_error_messages_say_why() -> None:
    with pytest.raises(BadName, match="empty"):
        check_name("")
    with pytest.raises(BadName, match="U\\+202E"):
        check_name("x\u202ey")
    with pytest.raises(BadName, match="single component"):
        check_name("a/b")
    with pytest.raises(BadName, match="single component"):
        check_name("a\\b")
    with pytest.raises(BadName, match="path separator"):
        check_name("a\uff0fb")
    with pytest.raises(BadName, match="255 bytes"):
        check_name("中" * 86)
    with pytest.raises(BadName, match="reserved"):
        check_name(".ftpd")


def test_checked_paths_are_remembered_only_when_short_and_valid() -> None:
    long_path = "/".join(["d" * 200] * 5)
    before = names._remembered_path.cache_info().currsize
    assert check_path(long_path) == long_path
    assert names._remembered_path.cache_info().currsize == before  # long: checked, not kept
    for _ in range(2):  # a refusal is never remembered as an answer
        with pytest.raises(BadName):
            check_path("a/../b")
    assert check_path("caf\u0065\u0301/x") == "caf\u00e9/x"
    assert check_path("caf\u0065\u0301/x") == "caf\u00e9/x"  # the remembered answer is NFC
    assert names._remembered_path.cache_info().maxsize * names.CACHED_PATH_CHARS < 1 << 20


def _slow_verdict(path: str) -> str | None:
    try:
        return names._check_each(path)
    except BadName:
        return None


def test_the_fast_ascii_match_accepts_exactly_what_the_full_checks_accept_unchanged() -> None:
    """The one-regex path for plain ASCII names must never let through what the component
    checks refuse, and should take every plain name. 40,000 random paths over the characters
    that matter (dots, separators, controls, the reserved names' letters), plus the edges."""
    rng = random.Random(20261122)
    pieces = [
        ".",
        "..",
        "/",
        "\\",
        "\x00",
        "\x1f",
        "\x7f",
        "a",
        " ",
        "-",
        ".ftpd",
        ".gitkeep",
        ".gitkee",
        "ftpd",
        "x" * 120,
        "y" * 136,
    ]
    paths = [
        "",
        "/",
        "a",
        "a/b",
        "x" * 255,
        "x" * 256,
        "/".join("a" * 32),
        "/".join("a" * 33),
        "/".join(["d" * 255] * 16) + "/" + "e" * 15,
        "/".join(["d" * 255] * 17),
    ]
    paths += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 9))) for _ in range(40_000)]
    accepted = 0
    for path in paths:
        fast = bool(names._PLAIN_ASCII_PATH.fullmatch(path)) and len(path) <= names.MAX_PATH_CHARS
        slow = _slow_verdict(path)
        assert fast == (slow == path), (path, fast, slow)
        accepted += fast
    assert 1_000 < accepted < len(paths) - 1_000  # both verdicts were exercised


def test_a_path_longer_than_4096_characters_in_nfc_is_refused() -> None:
    """U+FB2C is one character and three in NFC: a path that fits the `name` field as sent
    could otherwise be stored under a name no reply can carry."""
    part = "a" * 102 + "\ufb2c" * 25
    name = "/".join([part] * 32)  # 4,095 characters as sent, 5,695 in NFC
    with pytest.raises(BadName, match="longer than 4096 characters in NFC"):
        check_path(name)
    fits = "/".join(["a" * 127] * 32)  # 4,095 characters, all ASCII
    assert check_path(fits) == fits
