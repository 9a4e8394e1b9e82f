"""Bad local input, interrupted transfers and lying peers: typed errors, no tracebacks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ftpc import Client
from ftpc.cli import main as ftpc_main
from ftpd.cli import main as ftpd_main
from ftpd.storage import RootInUse, Storage
from shared.errors import LocalFileError, RemoteProtocolError, StaleListing, TransportError
from shared.protocol import Role, encode
from tests.conftest import ACCOUNTS, Daemon, fake_hello, fake_server


def src(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_longest_non_ascii_name_round_trips(client: Client, tmp_path: Path) -> None:
    name = "文" * 85  # 255 bytes of UTF-8: the longest name allowed
    client.put(src(tmp_path, "x", b"data"), name=name)
    got = client.get(name, tmp_path)
    assert got.path.name == name and got.path.read_bytes() == b"data"


def test_interrupted_upload_drops_the_connection(daemon: Daemon, tmp_path: Path) -> None:
    client = daemon.client()

    def interrupt(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.put(src(tmp_path, "big", os.urandom(5 << 20)), on_progress=interrupt)
    assert client.chan.sock.fileno() == -1  # out of frame, so closed rather than reused
    with pytest.raises(TransportError):
        client.list()
    client.close()
    with daemon.client() as c:
        assert c.list() == []


def test_non_regular_local_files_are_refused(client: Client, tmp_path: Path) -> None:
    with pytest.raises(LocalFileError, match="not a regular file"):
        client.put("/dev/zero")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(LocalFileError, match="not a regular file"):
        client.put(fifo)  # must not block waiting for a writer
    with pytest.raises(LocalFileError, match="cannot read"):
        client.put(tmp_path / "missing")
    assert client.list() == []


def test_stale_when_the_same_name_was_replaced(
    daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    client.put(src(tmp_path, "a", b"first"))
    client.list()
    with daemon.client() as other:
        other.put(src(tmp_path, "a", b"second version"), overwrite=True)
    with pytest.raises(StaleListing, match="replaced"):
        client.resolve(["1"])


def test_a_second_daemon_on_the_same_root_is_refused(daemon: Daemon) -> None:
    with pytest.raises(RootInUse, match="already serving"):
        Storage(daemon.root)


def test_broken_account_file_keeps_the_last_good_accounts(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    daemon.users.path.write_text('{"users": {')
    with daemon.client() as c:
        assert c.list() == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "account file unreadable" in errors[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_client_closes_after_a_reply_out_of_protocol() -> None:
    reply = encode("file", Role.SERVER, name="x", size=3, md5="0" * 32, mtime=0) + b"abc"
    with fake_server(fake_hello() + reply) as port:
        c = Client("127.0.0.1", port, timeout=5)
        with pytest.raises(RemoteProtocolError, match="expected listing"):
            c.list()
        with pytest.raises(TransportError):
            c.list()
        c.close()


def test_server_text_cannot_drive_the_terminal(tmp_path: Path) -> None:
    error = encode("error", Role.SERVER, code="not-found", message="gone\x1b]0;owned\x07")
    with fake_server(fake_hello() + error) as port:
        result = CliRunner().invoke(
            ftpc_main,
            ["--port", str(port), "rm", "--by-name", "x"],
            env={"FTPC_USER": "u", "FTPC_PASSWORD": "p", "FTPC_CACHE_DIR": str(tmp_path)},
        )
    assert result.exit_code == 4  # not found
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr


def test_cli_local_trouble_is_one_line(daemon: Daemon, tmp_path: Path) -> None:
    env = {
        "FTPC_PORT": str(daemon.port),
        "FTPC_USER": "alice",
        "FTPC_PASSWORD": ACCOUNTS["alice"][0],
        "FTPC_CACHE_DIR": str(tmp_path / "cache"),
    }
    runner = CliRunner()
    assert (
        runner.invoke(ftpc_main, ["put", str(src(tmp_path, "a.txt", b"a"))], env=env).exit_code == 0
    )
    (tmp_path / "out" / "a.txt").mkdir(parents=True)
    result = runner.invoke(
        ftpc_main, ["get", "a.txt", "-o", str(tmp_path / "out"), "--overwrite"], env=env
    )
    assert result.exit_code == 1 and "cannot write" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    result = runner.invoke(ftpc_main, ["get", "a.txt", "-o", "/proc/nope/x"], env=env)
    assert result.exit_code == 1 and "/proc/nope" in result.stderr
    assert isinstance(result.exception, SystemExit)
    result = runner.invoke(ftpc_main, ["ls"], env={**env, "FTPC_CACHE_DIR": "/proc/nope"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.txt"]  # no .part left


def test_ftpd_user_on_an_unwritable_path_is_one_line() -> None:
    result = CliRunner().invoke(
        ftpd_main,
        ["user", "add", "bob", "--password-stdin", "--users", "/proc/nope/users.json"],
        input="pw\n",
    )
    assert result.exit_code == 1 and "/proc/nope" in result.stderr
    assert isinstance(result.exception, SystemExit)
