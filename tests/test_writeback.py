"""Write-behind: background flushes while writing, and the final fsync still decides."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from shared import writeback
from shared.writeback import WriteBehind


def test_flushes_in_the_background_then_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync
    monkeypatch.setattr(
        writeback.os, "fdatasync", lambda fd: (calls.append("data"), real_fdatasync(fd))
    )
    monkeypatch.setattr(writeback.os, "fsync", lambda fd: (calls.append("full"), real_fsync(fd)))
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        behind = WriteBehind(fd, every=1 << 20)
        for _ in range(8):
            os.write(fd, b"x" * (1 << 19))
            behind.wrote(1 << 19)
            behind.wait()  # make the test deterministic: each flush ends before the next write
        behind.finish()
    finally:
        os.close(fd)
    assert calls == ["data"] * 4 + ["full"]


def test_a_failed_background_flush_fails_the_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(writeback.os, "fdatasync", broken)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        behind = WriteBehind(fd, every=10)
        behind.wrote(10)
        with pytest.raises(OSError, match="Input/output error"):
            behind.finish()
    finally:
        os.close(fd)
