"""Configuration files: ftpc profiles (ftpc/config.py) and `ftpd serve --config`."""

from __future__ import annotations

import json
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
from ftpc.cli import Settings
from ftpc.cli import main as ftpc_main
from ftpc.config import DEFAULT_PROFILE, Profile, load_config, password_from_command
from ftpd.auth import UserStore
from ftpd.cli import serve
from ftpd.config import config_option, defaults_from_file, option_keys
from shared.cli import ByteSize
from shared.errors import ConfigError, CredentialsUnavailable, TooLarge
from tests.conftest import ACCOUNTS, TEST_ITERATIONS, Daemon


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own ~/.config/ftpc and FTPC_* settings out of these tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("FTPC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FTPC_CACHE_DIR", str(tmp_path / "cache"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, required=True)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


PRINT_ALICE = [sys.executable, "-c", f"print({ACCOUNTS['alice'][0]!r}); print('second line')"]


# --- ftpc: parsing profiles --------------------------------------------------------


def test_a_full_profile(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "conf" / "config.toml",
        """
        [profiles.work]
        host = "files.example.org"
        port = 9021
        user = "alice"
        tls = true
        cafile = "ca.pem"
        fingerprint = "AB:CD"
        digest = "xxh3-128"
        timeout = 5
        limit_rate = "500K"
        password_command = ["pass", "show", "ftp/alice"]

        [profiles.home]
        password-command = "pass show 'ftp/home alice'"
        limit-rate = 1000
        """,
    )
    config = load_config(cfg, required=True)
    work = config.profile("work")
    assert work == Profile(
        "work",
        host="files.example.org",
        port=9021,
        user="alice",
        tls=True,
        cafile=str(tmp_path / "conf" / "ca.pem"),  # relative to the file
        fingerprint="AB:CD",
        digest="xxh3-128",
        timeout=5.0,
        limit_rate=500 << 10,
        password_command=("pass", "show", "ftp/alice"),
    )
    home = config.profile("home")
    assert home is not None
    assert home.password_command == ("pass", "show", "ftp/home alice")
    assert home.options() == {"limit_rate": 1000}
    assert config.profile(None) is None  # no [profiles.default]


def test_the_default_profile_applies_when_none_is_named(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[profiles.default]\nhost = "h"\n[profiles.other]\n')
    config = load_config(cfg, required=True)
    assert config.profile(None) == Profile(DEFAULT_PROFILE, host="h")
    assert config.profile("other") == Profile("other")
    with pytest.raises(ConfigError, match=r"no profile named 'nope' \(profiles: 'default', 'oth"):
        config.profile("nope")
    empty = load_config(write(tmp_path / "e.toml", ""), required=True)
    with pytest.raises(ConfigError, match=r"no profile named 'x' \(profiles: none\)"):
        empty.profile("x")


def test_a_missing_file_is_empty_unless_asked_for(tmp_path: Path) -> None:
    empty = load_config(tmp_path / "none.toml", required=False)
    assert empty.profiles == {} and empty.profile(None) is None
    with pytest.raises(ConfigError, match=r"none\.toml: no such file, so no profile named 'x'"):
        empty.profile("x")
    assert "no such file" in config_error(tmp_path / "none.toml")


def test_a_password_in_the_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[profiles.work]\nuser = "a"\npassword = "hunter2"\n')
    message = config_error(cfg)
    assert "[profiles.work]" in message and "plaintext passwords are not allowed" in message
    assert "password_command" in message and "hunter2" not in message


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[profiles.work]\nhost = "a"\nport = \n')
    assert re.search(r"not valid TOML: .*line 3", config_error(cfg))
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[profiles.w]\nhost = "caf\xe9"\n')
    assert "not valid TOML" in config_error(bad)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("prot = 1", r"unknown key 'prot' in \[profiles.w\]; did you mean 'port'\?"),
        ("port = '8021'", r"'port' must be an integer from 1 to 65535"),
        ("port = 0", r"'port' must be an integer from 1 to 65535"),
        ("port = true", r"'port' must be an integer"),
        ("tls = 1", r"'tls' must be true or false, not an integer"),
        ("host = ''", r"'host' must be a non-empty string, not an empty string"),
        ("user = 5", r"'user' must be a non-empty string, not an integer"),
        ("timeout = 'soon'", r"'timeout' must be a number of seconds"),
        ("timeout = 0", r"'timeout' must be a number of seconds"),
        ("digest = 'sha1'", r"'digest' must be one of md5"),
        ("limit_rate = 'fast'", r"'limit_rate': 'fast' is not a size"),
        ("limit_rate = 1.5", r"'limit_rate' must be bytes per second"),
        ("password_command = []", r"'password_command' must be a command"),
        ("password_command = [1]", r"'password_command' must be a command"),
        ("password_command = 'pass \"show'", r"cannot be split into words"),
        ("limit_rate = 1\nlimit-rate = 2", r"sets 'limit_rate' twice"),
    ],
)
def test_bad_profile_values_are_refused(tmp_path: Path, body: str, expected: str) -> None:
    cfg = write(tmp_path / "c.toml", f"[profiles.w]\n{body}\n")
    assert re.search(expected, config_error(cfg))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host = 'h'", r"unknown key 'host' \(only \[profiles.NAME\] tables\)"),
        ("profiles = 3", r"'profiles' must be tables"),
        ("[profiles]\nw = 3", r"\[profiles.w\] must be a table, not an integer"),
    ],
)
def test_the_file_holds_only_profile_tables(tmp_path: Path, text: str, expected: str) -> None:
    assert re.search(expected, config_error(write(tmp_path / "c.toml", text + "\n")))


