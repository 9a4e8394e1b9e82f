"""One benchmark run: write the data, start the servers, run each scenario `plan.runs` times.

Runs are interleaved across servers (run 1 on every server, then run 2, ...), so a slow
moment of the machine does not land on one server's figures only.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import ceiling, scenarios
from bench.data import file_digest, make_file, make_small_files
from bench.plan import FAST_DIGEST, Plan
from bench.procs import Processes
from bench.scenarios import Data
from bench.servers import Server, start_ftpd, start_pyftpdlib, start_vsftpd, vsftpd_unusable
from bench.stats import Results
from shared import digests


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def settle() -> None:
    """Write back every dirty page before a measurement.

    FTP servers do not fsync, and ext4 may make the next fsync wait for their data (and for
    the deletes of the previous run); ftpd, which fsyncs every upload, would pay for them.
    """
    os.sync()


def fast_digest_missing(plan: Plan) -> str | None:
    """Why the FAST_DIGEST rows of the `big` scenario cannot be measured, or None."""
    if "big" in plan.scenarios and FAST_DIGEST not in digests.available():
        return f"{FAST_DIGEST} not installed (pip install xxhash); its ftpd rows are skipped"
    return None


def prepare(work: Path, plan: Plan) -> Data:
    """Write the test files once; they stay in page cache for the whole run."""
    say(f"writing test files in {work} ...")
    data_dir = work / "data"
    data_dir.mkdir()
    downloads = work / "downloads"
    downloads.mkdir()
    needs_big = {"ceiling", "big"} & set(plan.scenarios)
    big, medium = data_dir / "big.bin", data_dir / "medium.bin"
    big_md5 = make_file(big, plan.big_size) if needs_big else ""
    measure_fast = "big" in plan.scenarios and fast_digest_missing(plan) is None
    big_fast = file_digest(big, FAST_DIGEST) if measure_fast else ""
    medium_md5 = make_file(medium, plan.client_size) if "concurrent" in plan.scenarios else ""
    small = (
        make_small_files(data_dir / "small", plan.small_count, plan.small_size)
        if "small" in plan.scenarios
        else []
    )
    listing = (
        make_small_files(data_dir / "listing", plan.list_files, 1024)
        if "login" in plan.scenarios
        else []
    )
    return Data(big, big_md5, big_fast, medium, medium_md5, small, listing, downloads)


def start_servers(
    procs: Processes, work: Path, plan: Plan, results: Results, vsftpd: bool
) -> list[Server]:
    servers = [start_ftpd(procs, work, plan.clients), start_pyftpdlib(procs, work)]
    reason = vsftpd_unusable() if vsftpd else "vsftpd skipped (--no-vsftpd)"
    if reason is None:
        try:
            servers.append(start_vsftpd(procs, work))
        except (OSError, RuntimeError) as exc:
            reason = f"vsftpd not usable: {exc}"
    if reason is not None:
        results.note(reason)
        say(f"note: {reason}")
    for s in servers:
        say(f"{s.name} listening on {s.endpoint.host}:{s.endpoint.port} (pid {s.pid})")
    return servers


Step = tuple[str, Callable[[int], None]]
"""A name for the progress line, and what to do in run number i."""


def measure(plan: Plan, work: Path, procs: Processes, results: Results, vsftpd: bool) -> None:
    """Every scenario of `plan`, into `results`."""
    data = prepare(work, plan)
    servers = start_servers(procs, work, plan, results, vsftpd)
    if (missing := fast_digest_missing(plan)) is not None:
        results.note(missing)
        say(f"note: {missing}")

    def each_run(scenario: str, steps: list[Step]) -> None:
        """Every step once per run, in the same order each time, each on a settled disk."""
        if scenario not in plan.scenarios:
            return
        for i in range(plan.runs):
            for name, step in steps:
                settle()
                started = time.monotonic()
                step(i)
                took = time.monotonic() - started
                say(f"[{scenario}] run {i + 1}/{plan.runs} {name}: {took:.1f} s")

    def per_server(step: Callable[[int, Server], None]) -> list[Step]:
        return [(s.name, functools.partial(step, server=s)) for s in servers]

    def ceiling_step(i: int) -> None:
        ceiling.run_once(results, procs, data.big, plan.big_size, data.big_md5)

    def disk_floor(i: int) -> None:
        ceiling.durable_files_once(
            results, work / "durable" / str(i), plan.small_count, plan.small_size
        )

    def disk_write(i: int) -> None:
        ceiling.durable_write_once(results, work / f"disk-{i}.bin", plan.big_size, plan.big_label)

    def tcp_disk(i: int) -> None:
        ceiling.durable_receive_once(
            results, procs, data.big, work / f"tcp-disk-{i}.bin", plan.big_size, plan.big_label
        )

    def big(i: int, server: Server) -> None:
        scenarios.big_transfer(results, procs, server, data, plan, i)
        if server.endpoint.kind == "ftpd":
            scenarios.cli_upload(results, procs, server, data)

    def big_fast(i: int, server: Server) -> None:
        scenarios.big_fast_digest(results, procs, server, data, plan, i)

    def big_steps() -> list[Step]:
        """Each server's big transfers; ftpd's are followed by the same with FAST_DIGEST."""
        steps: list[Step] = [("disk", disk_write), ("tcp into disk", tcp_disk)]
        for s in servers:
            steps.append((s.name, functools.partial(big, server=s)))
            if s.endpoint.kind == "ftpd" and data.big_fast:
                steps.append((f"{s.name} {FAST_DIGEST}", functools.partial(big_fast, server=s)))
        return steps

    def small(i: int, server: Server) -> None:
        scenarios.small_files(results, server, data, i)

    def concurrent(i: int, server: Server) -> None:
        scenarios.concurrent(results, server, data, plan, i)

    def login(i: int, server: Server) -> None:
        scenarios.login_list(results, server, data, plan)

    each_run("ceiling", [("ceiling", ceiling_step)])
    each_run("big", big_steps())
    each_run("small", [("disk floor", disk_floor), *per_server(small)])
    each_run("concurrent", per_server(concurrent))
    if "login" in plan.scenarios:
        for server in servers:
            scenarios.fill_for_listing(server, data)
        each_run("login", per_server(login))
