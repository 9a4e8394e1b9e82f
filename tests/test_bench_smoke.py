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
    assert report["targets"] and all(
        t["verdict"] in ("PASS", "FAIL", "SKIP") for t in report["targets"]
    )
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("ftpd-bench-*"))  # its temp dir is cleaned up