# --- ftpc: password_command ---------------------------------------------------------


def test_password_command_gives_its_first_line() -> None:
    assert password_from_command("work", PRINT_ALICE) == ACCOUNTS["alice"][0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([sys.executable, "-c", "print('secret-out'); raise SystemExit(3)"], "exit status 3"),
        ([sys.executable, "-c", "pass"], "printed no password"),
        ([sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'\\xff')"], "not UTF-8"),
        (["/nonexistent/ftpc-test-helper"], "cannot run password_command"),
    ],
)
def test_a_failing_password_command_names_the_profile_not_the_output(
    argv: list[str], expected: str
) -> None:
    with pytest.raises(CredentialsUnavailable) as info:
        password_from_command("work", argv)
    message = str(info.value)
    assert message.startswith("profile 'work': ") and expected in message
    assert "secret-out" not in message


# --- ftpc: the command line ---------------------------------------------------------


def settings_for(*args: str) -> Settings:
    """The Settings `ftpc ARGS ls` would run with, without connecting."""
    ctx = ftpc_main.make_context("ftpc", [*args, "ls"])
    with ctx:
        ctx.invoke(ftpc_main.callback, **ctx.params)  # type: ignore[arg-type]
    assert isinstance(ctx.obj, Settings)
    return ctx.obj


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    return write(
        tmp_path / "xdg" / "ftpc" / "config.toml",
        """
        [profiles.default]
        host = "default.example"

        [profiles.work]
        host = "work.example"
        port = 1111
        user = "alice"
        tls = true
        timeout = 5
        limit_rate = "1M"
        digest = "xxh3-128"
        password_command = ["pass", "show", "work"]
        """,
    )


def test_without_a_config_file_the_built_in_defaults_hold() -> None:
    s = settings_for()
    assert (s.host, s.port, s.tls, s.timeout, s.limit_rate, s.profile) == (
        "127.0.0.1",
        8021,
        False,
        60.0,
        None,
        None,
    )


