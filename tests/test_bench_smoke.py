"""`python -m bench --quick` runs end to end, so the benchmark does not rot.

No figure is judged here (speed belongs to the benchmark, not to the tests): only that every
scenario produced its figures, the targets were evaluated, and the chart was drawn.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytest.importorskip(
    "pyftpdlib", reason="the bench extra is not installed: pip install -e '.[bench]'"
)
pytest.importorskip(
    "matplotlib", reason="the bench extra is not installed: pip install -e '.[bench]'"
)


@pytest.mark.timeout(300)
def test_quick_benchmark_runs(tmp_path: Path) -> None:
    out, chart = tmp_path / "results", tmp_path / "quick.png"
    args = [
        "--quick",
        "--no-vsftpd",
        "--out",
        str(out),
        "--chart",
        str(chart),
        "--tmp",
        str(tmp_path),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "quick.json").read_text())
    sections = {f["section"] for f in report["figures"]}
    assert {"ceiling", "small", "concurrent", "login"} <= sections
    assert all(f["samples"] for f in report["figures"])
    disk = {f["key"]: f for f in report["figures"] if f["key"].startswith("ceiling.disk.")}
    assert sorted(disk) == ["ceiling.disk.down", "ceiling.disk.up"]
    assert disk["ceiling.disk.up"]["samples"] == disk["ceiling.disk.down"]["samples"]
    into = {f["key"]: f for f in report["figures"] if f["key"].startswith("ceiling.tcp_disk.")}
    assert sorted(into) == ["ceiling.tcp_disk.down", "ceiling.tcp_disk.up"]
    assert into["ceiling.tcp_disk.up"]["samples"] == into["ceiling.tcp_disk.down"]["samples"]
    assert report["targets"] and all(
        t["verdict"] in ("PASS", "FAIL", "SKIP") for t in report["targets"]
    )
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("ftpd-bench-*"))  # its temp dir is cleaned up


def test_the_commit_is_marked_changed_by_code_but_not_by_the_benchs_outputs(
    tmp_path: Path,
) -> None:
    from bench.machine import code_version

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    for path in ("bench/results/latest.json", "docs/bench.png", "ftpd/server.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("first\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one")
    commit = git("rev-parse", "--short", "HEAD")
    (tmp_path / "bench/results/latest.json").write_text("a later run\n")
    (tmp_path / "docs/bench.png").write_text("a later chart\n")
    assert code_version(tmp_path) == commit
    (tmp_path / "ftpd/server.py").write_text("changed code\n")
    assert code_version(tmp_path) == commit + "+changes"


def test_the_load_line_shows_the_hypervisors_steal_and_reads_older_runs() -> None:
    from bench.machine import CpuWatch, describe_load

    load = CpuWatch().summary()
    assert load["steal_cpu_seconds"] >= 0 and 0 <= load["steal_cpu_share"] <= 1
    line = describe_load(
        {**load, "other_cpu_share": 0.12, "steal_cpu_share": 0.08, "load_1min_at_start": 0.5}
    )
    assert line == (
        "other processes and the kernel used 12% of the CPU during the run,"
        " the hypervisor's steal 8% of it (load average 0.5 at start); figures are disturbed"
    )
    older = {"other_cpu_share": 0.04, "load_1min_at_start": 0.2}  # saved before steal was kept
    assert describe_load(older) == (
        "other processes and the kernel used 4% of the CPU during the run"
        " (load average 0.2 at start)"
    )


def test_the_durable_write_probe_writes_the_whole_size_and_removes_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from bench import ceiling
    from bench.stats import Results

    sizes: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        sizes.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(ceiling.os, "fsync", fsync)
    results = Results()
    size = 3 * ceiling.DISK_BLOCK + 4096  # a last block shorter than the others
    ceiling.durable_write_once(results, tmp_path / "probe.bin", size, "3 MiB")
    assert sizes == [size]
    assert not (tmp_path / "probe.bin").exists()
    up, down = results.get("ceiling.disk.up"), results.get("ceiling.disk.down")
    assert up is not None and down is not None
    assert up.samples == down.samples and up.samples[0] > 0
    assert up.label == "disk: write 3 MiB and fsync, no network"


def test_the_raw_tcp_receiver_writes_every_byte_into_its_file(tmp_path: Path) -> None:
    import os
    import socket

    data = os.urandom(3 * (1 << 20) + 123)  # a last piece shorter than the buffer
    target = tmp_path / "got.bin"
    argv = [sys.executable, "-m", "bench.tcp_peer", "recv", "--into", str(target)]
    with subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True) as peer:
        try:
            assert peer.stdout is not None
            port = json.loads(peer.stdout.readline())["port"]
            with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
                conn.sendall(data)
            result = json.loads(peer.stdout.readline())
            assert peer.wait(timeout=30) == 0
        finally:
            if peer.poll() is None:
                peer.kill()
    assert result["bytes"] == result["stored"] == len(data)
    assert target.read_bytes() == data


def test_the_durable_receive_row_is_in_both_sections_and_removes_its_file(
    tmp_path: Path,
) -> None:
    import os

    from bench import ceiling
    from bench.procs import Processes
    from bench.stats import Results

    size = 2 * (1 << 20) + 5
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(size))
    logs = tmp_path / "logs"
    logs.mkdir()
    procs, results = Processes(logs), Results()
    try:
        ceiling.durable_receive_once(results, procs, source, tmp_path / "into.bin", size, "2 MiB")
    finally:
        procs.stop_all()
    assert not (tmp_path / "into.bin").exists()
    up, down = results.get("ceiling.tcp_disk.up"), results.get("ceiling.tcp_disk.down")
    assert up is not None and down is not None
    assert up.samples == down.samples and up.samples[0] > 0
    assert (up.section, down.section) == ("big.up", "big.down")
    assert up.label == "raw TCP into a file + fsync (2 MiB), no hash"


def test_the_disk_rows_show_their_ratio_to_pyftpdlibs_big_transfer() -> None:
    import tempfile

    from bench.machine import machine_info
    from bench.plan import QUICK
    from bench.report import render
    from bench.stats import Results

    results = Results()
    results.figure("ceiling.tcp_md5", "ceiling", "ceiling", "raw TCP + md5 both ends", "MB/s").add(
        400.0
    )
    for key, label, value in (
        ("ceiling.disk.up", "disk: write and fsync", 800.0),
        ("ceiling.tcp_disk.up", "raw TCP into a file + fsync", 750.0),
        ("pyftpdlib.big.up", "pyftpdlib (ftplib client)", 1000.0),
    ):
        results.figure(key, "big.up", key.split(".")[0], label, "MB/s").add(value)
    results.figure("ceiling.tcp", "ceiling", "ceiling", "raw TCP, 2 processes", "MB/s").add(3000.0)
    machine = {
        **machine_info(Path(tempfile.gettempdir())),
        "load": {"other_cpu_share": 0.0, "load_1min_at_start": 0.1},
    }
    text = render(results, QUICK, machine, "today", 1.0)
    rows = {line.split("  ")[1]: line for line in text.splitlines() if line.startswith("  ")}
    assert rows["disk: write and fsync"].rstrip().endswith("2.00x      0.80x")
    assert rows["raw TCP into a file + fsync"].rstrip().endswith("1.88x      0.75x")
    assert rows["raw TCP, 2 processes"].rstrip().endswith("7.50x")  # no peer figure for it
