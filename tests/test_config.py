"""Configuration files: `ftpd serve --config` (ftpd/config.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ftpc import Client
from ftpd.auth import UserStore
from ftpd.cli import serve
from ftpd.config import config_option, option_keys
from shared.cli import ByteSize
from shared.errors import TooLarge
from tests.conftest import ACCOUNTS, TEST_ITERATIONS


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- ftpd serve --config ------------------------------------------------------------


def test_every_serve_option_is_a_key_in_both_spellings() -> None:
    keys = option_keys(serve)
    for param in serve.params:
        if not isinstance(param, click.Option) or not param.expose_value:
            continue
        long = next(o[2:] for o in param.opts if o.startswith("--"))
        assert keys[long] is param and keys[long.replace("-", "_")] is param
    assert {"root", "users", "max-file-size", "max_file_size", "tls_key", "log-level"} <= set(keys)
    assert "config" not in keys


@click.command()
@config_option("TEST_TOOL_CONFIG")
@click.option("--size", type=ByteSize(), default="1", envvar="TEST_TOOL_SIZE")
@click.option("--name", default="built-in")
@click.option("--count", type=click.IntRange(1, 10), default=1)
@click.option("--ratio", type=float, default=0.5)
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=None)
@click.option("--fast/--slow", default=False)
def tool(size: int, name: str, count: int, ratio: float, folder: Path | None, fast: bool) -> None:
    """A stand-in command: the file mechanism is generic, so it is tested on its own."""
    click.echo(f"{size} {name} {count} {ratio} {folder} {fast}")


def run_tool(tmp_path: Path, toml: str | None, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    extra: list[str] = []
    if toml is not None:
        extra = ["--config", str(write(tmp_path / "conf" / "tool.toml", toml))]
    return CliRunner().invoke(tool, [*extra, *args], env=env)


def test_a_file_sets_defaults_below_command_line_and_environment(tmp_path: Path) -> None:
    toml = 'size = "2K"\nname = "from-file"\ncount = 3\nratio = 2\ndir = "data"\nfast = true\n'
    folder = tmp_path / "conf" / "data"
    assert run_tool(tmp_path, None).stdout == "1 built-in 1 0.5 None False\n"
    assert run_tool(tmp_path, toml).stdout == f"2048 from-file 3 2.0 {folder} True\n"
    result = run_tool(tmp_path, toml, env={"TEST_TOOL_SIZE": "3K"})
    assert result.stdout.startswith("3072 from-file")
    result = run_tool(tmp_path, toml, "--size", "4K", "--name", "cli", "--slow", "--dir", "x")
    assert result.stdout == "4096 cli 3 2.0 x False\n"
    result = run_tool(tmp_path, toml, "--size", "4K", env={"TEST_TOOL_SIZE": "3K"})
    assert result.stdout.startswith("4096 from-file")
    result = run_tool(tmp_path, "dir = '/abs/path'\n")
    assert result.stdout.endswith("/abs/path False\n")
    config = write(tmp_path / "env.toml", "count = 7\n")
    result = CliRunner().invoke(tool, [], env={"TEST_TOOL_CONFIG": str(config)})
    assert result.stdout.startswith("1 built-in 7 ")


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("coutn = 1", r"unknown key 'coutn'; did you mean 'count'\?"),
        ("count = '3'", r"'count' must be an integer, not a string"),
        ("count = true", r"'count' must be an integer, not a boolean"),
        ("count = 11", r"bad value for 'count': 11 is not in the range 1<=x<=10"),
        ("ratio = 'half'", r"'ratio' must be an integer or a float, not a string"),
        ("fast = 'yes'", r"'fast' must be a boolean, not a string"),
        ("size = 'lots'", r"bad value for 'size': 'lots' is not a size"),
        ("size = 1.5", r"'size' must be an integer or a string, not a float"),
        ("size = 1\nsize_x = 2", r"unknown key 'size_x'"),
        ("count = 1\n[count2]\n", r"unknown key 'count2'"),
        ("name = ", r"not valid TOML: .*\(at line 1, column 8\)"),
        ("config = 'other.toml'", r"unknown key 'config'"),
    ],
)
def test_bad_files_are_one_error_line_naming_file_and_key(
    tmp_path: Path, toml: str, expected: str
) -> None:
    result = run_tool(tmp_path, toml + "\n")
    assert result.exit_code == 2, result.output
    path = tmp_path / "conf" / "tool.toml"
    assert result.stderr.startswith(f"Error: {path}: ") and result.stderr.count("\n") == 1
    assert re.search(expected, result.stderr), result.stderr


def test_both_spellings_of_one_key_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "s.toml", "max-file-size = 1\nmax_file_size = 2\n")
    result = CliRunner().invoke(serve, ["--config", str(tmp_path / "s.toml")])
    assert result.exit_code == 2
    assert "'max-file-size' and 'max_file_size' set the same option" in result.stderr


def test_serve_reads_its_file_relative_to_it_and_the_command_line_wins(tmp_path: Path) -> None:
    """A real daemon: root and users come from the file (relative to its folder), the file's
    size limit applies, and --port 0 on the command line beats the file's port 1."""
    conf = tmp_path / "etc"
    store = UserStore(conf / "users.json")
    store.add("alice", ACCOUNTS["alice"][0], iterations=TEST_ITERATIONS)
    cfg = write(
        conf / "ftpd.toml",
        'root = "data"\nusers = "users.json"\nport = 1\nmax-file-size = "1K"\nmin_rate = 1024\n',
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "small.txt").write_bytes(b"x" * 100)
    (elsewhere / "big.txt").write_bytes(b"x" * 2000)
    log = tmp_path / "ftpd.log"
    cmd = [sys.executable, "-m", "ftpd", "serve", "--config", str(cfg), "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FTPD_USERS", None)
    with log.open("wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=elsewhere, stdout=subprocess.PIPE, stderr=err, text=True, env=env
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match, (line, log.read_text())
        with Client("127.0.0.1", int(match.group(1)), "alice", ACCOUNTS["alice"][0]) as c:
            c.put(elsewhere / "small.txt")
            with pytest.raises(TooLarge):
                c.put(elsewhere / "big.txt")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert (conf / "data" / "small.txt").read_bytes() == b"x" * 100
    assert not (elsewhere / "data").exists()