def test_profile_selection(profiles: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_for().host == "default.example"
    monkeypatch.setenv("FTPC_PROFILE", "work")
    assert settings_for().host == "work.example"
    assert settings_for("--profile", "default").host == "default.example"


def test_command_line_beats_environment_beats_profile_beats_default(
    profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings_for("--profile", "work")
    assert (s.host, s.port, s.user, s.tls, s.timeout, s.limit_rate, s.digest) == (
        "work.example",
        1111,
        "alice",
        True,
        5.0,
        1 << 20,
        "xxh3-128",
    )
    assert s.password_command == ("pass", "show", "work") and s.profile == "work"
    assert settings_for("--profile", "default").port == 8021  # not in the profile: built in
    monkeypatch.setenv("FTPC_PORT", "2222")
    monkeypatch.setenv("FTPC_LIMIT_RATE", "2M")
    s = settings_for("--profile", "work")
    assert (s.port, s.limit_rate) == (2222, 2 << 20)
    s = settings_for(
        "--profile", "work", "--port", "3333", "--no-tls", "--timeout", "7", "--limit-rate", "0"
    )
    assert (s.port, s.tls, s.timeout, s.limit_rate) == (3333, False, 7.0, 0)


def test_ftpc_config_and_ftpc_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = write(tmp_path / "other.toml", '[profiles.x]\nhost = "other.example"\n')
    assert settings_for("--config", str(other), "--profile", "x").host == "other.example"
    monkeypatch.setenv("FTPC_CONFIG", str(other))
    assert settings_for("--profile", "x").host == "other.example"


@pytest.mark.parametrize(
    ("args", "text", "expected"),
    [
        (["--config", "{tmp}/missing.toml"], None, "missing.toml: no such file"),
        (["--profile", "nope"], None, "config.toml: no such file, so no profile named 'nope'"),
        ([], "[profiles.default]\nport = \n", "not valid TOML: Invalid value (at line 2"),
        ([], "[profiles.default]\npassword = 'pw'\n", "plaintext passwords are not allowed"),
        ([], "[profiles.default]\nport = 'x'\n", "'port' must be an integer"),
    ],
)
def test_config_problems_are_one_error_line_and_exit_2(
    tmp_path: Path, args: list[str], text: str | None, expected: str
) -> None:
    cfg = tmp_path / "xdg" / "ftpc" / "config.toml"
    if text is not None:
        write(cfg, text)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(ftpc_main, [*args, "ls"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert expected in result.stderr and "Traceback" not in result.output
    if text is not None:
        assert str(cfg) in result.stderr


def test_a_profile_logs_in_with_its_password_command(daemon: Daemon, tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.toml",
        f"""
        [profiles.test]
        host = "{daemon.host}"
        port = {daemon.port}
        user = "alice"
        limit_rate = "100M"
        password_command = {_toml_list(PRINT_ALICE)}

        [profiles.broken]
        host = "{daemon.host}"
        port = {daemon.port}
        user = "alice"
        password_command = {_toml_list([sys.executable, "-c", "print('x'); exit(3)"])}
        """,
    )
    runner = CliRunner()
    result = runner.invoke(ftpc_main, ["--config", str(cfg), "--profile", "test", "ls"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(ftpc_main, ["--config", str(cfg), "--profile", "broken", "ls"])
    assert result.exit_code == 3  # no password: fails as a login does
    assert result.stderr == (
        f"Error: profile 'broken': password_command {sys.executable!r} failed with exit status 3\n"
    )
    result = runner.invoke(
        ftpc_main,
        ["--config", str(cfg), "--profile", "broken", "ls"],
        env={"FTPC_PASSWORD": ACCOUNTS["alice"][0]},
    )
    assert result.exit_code == 0, result.output  # FTPC_PASSWORD wins; the command is not run


def test_settings_hand_the_rate_to_the_client(daemon: Daemon, tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", f"[profiles.t]\nport = {daemon.port}\nlimit_rate = '3M'\n")
    settings = settings_for("--config", str(cfg), "--profile", "t", "--user", "alice")
    settings.password_command = tuple(PRINT_ALICE)
    with settings.connect() as client:
        assert isinstance(client, Client)
        assert client.chan.throttle is not None and client.chan.throttle.rate == 3 << 20


def _toml_list(items: list[str]) -> str:
    """A JSON array of strings is also a TOML array."""
    return json.dumps(items)


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


def test_the_readme_examples_are_accepted(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## Configuration") : readme.index("## Benchmarks")]
    client_toml, server_toml = re.findall(r"```toml\n(.*?)```", section, re.S)
    config = load_config(write(tmp_path / "config.toml", client_toml), required=True)
    assert set(config.profiles) == {"default", "backup"}
    assert config.profile("backup").limit_rate == 2 << 20  # type: ignore[union-attr]
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).touch()
    defaults = defaults_from_file(
        serve, write(tmp_path / "ftpd.toml", server_toml), click.Context(serve)
    )
    assert defaults["users_file"] == str(tmp_path / "users.json")
    assert defaults["max_file_size"] == "2G" and defaults["max_per_ip"] == 5
