"""Write-behind: writeback started while writing, and the final fsync still decides."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from pathlib import Path

import pytest

from shared import writeback
from shared.writeback import WriteBehind, start_writeback


def test_starts_writeback_every_few_mib_then_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_start, real_fsync = writeback.start_writeback, os.fsync
    monkeypatch.setattr(
        writeback, "start_writeback", lambda fd: (calls.append("start"), real_start(fd))
    )
    monkeypatch.setattr(writeback.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        behind = WriteBehind(fd, every=1 << 20)
        for _ in range(9):
            os.write(fd, b"x" * (1 << 19))
            behind.wrote(1 << 19)
        behind.finish()
    finally:
        os.close(fd)
    assert calls == ["start"] * 4 + ["fsync"]
    assert (tmp_path / "f").stat().st_size == 9 << 19


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_the_kernel_call_is_found_and_works_on_a_real_file(tmp_path: Path) -> None:
    assert writeback._SYNC_FILE_RANGE is not None
    with open(tmp_path / "f", "wb") as f:
        f.write(b"y" * (3 << 20))
        f.flush()
        start_writeback(f.fileno())  # no error: writeback of the dirty pages has begun
        os.fsync(f.fileno())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_a_refused_writeback_raises_the_kernels_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        with pytest.raises(OSError) as caught:
            start_writeback(write_end)  # a pipe has no pages to write back
    finally:
        os.close(write_end)
    assert caught.value.errno == errno.ESPIPE


def test_an_error_while_writing_behind_surfaces_from_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int, offset: int, nbytes: int, flags: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", broken)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        behind = WriteBehind(fd, every=10)
        behind.wrote(9)
        with pytest.raises(OSError, match="Input/output error"):
            behind.wrote(1)
    finally:
        os.close(fd)
