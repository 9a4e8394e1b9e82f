"""One large transfer in a process of its own, so that its memory is its own.

    BENCH_ENDPOINT=JSON python -m bench.transfer_child put|get|putdir|putmany LOCAL NAME

The endpoint (with its password, and the digest an ftpd session verifies with) comes in the
environment, where `ps` does not show it.
The child logs in, prints {"rss_kib": ...} and waits for a line on stdin, while the bench
resets the server's peak RSS. Then it transfers, prints seconds, baseline and peak RSS, and
keeps the session open until a second line, so the server's peak is read while the session
still exists.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench.drivers import connect, perform
from bench.procs import peak_rss_kib, reset_peak_rss
from bench.servers import Endpoint

ENV = "BENCH_ENDPOINT"


def _emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def main(argv: list[str]) -> None:
    op, local, name = argv
    session = connect(Endpoint.from_json(json.loads(os.environ[ENV])))
    try:
        baseline = reset_peak_rss()
        _emit(rss_kib=baseline)
        sys.stdin.readline()
        started = time.perf_counter()
        checksum = perform(session, op, Path(local), name)
        seconds = time.perf_counter() - started
        _emit(seconds=seconds, checksum=checksum, rss_kib=baseline, peak_kib=peak_rss_kib())
        sys.stdin.readline()
    finally:
        session.close()


if __name__ == "__main__":
    main(sys.argv[1:])
