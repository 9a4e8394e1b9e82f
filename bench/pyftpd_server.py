"""pyftpdlib as a peer: one user, one root, port 0; prints `listening on HOST:PORT`.

    BENCH_FTP_PASSWORD=P python -m bench.pyftpd_server --root DIR --user U

The handler keeps pyftpdlib's defaults (async single process, sendfile for downloads),
which is what someone who picks pyftpdlib gets.
"""

from __future__ import annotations

import argparse
import os

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

PASSWORD_ENV = "BENCH_FTP_PASSWORD"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pyftpd_server")
    parser.add_argument("--root", required=True)
    parser.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, os.environ[PASSWORD_ENV], args.root, perm="elradfmwMT")
    handler = type("BenchHandler", (FTPHandler,), {"authorizer": authorizer})
    server = FTPServer(("127.0.0.1", 0), handler)
    host, port = server.address[:2]
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
