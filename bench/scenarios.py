"""The scenarios, each measured the same way on every server.

Clocks start after login (except for the `ftpc` command and the login scenario) and stop when
the last byte is acknowledged: for ftpd that includes the digest check (md5, or xxh3-128 in the
rows that say so) and the fsync-and-rename of every upload and download; FTP servers and ftplib
do neither.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.data import clear_dir, md5_file
from bench.drivers import Session, connect
from bench.plan import FAST_DIGEST, MB, Plan
from bench.procs import (
    Processes,
    peak_rss_kib,
    python_module,
    read_json_line,
    reset_peak_rss,
    send_line,
)
from bench.servers import Endpoint, Server, server_pids
from bench.stats import Results
from bench.transfer_child import ENV as ENDPOINT_ENV

LABELS = {
    "ftpd": "ftpd/ftpc (ftpc.Client)",
    "pyftpdlib": "pyftpdlib (ftplib client)",
    "vsftpd": "vsftpd (ftplib client)",
}
FAST_LABEL = f"ftpd/ftpc, {FAST_DIGEST} digest (ftpc.Client)"


@dataclass(frozen=True)
class Data:
    """The local files every scenario reads, with their md5 (computed once, when written).

    `big_fast` is the big file's FAST_DIGEST checksum ("" when that digest is not measured).
    """

    big: Path
    big_md5: str
    big_fast: str
    medium: Path
    medium_md5: str
    small: list[Path]
    listing: list[Path]
    downloads: Path


# --- 1 GiB up and down, with memory -------------------------------------------------------


def big_transfer(
    results: Results, procs: Processes, server: Server, data: Data, plan: Plan, run: int
) -> None:
    """Upload then download the big file, each in a fresh child process.

    For an FTP peer, also time what its user must add to get ftpd's guarantee: md5 of the
    file on both sides after the transfer.
    """
    name = f"big-{run}.bin"
    stored, fetched = server.root / name, data.downloads / name
    size, impl = plan.big_size, server.name
    # (direction, client call, the client's local file, the source, the copy)
    legs = (("up", "put", data.big, data.big, stored), ("down", "get", fetched, stored, fetched))
    for op, call, local, src, copy in legs:
        out = child_transfer(procs, server, call, local, name)
        if out["checksum"] is not None and out["checksum"] != data.big_md5:
            raise RuntimeError(f"{impl} {op}: md5 {out['checksum']}, expected {data.big_md5}")
        results.figure(f"{impl}.big.{op}", f"big.{op}", impl, LABELS[impl], "MB/s").add(
            size / MB / out["seconds"]
        )
        if server.endpoint.kind != "ftpd":
            hashing = _timed_md5(src, data.big_md5) + _timed_md5(copy, data.big_md5)
            label = f"{impl} + md5 of both copies"
            results.figure(f"{impl}.big.{op}.verified", f"big.{op}", impl, label, "MB/s").add(
                size / MB / (out["seconds"] + hashing)
            )
        for side in ("server", "client"):
            base, peak = out[f"{side}_rss_kib"], out[f"{side}_peak_kib"]
            key, label = f"{impl}.rss.{side}.{op}", f"{impl} {side}, {op}load"
            results.figure(key + ".peak", "memory", impl, label, "MiB", "lower").add(peak / 1024)
            # VmHWM is sampled lazily and may read a hair under the baseline: that is zero.
            results.figure(key + ".added", "memory", impl, label, "MiB", "lower").add(
                max(0, peak - base) / 1024
            )
    clear_dir(server.root)
    clear_dir(data.downloads)


def big_fast_digest(
    results: Results, procs: Processes, server: Server, data: Data, plan: Plan, run: int
) -> None:
    """ftpd's big upload then download again, verified with FAST_DIGEST instead of md5.

    Measured like the md5 rows (a fresh child process per transfer, login off the clock);
    the memory figures come from the md5 rows only.
    """
    name = f"big-{FAST_DIGEST}-{run}.bin"
    endpoint = replace(server.endpoint, digest=FAST_DIGEST)
    for op, call, local in (("up", "put", data.big), ("down", "get", data.downloads / name)):
        out = child_transfer(procs, server, call, local, name, endpoint)
        if out["checksum"] != data.big_fast:
            raise RuntimeError(
                f"{server.name} {op}: {FAST_DIGEST} {out['checksum']}, expected {data.big_fast}"
            )
        key = f"{server.name}.big.{op}.{FAST_DIGEST}"
        results.figure(key, f"big.{op}", server.name, FAST_LABEL, "MB/s").add(
            plan.big_size / MB / out["seconds"]
        )
    clear_dir(server.root)
    clear_dir(data.downloads)


def _timed_md5(path: Path, expected: str) -> float:
    started = time.perf_counter()
    got = md5_file(path)
    seconds = time.perf_counter() - started
    if got != expected:
        raise RuntimeError(f"{path}: md5 {got}, expected {expected}")
    return seconds


def child_transfer(
    procs: Processes,
    server: Server,
    op: str,
    local: Path,
    name: str,
    endpoint: Endpoint | None = None,
) -> dict[str, Any]:
    """Run one transfer in `bench.transfer_child`; add the server's baseline and peak RSS.

    The child connects to `endpoint`, by default the server's own (md5 for ftpd).
    """
    argv = python_module("bench.transfer_child", op, str(local), name)
    endpoint = endpoint or server.endpoint
    env = {**os.environ, ENDPOINT_ENV: json.dumps(endpoint.to_json())}
    proc = procs.start(argv, "transfer.log", pipes=True, env=env)
    try:
        client_ready = read_json_line(proc, 120)
        pids = server_pids(server.pid)  # vsftpd: the listener and the session's processes
        baseline = _sum_kib(reset_peak_rss, pids)
        send_line(proc, "go")
        out = read_json_line(proc, 1800)
        peak = _sum_kib(peak_rss_kib, pids)
        send_line(proc, "bye")
        proc.wait(60)
    finally:
        procs.stop(proc)
    if proc.returncode:
        raise RuntimeError(f"{server.name} {op}: child failed; {procs.log_tail('transfer.log')}")
    return {
        "seconds": out["seconds"],
        "checksum": out["checksum"],
        "client_rss_kib": client_ready["rss_kib"],
        "client_peak_kib": out["peak_kib"],
        "server_rss_kib": baseline,
        "server_peak_kib": peak,
    }


def _sum_kib(read: Callable[[int], int], pids: list[int]) -> int:
    """Sum a memory figure over processes, skipping any that has exited meanwhile."""
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += read(pid)
    return total


def cli_upload(results: Results, procs: Processes, server: Server, data: Data) -> None:
    """The same upload through the `ftpc put` command: interpreter start, imports and login."""
    ep = server.endpoint
    exe = Path(sys.executable).with_name("ftpc")
    command = [str(exe)] if exe.exists() else python_module("ftpc")
    env = dict(os.environ, FTPC_PASSWORD=ep.password, FTPC_CACHE_DIR=str(procs.logs / "cache"))
    argv = [*command, "--host", ep.host, "--port", str(ep.port), "--user", ep.user]
    argv += ["--quiet", "--timeout", "600", "put", str(data.big)]
    started = time.perf_counter()
    proc = procs.start(argv, "ftpc-cli.log", env=env)
    try:
        status = proc.wait(1800)
    finally:
        procs.stop(proc)
    seconds = time.perf_counter() - started
    if status:
        raise RuntimeError(f"ftpc put exited with {status}: {procs.log_tail('ftpc-cli.log')}")
    size = data.big.stat().st_size
    results.figure("ftpd.cli.up", "big.up", "ftpd", "ftpd/ftpc (`ftpc put` command)", "MB/s").add(
        size / MB / seconds
    )
    clear_dir(server.root)


# --- many small files -----------------------------------------------------------------------


def small_files(results: Results, server: Server, data: Data, run: int) -> None:
    """Upload every small file over one logged-in session, into a new folder.

    ftpd is measured twice: one `Client.put` after another (each waits a round trip for
    `continue`), and `Client.put_many`, which pipelines them (what `ftpc put FILES` uses).
    The target is judged on the second. FTP has one way: a STOR per file.

    Nothing is deleted between runs (`fill_for_listing` clears the roots later): ext4
    without a journal skips every inode freed in the last minute or so when it allocates
    one, so a mass delete would slow the creates of whichever server comes next.
    """
    variants = [("", LABELS[server.name], False)]
    if server.endpoint.kind == "ftpd":
        variants = [
            (".serial", "ftpd/ftpc (Client.put, one by one)", False),
            ("", "ftpd/ftpc (Client.put_many, pipelined)", True),
        ]
    for suffix, label, pipelined in variants:
        folder = f"small-{run}{suffix}"
        session = connect(server.endpoint)
        try:
            session.mkdir(folder)
            started = time.perf_counter()
            if pipelined:
                session.put_many(data.small, folder)
            else:
                for path in data.small:
                    session.put(path, f"{folder}/{path.name}")
            seconds = time.perf_counter() - started
        finally:
            session.close()
        fig = results.figure(f"{server.name}.small{suffix}", "small", server.name, label, "files/s")
        fig.add(len(data.small) / seconds)


# --- concurrent clients ---------------------------------------------------------------------


def concurrent(results: Results, server: Server, data: Data, plan: Plan, run: int) -> None:
    """`plan.clients` threads, each logged in first, then all upload and download at once."""
    n = plan.clients
    barrier = threading.Barrier(n + 1)
    errors: list[BaseException] = []
    md5s: list[str | None] = []

    def client(i: int) -> None:
        session: Session | None = None
        try:
            session = connect(server.endpoint)
            barrier.wait()
            name = f"c{run}-{i:03d}.bin"
            md5s.append(session.put(data.medium, name))
            md5s.append(session.get(name, data.downloads / name))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            if session is not None:
                session.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
        started = time.perf_counter()
    except threading.BrokenBarrierError:
        started = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(
            f"{server.name}: {len(errors)} of {n} clients failed, first with {errors[0]!r}"
        ) from errors[0]
    downloads = list(data.downloads.iterdir())
    if server.endpoint.kind == "ftpd":  # md5s that ftpc.Client verified, up and down
        wrong = sum(m != data.medium_md5 for m in md5s)
    else:  # FTP verifies nothing: hash every download, off the clock
        wrong = sum(md5_file(p) != data.medium_md5 for p in downloads)
    if wrong or len(md5s) != 2 * n or len(downloads) != n:
        raise RuntimeError(f"{server.name}: {wrong} of {n} clients got a corrupted file")
    clear_dir(server.root)
    clear_dir(data.downloads)
    results.figure(
        f"{server.name}.concurrent", "concurrent", server.name, LABELS[server.name], "MB/s"
    ).add(2 * n * plan.client_size / MB / seconds)


# --- login and list -------------------------------------------------------------------------


def fill_for_listing(server: Server, data: Data) -> None:
    """Put the listing files in an otherwise empty root (the small files' folders go) and
    list once, so ftpd's md5 cache is warm."""
    clear_dir(server.root)
    for path in data.listing:
        (server.root / path.name).write_bytes(path.read_bytes())
    session = connect(server.endpoint)
    try:
        session.list()
    finally:
        session.close()


def login_list(results: Results, server: Server, data: Data, plan: Plan) -> None:
    """Connect, log in and list, `plan.login_samples` times; every sample is a figure sample."""
    cases = [(server.endpoint, plan.login_samples, "", LABELS[server.name])]
    if server.slow_login is not None:
        label = "ftpd/ftpc, default 600,000 PBKDF2 iterations"
        cases.append((server.slow_login, plan.slow_login_samples, ".600k", label))
    for ep, samples, suffix, label in cases:
        fig = results.figure(
            f"{server.name}.login{suffix}", "login", server.name, label, "ms", "lower"
        )
        for _ in range(samples):
            started = time.perf_counter()
            session = connect(ep)
            count = session.list()
            fig.add((time.perf_counter() - started) * 1000)
            session.close()
            if count != len(data.listing):
                raise RuntimeError(f"{server.name} listed {count} of {len(data.listing)} files")
