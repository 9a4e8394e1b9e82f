"""One end of the ceiling measurement: a plain TCP socket, optionally hashing with md5.

    python -m bench.tcp_peer recv [--md5] [--into FILE] prints {"port": P}, then its result
    python -m bench.tcp_peer send PORT FILE [--md5]     prints its result

The sender hashes what it sends, the receiver what it receives; both use one reused 1 MiB
buffer, like ftpd and ftpc do. Nothing is written to disk: this is the ceiling for any
protocol that must move and hash the bytes. With `--into`, the receiver writes the bytes to
a new file the way ftpd and ftpc do (through the page cache, writeback started every 8 MiB,
fsync at the end, which its clock includes): what any server that makes a file durable
before saying so can reach, checking nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import time

from shared.writeback import WriteBehind

BUF = 1 << 20


def _emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def receive(md5: bool, into: str | None) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        _emit(port=server.getsockname()[1])
        conn, _ = server.accept()
    fd = None if into is None else os.open(into, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    behind = None if fd is None else WriteBehind(fd)
    started = time.perf_counter()
    digest = hashlib.md5()
    buf = bytearray(BUF)
    view = memoryview(buf)
    total = 0
    try:
        with conn:
            while n := conn.recv_into(buf, BUF):
                if md5:
                    digest.update(view[:n])
                if behind is not None:
                    _write_all(behind.fd, view[:n])
                    behind.wrote(n)
                total += n
        if behind is not None:
            behind.finish()
        seconds = time.perf_counter() - started
        stored = None if fd is None else os.fstat(fd).st_size
    finally:
        if fd is not None:
            os.close(fd)
    _emit(bytes=total, seconds=seconds, md5=digest.hexdigest(), stored=stored)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def send(port: int, path: str, md5: bool) -> None:
    digest = hashlib.md5()
    buf = bytearray(BUF)
    view = memoryview(buf)
    total = 0
    with socket.create_connection(("127.0.0.1", port)) as conn, open(path, "rb", buffering=0) as f:
        started = time.perf_counter()
        while n := f.readinto(buf):
            chunk = view[:n]
            if md5:
                digest.update(chunk)
            conn.sendall(chunk)
            total += n
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # returns once the receiver has read everything and closed
    _emit(bytes=total, seconds=time.perf_counter() - started, md5=digest.hexdigest())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tcp_peer")
    sub = parser.add_subparsers(dest="role", required=True)
    recv = sub.add_parser("recv")
    recv.add_argument("--md5", action="store_true")
    recv.add_argument("--into", metavar="FILE", help="write the bytes to this new file, durably")
    snd = sub.add_parser("send")
    snd.add_argument("port", type=int)
    snd.add_argument("file")
    snd.add_argument("--md5", action="store_true")
    args = parser.parse_args(argv)
    if args.role == "recv":
        receive(args.md5, args.into)
    else:
        send(args.port, args.file, args.md5)


if __name__ == "__main__":
    sys.exit(main())
