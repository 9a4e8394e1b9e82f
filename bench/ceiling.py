"""The ceiling: what moving and hashing the bytes costs with no protocol at all.

Three figures: md5 alone on one core (the file read from page cache), raw TCP between two
processes, and raw TCP with md5 on both ends, which is the bar ftpd/ftpc is held to. And
the disk's own limits: how fast a large file can be written durably, with no network and
received over raw TCP, and for small files what publishing each one durably costs.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

from bench.data import md5_file
from bench.plan import MB
from bench.procs import Processes, python_module, read_json_line
from bench.stats import Results
from shared.writeback import DIRECT_SLOT

SECTION = "ceiling"
TCP_MD5 = "ceiling.tcp_md5"
DISK_BLOCK = DIRECT_SLOT
"""Bytes per O_DIRECT write: as many as ftpd's direct writer writes at a time."""


def run_once(results: Results, procs: Processes, big: Path, size: int, md5: str) -> None:
    """One sample of each ceiling figure, in MB/s."""
    started = time.perf_counter()
    if md5_file(big) != md5:
        raise RuntimeError(f"{big} changed under the bench")
    seconds = time.perf_counter() - started
    results.figure(
        "ceiling.md5", SECTION, "ceiling", "md5 alone, one core (page cache)", "MB/s"
    ).add(size / MB / seconds)
    results.figure("ceiling.tcp", SECTION, "ceiling", "raw TCP, 2 processes", "MB/s").add(
        _tcp(procs, big, size, md5, hashed=False)
    )
    results.figure(TCP_MD5, SECTION, "ceiling", "raw TCP + md5 both ends", "MB/s").add(
        _tcp(procs, big, size, md5, hashed=True)
    )


def _tcp(
    procs: Processes, big: Path, size: int, md5: str, hashed: bool, into: Path | None = None
) -> float:
    """Send `big` from one child to another; the receiver's clock runs from accept to EOF
    (to the fsync of `into`, if it writes the bytes there)."""
    flag = ["--md5"] if hashed else []
    store = [] if into is None else ["--into", str(into)]
    receiver = procs.start(
        python_module("bench.tcp_peer", "recv", *flag, *store), "tcp.log", pipes=True
    )
    sender = None
    try:
        port = read_json_line(receiver, 30)["port"]
        sender = procs.start(
            python_module("bench.tcp_peer", "send", str(port), str(big), *flag),
            "tcp.log",
            pipes=True,
        )
        sent = read_json_line(sender, 600)
        got = read_json_line(receiver, 60)
    finally:
        if sender is not None:
            procs.stop(sender)
        procs.stop(receiver)
    if sent["bytes"] != size or got["bytes"] != size:
        raise RuntimeError(f"raw TCP moved {sent['bytes']}/{got['bytes']} of {size} bytes")
    if hashed and not sent["md5"] == got["md5"] == md5:
        raise RuntimeError("raw TCP: the md5 on the two ends differ")
    if into is not None and got["stored"] != size:
        raise RuntimeError(f"raw TCP stored {got['stored']} of {size} bytes in {into}")
    return float(size / MB / got["seconds"])


def durable_files_once(results: Results, folder: Path, count: int, size: int) -> None:
    """Files/s for what ftpd does per upload on disk: write, fsync, link, fsync the directory.

    On a disk where fsync is slow this, not the network, bounds any server that makes each
    upload durable before saying so. Each run writes a new folder and deletes nothing (see
    `scenarios.small_files`); the work directory goes at the end.
    """
    folder.mkdir(parents=True)
    block = os.urandom(size)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        started = time.perf_counter()
        for i in range(count):
            part, final = folder / f"{i:05d}.part", folder / f"{i:05d}.bin"
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, block)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(part, final)
            os.unlink(part)
            os.fsync(dir_fd)
        seconds = time.perf_counter() - started
    finally:
        os.close(dir_fd)
    label = "disk floor: write, fsync, link, fsync dir"
    results.figure("ceiling.durable", "small", "ceiling", label, "files/s").add(count / seconds)


def durable_write_once(results: Results, path: Path, size: int, size_label: str) -> None:
    """MB/s for writing `size` bytes (`size_label` in the table) to a new file on the
    bench's disk and fsyncing it.

    ftpd makes every upload, and ftpc every download, durable before it says so, so on a
    disk slower than the network this bounds them; FTP servers and ftplib do not wait for
    it. O_DIRECT from one aligned buffer keeps the CPU out of the figure; each block is
    stamped with its number, so the disk never sees two alike. Shown in the upload and the
    download section: one measurement, two places where it is the limit.
    """
    block = mmap.mmap(-1, DISK_BLOCK)
    block.write(os.urandom(DISK_BLOCK))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags | getattr(os, "O_DIRECT", 0), 0o644)
    except OSError:  # a file system without O_DIRECT (tmpfs): through the page cache
        fd = os.open(path, flags, 0o644)
    try:
        started = time.perf_counter()
        for n, offset in enumerate(range(0, size, DISK_BLOCK)):
            block[:8] = n.to_bytes(8, "little")
            os.pwrite(fd, block, offset)
        os.ftruncate(fd, size)
        os.fsync(fd)
        seconds = time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink()
        block.close()
    label = f"disk: write {size_label} and fsync, no network"
    for op in ("up", "down"):
        results.figure(f"ceiling.disk.{op}", f"big.{op}", "ceiling", label, "MB/s").add(
            size / MB / seconds
        )


def durable_receive_once(
    results: Results, procs: Processes, big: Path, path: Path, size: int, size_label: str
) -> None:
    """MB/s for receiving `big` over raw TCP into a new file at `path`, made durable the way
    ftpd and ftpc make theirs, with no hash and no protocol.

    The page-cache peers are measured against this with no fsync at all; the gap between
    this row and their figures is what durability costs on this disk, whatever the digest.
    """
    try:
        mbps = _tcp(procs, big, size, "", hashed=False, into=path)
    finally:
        path.unlink(missing_ok=True)
    label = f"raw TCP into a file + fsync ({size_label}), no hash"
    for op in ("up", "down"):
        results.figure(f"ceiling.tcp_disk.{op}", f"big.{op}", "ceiling", label, "MB/s").add(mbps)
