"""The command lines: CliRunner against a live daemon, and `ftpd serve` as a real process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ftpc.cli import main as ftpc_main
from ftpd.auth import UserStore
from ftpd.cli import main as ftpd_main
from ftpd.storage import Storage
from tests.conftest import ACCOUNTS, Daemon


@pytest.fixture
def run(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Invoke ftpc against the daemon as alice, with its listing cache under tmp_path."""
    monkeypatch.setenv("FTPC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    env = {
        "FTPC_HOST": daemon.host,
        "FTPC_PORT": str(daemon.port),
        "FTPC_USER": "alice",
        "FTPC_PASSWORD": ACCOUNTS["alice"][0],
    }

    def invoke(*args: str, input: str | None = None, user: str | None = None) -> Result:
        e = dict(env)
        if user is not None:
            e["FTPC_USER"], e["FTPC_PASSWORD"] = user, ACCOUNTS[user][0]
        return CliRunner().invoke(ftpc_main, list(args), input=input, env=e)

    return invoke


def files(tmp_path: Path, **contents: bytes) -> list[str]:
    paths = []
    for name, data in contents.items():
        p = tmp_path / name
        p.write_bytes(data)
        paths.append(str(p))
    return paths


def test_put_ls_get_rm(run, tmp_path: Path) -> None:
    a, b = files(tmp_path, **{"a.txt": b"alpha", "b b.txt": b"beta"})
    result = run("put", a, b)
    assert result.exit_code == 0, result.output
    assert "put a.txt" in result.stdout and "verified" in result.stdout
    assert result.stdout.count("verified") == 2

    result = run("ls")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].split()[0] == "1" and lines[1].endswith("a.txt")
    assert lines[2].endswith("b b.txt")
    assert hashlib.md5(b"alpha").hexdigest() in lines[1]

    out = tmp_path / "dl"
    result = run("get", "2", "1", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "b b.txt").read_bytes() == b"beta" and (out / "a.txt").read_bytes() == b"alpha"
    assert result.stdout.count("md5") == 2

    result = run("get", "1", "-o", str(out))  # the same bytes are already there: done
    assert result.exit_code == 0 and "nothing fetched" in result.stdout
    (out / "a.txt").write_bytes(b"changed locally")
    result = run("get", "1", "-o", str(out))
    assert result.exit_code == 5  # conflict
    assert "already exists" in result.stderr and "--on-conflict" in result.stderr
    assert "Traceback" not in result.output
    assert run("get", "1", "-o", str(out), "--overwrite").exit_code == 0
    assert (out / "a.txt").read_bytes() == b"alpha"

    result = run("rm", "1")
    assert result.exit_code == 0 and "deleted a.txt" in result.stdout
    result = run("rm", "1")  # the listing the user saw no longer matches
    assert result.exit_code == 4 and "run ls again" in result.stderr
    result = run("ls", "--json")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["name"] for e in events if e["event"] == "entry"] == ["b b.txt"]
    assert events[-1]["event"] == "summary" and events[-1]["exit"] == 0


def test_numbers_need_a_listing_first(run) -> None:
    result = run("get", "1")
    assert result.exit_code == 4 and "run ls first" in result.stderr


