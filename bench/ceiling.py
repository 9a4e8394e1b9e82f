"""The ceiling: what moving and hashing the bytes costs with no protocol at all.

Three figures: md5 alone on one core (the file read from page cache), raw TCP between two
processes, and raw TCP with md5 on both ends, which is the bar ftpd/ftpc is held to. And for
small files, the disk's own floor: what publishing a file durably costs with no network.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.data import md5_file
from bench.plan import MB
from bench.procs import Processes, python_module, read_json_line
from bench.stats import Results

SECTION = "ceiling"
TCP_MD5 = "ceiling.tcp_md5"


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


def _tcp(procs: Processes, big: Path, size: int, md5: str, hashed: bool) -> float:
    """Send `big` from one child to another; the receiver's clock runs from accept to EOF."""
    flag = ["--md5"] if hashed else []
    receiver = procs.start(python_module("bench.tcp_peer", "recv", *flag), "tcp.log", pipes=True)
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
