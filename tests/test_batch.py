"""`ftpc batch`: a script over one login; `-` lines may fail; any other failure stops the
script, naming the line, with its exit code; under --json, one summary at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.ftpc_env import Ftpc, events, kinds, logins, make_ftpc, tree, write_tree


@pytest.fixture
def ftpc(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ftpc:
    write_tree(tmp_path / "work", {"site/a.txt": b"a", "site/s/b.txt": b"b", "one.txt": b"1"})
    return make_ftpc(daemon, tmp_path, monkeypatch)


def script(ftpc: Ftpc, text: str) -> str:
    path = ftpc.cwd / "job.batch"
    path.write_text(text)
    return str(path)


def test_a_script_runs_every_line_over_one_login(
    ftpc: Ftpc, daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = """# a comment, then a blank line

    mkdir -p www/2026
    put -r site --to www/2026
      # an indented comment
    put "one.txt" --to www
    ls www/2026/site
    ls
    get -r 1 -o out
    rm www/one.txt
    """
    result = ftpc("batch", script(ftpc, text))
    assert result.exit_code == 0, result.output
    expected = {"2026/site/a.txt": b"a", "2026/site/s/b.txt": b"b", "one.txt": b"1"}
    assert tree(ftpc.cwd / "out" / "www") == expected  # get -r 1: #1 of the script's ls
    assert tree(daemon.root / "www") == {k: v for k, v in expected.items() if "/" in k}
    assert "deleted www/one.txt" in result.stdout
    assert logins(caplog) == 1


def test_a_line_marked_dash_may_fail(ftpc: Ftpc, daemon: Daemon) -> None:
    text = "-rm nothing-here\n- put missing.txt\nput one.txt\n"
    result = ftpc("batch", script(ftpc, text))
    assert result.exit_code == 0, result.output
    assert "job.batch, line 1 (rm nothing-here) failed, ignored: no file named" in result.stdout
    assert "line 2 (put missing.txt) failed, ignored: cannot read missing.txt" in result.stdout
    assert (daemon.root / "one.txt").read_bytes() == b"1"


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        ("rm nothing-here", 4, "no file named 'nothing-here'"),
        ("mkdir -p a//b", 2, "empty component"),
        ("bogus 1 2", 2, "unknown command 'bogus'"),
        ('put "one.txt', 2, "cannot parse the line"),
        ("put --no-such-option one.txt", 2, "No such option"),
        ("put one.txt --to taken", 5, "already exists"),
    ],
)
def test_a_failing_line_stops_the_script_with_its_code(
    ftpc: Ftpc, daemon: Daemon, line: str, code: int, message: str
) -> None:
    (daemon.root / "taken").mkdir()
    (daemon.root / "taken" / "one.txt").write_bytes(b"other")
    text = f"mkdir first\n\n{line}\nmkdir never\n"
    result = ftpc("batch", script(ftpc, text))
    assert result.exit_code == code, result.output
    assert f"job.batch, line 3 ({line}): " in result.stderr
    assert message in result.stderr
    assert (daemon.root / "first").is_dir() and not (daemon.root / "never").exists()


def test_a_script_from_stdin(ftpc: Ftpc, daemon: Daemon) -> None:
    result = ftpc("batch", "-", input="mkdir d\nput one.txt --to d\nrm nope\nmkdir after\n")
    assert result.exit_code == 4
    assert "line 3 (rm nope)" in result.stderr
    assert (daemon.root / "d" / "one.txt").exists() and not (daemon.root / "after").exists()


def test_numbers_mean_what_the_script_listed(ftpc: Ftpc, daemon: Daemon) -> None:
    ftpc("put", "one.txt")
    assert ftpc("ls").exit_code == 0  # remembered outside the script: not used inside it
    result = ftpc("batch", "-", input="get 1 -o o\n")
    assert result.exit_code == 4 and "run ls first" in result.stderr
    result = ftpc("batch", "-", input="mkdir a\nls\nrm 2\nls\n")  # 1 a/, 2 one.txt
    assert result.exit_code == 0, result.output
    assert result.stdout.count("deleted one.txt") == 1
    assert not (daemon.root / "one.txt").exists()


def test_under_json_a_script_writes_one_summary(ftpc: Ftpc) -> None:
    text = "mkdir -p j\n-rm j/missing\nput -r site --to j\nls j\n"
    result = ftpc("--json", "batch", script(ftpc, text))
    assert result.exit_code == 0, result.output
    evs = events(result)
    assert kinds(evs).count("summary") == 1 and evs[-1]["event"] == "summary"
    [ignored] = [e for e in evs if e["event"] == "ignored"]
    assert ignored == {
        "event": "ignored",
        "line": 2,
        "command": "rm j/missing",
        "exit": 4,
        "message": "no file named 'j/missing'",
    }
    assert [e["path"] for e in evs if e["event"] == "entry"] == ["j/site"]
    assert evs[-1]["ok"] == 2 and evs[-1]["exit"] == 0


def test_under_json_the_summary_has_the_scripts_exit_code(ftpc: Ftpc) -> None:
    # A tolerated failure of a file does not make the script fail...
    result = ftpc("--json", "batch", "-", input="-put missing.txt\nput one.txt\n")
    assert result.exit_code == 0
    evs = events(result)
    assert evs[-1]["failed"] == 1 and evs[-1]["ok"] == 1 and evs[-1]["exit"] == 0
    # ...and a line that stops the script gives the summary its code, after a `stopped` event.
    result = ftpc("--json", "batch", "-", input="-put missing.txt\nrm nope\nput one.txt\n")
    assert result.exit_code == 4
    evs = events(result)
    assert kinds(evs)[-2:] == ["stopped", "summary"]
    assert evs[-2] == {
        "event": "stopped",
        "line": 2,
        "command": "rm nope",
        "exit": 4,
        "message": "no file named 'nope'",
    }
    assert evs[-1]["exit"] == 4 and evs[-1]["ok"] == 0


def test_the_shell_takes_the_same_commands(ftpc: Ftpc, daemon: Daemon) -> None:
    text = "mkdir -p s/t\nput -r site --to s/t\nls s/t\nrm s/t\nrm s/nothing\nquit\n"
    result = ftpc("shell", input=text)
    assert result.exit_code == 0, result.output
    assert tree(daemon.root / "s" / "t") == {"site/a.txt": b"a", "site/s/b.txt": b"b"}
    assert "error: the folder 's/t' is not empty" in result.stdout
    assert "error: no file named 's/nothing'" in result.stdout