def test_by_name_and_digit_names(run, tmp_path: Path) -> None:
    [p] = files(tmp_path, **{"7": b"seven"})
    assert run("put", p).exit_code == 0
    result = run("get", "--by-name", "7", "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "7").read_bytes() == b"seven"


def test_put_existing_identical_and_overwrite(run, tmp_path: Path) -> None:
    [p] = files(tmp_path, f=b"one")
    assert run("put", p).exit_code == 0
    result = run("put", p)
    assert result.exit_code == 0 and "already there" in result.stdout
    Path(p).write_bytes(b"two")
    result = run("put", p)
    assert result.exit_code == 5 and "already exists" in result.stderr
    assert run("put", "--overwrite", p).exit_code == 0


def test_failures_and_usage_errors(run, daemon: Daemon, tmp_path: Path) -> None:
    result = run("put", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "cannot read" in result.stderr
    result = run("put")
    assert result.exit_code == 2
    result = run("get")
    assert result.exit_code == 2
    result = run("get", "nothing-here")
    assert result.exit_code == 4 and "no file named" in result.stderr
    [p] = files(tmp_path, f=b"x")
    result = run("put", p, user="reader")
    assert result.exit_code == 3 and "may not" in result.stderr
    result = CliRunner().invoke(
        ftpc_main,
        ["--port", str(daemon.port), "--user", "alice", "ls"],
        env={"FTPC_PASSWORD": "wrong"},
    )
    assert result.exit_code == 3 and "login failed" in result.stderr
    result = CliRunner().invoke(
        ftpc_main, ["--port", "1", "--user", "a", "ls"], env={"FTPC_PASSWORD": "x"}
    )
    assert result.exit_code == 7 and "cannot connect" in result.stderr
    assert "Traceback" not in result.output


def test_password_prompt(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTPC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FTPC_PASSWORD", raising=False)
    result = CliRunner().invoke(
        ftpc_main, ["--port", str(daemon.port), "ls"], input="alice\nalice-password\n"
    )
    assert result.exit_code == 0, result.output
    assert "alice-password" not in result.output  # the prompt hides it
    assert "(no files)" in result.stdout


def test_shell_session(run, tmp_path: Path) -> None:
    files(tmp_path, **{"one.txt": b"1", "two.txt": b"22"})
    script = (
        "\n".join(
            [
                "help",
                "put one.txt two.txt",
                "ls",
                "get 2",
                "get",
                "1",
                "rm 1",
                "get 1",
                "ls",
                "bogus",
                "put nope.txt",
                "quit",
            ]
        )
        + "\n"
    )
    result = run("shell", input=script)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "commands (" in out
    assert out.count("verified") >= 2
    # get 2 and get+pick 1 find the same bytes in the working directory: nothing to fetch
    assert out.count("nothing fetched") == 2
    assert "number to download" in out
    assert "deleted one.txt" in out
    assert "run ls again" in out  # get 1 after rm: #1 now names another file
    assert "unknown command 'bogus'" in out
    assert "error: cannot read nope.txt" in out


def test_shell_downloads_by_number(run, tmp_path: Path) -> None:
    files(tmp_path, **{"pick.txt": b"picked"})
    assert run("put", str(tmp_path / "pick.txt")).exit_code == 0
    (tmp_path / "pick.txt").unlink()
    result = run("shell", input="get\n1\nquit\n")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pick.txt").read_bytes() == b"picked"


def test_shell_ends_on_eof(run) -> None:
    result = run("shell", input="ls\n")
    assert result.exit_code == 0 and "(no files)" in result.stdout


# --- ftpd ---------------------------------------------------------------------


def test_user_management(tmp_path: Path) -> None:
    users = str(tmp_path / "users.json")
    r = CliRunner()

    def ftpd(*args: str, input: str | None = None) -> Result:
        return r.invoke(ftpd_main, [*args, "--users", users], input=input)

    result = ftpd(
        "user",
        "add",
        "bob",
        "--perm",
        "r",
        "--password-stdin",
        "--iterations",
        "4096",
        input="bobpass\n",
    )
    assert result.exit_code == 0, result.output
    assert "bobpass" not in Path(users).read_text()
    assert ftpd("user", "list").stdout == "bob\tr\t-\t-\n"
    result = ftpd("user", "add", "bob", "--password-stdin", input="x\n")
    assert result.exit_code == 1 and "already exists" in result.stderr
    result = ftpd("user", "add", "carol", "--iterations", "4096", input="pw\npw\n")
    assert result.exit_code == 0, result.output
    result = ftpd("user", "add", "dave", "--perm", "rx", "--password-stdin", input="pw\n")
    assert result.exit_code == 1 and "bad permissions" in result.stderr
    old = UserStore(users).get("bob")
    result = ftpd(
        "user", "passwd", "bob", "--password-stdin", "--iterations", "4096", input="newpass\n"
    )
    assert result.exit_code == 0
    assert UserStore(users).get("bob").stored_key != old.stored_key  # type: ignore[union-attr]
    assert ftpd("user", "perm", "bob", "rw").exit_code == 0
    assert ftpd("user", "del", "carol").exit_code == 0
    assert ftpd("user", "list").stdout == "bob\trw\t-\t-\n"
    result = ftpd("user", "del", "nobody")
    assert result.exit_code == 1 and "no user" in result.stderr
    result = ftpd("user", "passwd", "nobody", "--password-stdin", input="x\n")
    assert result.exit_code == 1


def test_serve_refuses_users_file_inside_root(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        ftpd_main,
        ["serve", "--root", str(tmp_path), "--users", str(tmp_path / "u.json"), "--port", "0"],
    )
    assert result.exit_code == 1 and "outside the root" in result.stderr


def test_serve_as_a_real_process(tmp_path: Path) -> None:
    """First start: an account is created and its password printed once; SIGTERM stops it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    users = tmp_path / "users.json"
    cmd = [
        sys.executable,
        "-m",
        "ftpd",
        "serve",
        "--root",
        str(tmp_path / "root"),
        "--users",
        str(users),
        "--port",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        password = re.fullmatch(r"created account 'admin' with password: (\S+)\n", first)
        assert password, first
        proc.stdout.readline()
        listening = proc.stdout.readline()
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", listening)
        assert match, listening
        result = CliRunner().invoke(
            ftpc_main,
            ["--port", match.group(1), "--user", "admin", "ls"],
            env={"FTPC_PASSWORD": password.group(1), "FTPC_CACHE_DIR": str(tmp_path / "c")},
        )
        assert result.exit_code == 0, result.output
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert 'user="admin"' in err and "result=ok" in err
    # Second start: the account file exists, so no new password is printed.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("listening on")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("text", "value"),
    [("1048576", 1 << 20), ("500M", 500 << 20), ("2G", 2 << 30), ("3KiB", 3 << 10)],
)
def test_byte_sizes(text: str, value: int) -> None:
    from ftpd.cli import ByteSize

    assert ByteSize().convert(text, None, None) == value


def test_serve_reports_startup_problems(tmp_path: Path) -> None:
    users = str(tmp_path / "users.json")
    r = CliRunner()
    result = r.invoke(ftpd_main, ["serve", "--max-file-size", "lots", "--users", users])
    assert result.exit_code == 2 and "is not a size" in result.stderr
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = r.invoke(
            ftpd_main,
            ["serve", "--root", str(tmp_path / "root"), "--users", users, "--port", str(port)],
        )
    assert result.exit_code == 1 and "cannot listen on" in result.stderr
    held = Storage(tmp_path / "root")
    try:
        result = r.invoke(
            ftpd_main, ["serve", "--root", str(tmp_path / "root"), "--users", users, "--port", "0"]
        )
    finally:
        held.close()
    assert result.exit_code == 1 and "already serving" in result.stderr
