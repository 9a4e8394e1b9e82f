"""Where the time goes in ftpd/ftpc transfers, on each side, with pyinstrument.

    python -m bench.profile [--size MIB] [--files N] [--top N] [--tree]

Client side: `ftpc.Client` profiled in this process, against `ftpd serve` in a child process.
Server side: an `FtpServer` in this process whose session threads are profiled, driven by a
client in a child process. So the two sides never share one GIL. Samples are wall-clock
(1 ms): time spent waiting for the peer shows up in socket calls.

Three jobs on each side: one large upload, its download, and many small uploads in one
session (the small-file scenario of `python -m bench`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer

from bench.data import clear_dir, make_file, make_small_files
from bench.drivers import connect, perform
from bench.plan import MB, MIB
from bench.procs import Processes
from bench.scenarios import child_transfer
from bench.servers import BENCH_ITERATIONS, Endpoint, Server, start_ftpd

INTERVAL = 0.001
NAME = "big.bin"


@dataclass(frozen=True)
class Job:
    """One client operation (see `bench.drivers.perform`) and how to express its rate."""

    op: str
    local: Path
    what: str
    amount: int
    """Bytes for a single transfer, files for `putdir` and `putmany`."""

    def rate(self, seconds: float) -> str:
        if self.op in ("putdir", "putmany"):
            return f"{self.amount / seconds:.0f} files/s"
        return f"{self.amount / MB / seconds:.0f} MB/s"


def report(title: str, job: Job, profiler: Profiler, seconds: float, top: int, tree: bool) -> None:
    """The job's rate, then the functions with the most self time, then the call tree.

    A server session's profile runs from accept to close, so it also holds the login and the
    wait for the client's next request; the rate comes from the job alone.
    """
    session = profiler.last_session
    assert session is not None
    print(
        f"\n== {title}, {job.what}: {job.rate(seconds)} ({seconds:.2f} s);"
        f" profile {session.duration:.2f} s wall, {session.cpu_time:.2f} s CPU"
    )
    flat = profiler.output(ConsoleRenderer(flat=True, time="percent_of_total"))
    rows = [line.strip() for line in flat.splitlines() if line.strip()[:1].isdigit()]
    for row in rows[:top]:
        print(f"  {row}")
    if tree:
        text = profiler.output(ConsoleRenderer())
        print(text[text.index("\n", text.index("Profile at")) :].rstrip())


def client_side(procs: Processes, work: Path, jobs: list[Job], top: int, tree: bool) -> None:
    server = start_ftpd(procs, work, clients=1)
    session = connect(server.endpoint)
    try:
        for job in jobs:
            profiler = Profiler(interval=INTERVAL)
            started = time.perf_counter()
            with profiler:
                perform(session, job.op, job.local, NAME)
            report("client", job, profiler, time.perf_counter() - started, top, tree)
            if job.op != "put":  # the download needs the upload; the others start afresh
                clear_dir(server.root)
    finally:
        session.close()
        procs.stop_all()


def server_side(procs: Processes, work: Path, jobs: list[Job], top: int, tree: bool) -> None:
    from ftpd.auth import UserStore
    from ftpd.server import FtpServer
    from ftpd.storage import Storage

    users = UserStore(work / "users-inproc.json")
    users.add("bench", "bench-password", "rwd", BENCH_ITERATIONS)
    server = FtpServer(("127.0.0.1", 0), Storage(work / "root-inproc"), users)
    profiles: list[Profiler] = []

    class ProfiledHandler(server.RequestHandlerClass):  # type: ignore[misc, name-defined]
        """The daemon's handler, with each session's thread profiled from accept to close."""

        def handle(self) -> None:
            profiler = Profiler(interval=INTERVAL)
            profiler.start()
            try:
                super().handle()
            finally:
                profiler.stop()
                profiles.append(profiler)

    server.RequestHandlerClass = ProfiledHandler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.address
        ep = Endpoint("ftpd", host, port, "bench", "bench-password")
        target = Server("ftpd", ep, work / "root-inproc", os.getpid())
        for job in jobs:
            local = work / "down-inproc.bin" if job.op == "get" else job.local
            seconds = child_transfer(procs, target, job.op, local, NAME)["seconds"]
            deadline = time.monotonic() + 30
            while not profiles and time.monotonic() < deadline:
                time.sleep(0.05)
            report("server", job, profiles.pop(), seconds, top, tree)
            if job.op != "put":
                clear_dir(target.root)
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024, help="large file in MiB (default 1024)")
    p.add_argument("--files", type=int, default=2000, help="small files of 4 KiB (0: none)")
    p.add_argument("--top", type=int, default=12, help="functions listed per profile")
    p.add_argument("--tree", action="store_true", help="also print each call tree")
    p.add_argument("--tmp", type=Path, help="parent of the temp dir")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="ftpd-profile-", dir=args.tmp))
    (work / "logs").mkdir()
    procs = Processes(work / "logs")
    try:
        size = args.size * MIB
        make_file(work / "big.bin", size)
        label = f"{args.size} MiB" if args.size % 1024 else f"{args.size // 1024} GiB"
        jobs = [
            Job("put", work / "big.bin", f"upload {label}", size),
            Job("get", work / "down.bin", f"download {label}", size),
        ]
        if args.files:
            make_small_files(work / "small", args.files, 4096)
            many = f"{args.files} x 4 KiB uploads"
            jobs.append(Job("putdir", work / "small", many + ", one put after another", args.files))
            jobs.append(Job("putmany", work / "small", many + ", put_many", args.files))
        client_side(procs, work, jobs, args.top, args.tree)
        server_side(procs, work, jobs, args.top, args.tree)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
