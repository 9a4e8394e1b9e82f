"""Upload a folder over several connections with ftpc.Client, then verify every file's md5.

    FTPC_HOST=files.example.org FTPC_USER=ci FTPC_PASSWORD=... \\
        python upload_folder.py build/site www/site --threads 4

The files of LOCAL land under REMOTE with the same relative paths; links are left out.
A Client is not thread-safe, so each thread logs in with a Client of its own. Exit
code 0 when the server holds exactly the local files, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import sys
import threading
from pathlib import Path

from ftpc import Client
from shared.errors import FtpError


def connect() -> Client:
    return Client(
        os.environ.get("FTPC_HOST", "127.0.0.1"),
        int(os.environ.get("FTPC_PORT", "8021")),
        os.environ["FTPC_USER"],
        os.environ["FTPC_PASSWORD"],
    )


def local_files(top: Path) -> dict[str, Path]:
    """Relative path ("a/b.txt") -> local file, for every regular file below `top`."""
    found = {}
    for folder, _folders, files in os.walk(top):  # does not descend into linked folders
        for name in files:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                found[path.relative_to(top).as_posix()] = path
    return found


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def upload(files: dict[str, Path], remote: str, threads: int) -> list[str]:
    """Put every file under `remote`, over `threads` connections; returns the failures."""
    with connect() as client:  # folders first, so that no two threads race to make one
        client.mkdir(remote, parents=True)
        for folder in sorted({rel.rpartition("/")[0] for rel in files} - {""}):
            client.mkdir(f"{remote}/{folder}", parents=True)

    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for rel in sorted(files):
        todo.put(rel)
    failures: list[str] = []

    def work() -> None:
        try:
            client = connect()
        except FtpError as exc:
            failures.append(f"cannot log in: {exc}")
            return
        with client:
            while True:
                try:
                    rel = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    # The same content already there counts as done; other content fails.
                    client.put(files[rel], f"{remote}/{rel}")
                except FtpError as exc:
                    failures.append(f"{rel}: {exc}")  # list.append is thread-safe
                    if not client.connected:
                        return  # this connection is gone; the other threads go on

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return failures


def verify(files: dict[str, Path], remote: str) -> list[str]:
    """Compare the remote tree with the local files, by md5; returns the differences."""
    with connect() as client:
        stored = {
            entry.path[len(remote) + 1 :]: entry.md5
            for entry in client.walk(remote)
            if not entry.is_folder
        }
    problems = [f"missing on the server: {rel}" for rel in sorted(files.keys() - stored)]
    problems += [f"only on the server: {rel}" for rel in sorted(stored.keys() - files)]
    problems += [
        f"different content: {rel}"
        for rel in sorted(files.keys() & stored.keys())
        if md5_of(files[rel]) != stored[rel]
    ]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("local", type=Path, help="the folder to upload")
    parser.add_argument("remote", help="the folder on the server, e.g. www/site")
    parser.add_argument("--threads", type=int, default=4, help="connections at once")
    args = parser.parse_args()

    files = local_files(args.local)
    failures = upload(files, args.remote, max(1, args.threads))
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    problems = verify(files, args.remote)
    for problem in problems:
        print(problem, file=sys.stderr)
    if failures or problems:
        return 1
    print(f"{len(files)} files under {args.remote}, every md5 matches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
