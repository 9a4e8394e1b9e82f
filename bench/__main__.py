"""`python -m bench [--quick] [--runs N] [--only SCENARIO] [--out DIR]`: one benchmark run.

Everything lives in one temp dir and every child process is stopped at the end, also on
Ctrl-C, SIGTERM or a failure. A full run writes bench/results/latest.json and docs/bench.png;
a quick run writes bench/results/quick.json and quick.png (git-ignored), so a smoke run never
overwrites the committed figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import runner
from bench.machine import CpuWatch, machine_info
from bench.plan import FULL, QUICK, SCENARIOS, Plan
from bench.procs import Processes
from bench.report import render, targets, to_json, write_json
from bench.stats import Results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOCS_CHART = HERE.parent / "docs" / "bench.png"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark ftpd/ftpc against the raw TCP + md5 ceiling and FTP servers.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, 1 run: a CI smoke run")
    p.add_argument("--runs", type=int, help="runs per figure (full: 3, quick: 1)")
    p.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable); memory comes with 'big'",
    )
    p.add_argument("--out", type=Path, help="where the JSON (and a quick run's chart) go")
    p.add_argument("--chart", type=Path, help="the PNG to write (full: docs/bench.png)")
    p.add_argument("--tmp", type=Path, help="parent of the temp dir (default: the system's)")
    p.add_argument("--no-vsftpd", action="store_true", help="skip vsftpd even if installed")
    p.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target fails")
    p.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: print the table of a saved run (and redraw --chart if given)",
    )
    args = p.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the cleanup in `finally` blocks runs."""
    raise SystemExit(128 + signum)


def render_saved(path: Path, chart: Path | None) -> int:
    """Print the table of a saved run, with this version's report code."""
    record = json.loads(path.read_text("utf-8"))
    results, plan = Results.from_json(record), Plan.from_json(record["plan"])
    print(render(results, plan, record["machine"], record["date"], record["wall_seconds"]))
    if chart is not None:
        from bench.chart import draw

        draw(results, plan, f"ftpd/ftpc benchmark ({plan.name}), {record['date']}", chart)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render is not None:
        return render_saved(args.render, args.chart)
    plan = (QUICK if args.quick else FULL).with_options(args.runs, args.only)
    out_dir = args.out or RESULTS
    stem = "latest" if plan.name == "full" else "quick"
    chart = args.chart or (DOCS_CHART if plan.name == "full" else out_dir / "quick.png")
    signal.signal(signal.SIGTERM, _terminate)

    work = Path(tempfile.mkdtemp(prefix="ftpd-bench-", dir=args.tmp))
    logs = work / "logs"
    logs.mkdir()
    procs = Processes(logs)
    results = Results()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info(work)
    started = time.monotonic()
    watch = CpuWatch()
    try:
        runner.measure(plan, work, procs, results, vsftpd=not args.no_vsftpd)
    except Exception as exc:
        print(f"bench failed: {exc!r}", file=sys.stderr)
        for log in sorted(logs.glob("*.log")):
            print(f"--- {log.name} (last lines)\n{procs.log_tail(log.name)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit) as exc:
        print("bench interrupted: stopping every child, removing the temp dir", file=sys.stderr)
        return exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 130
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    wall = time.monotonic() - started
    machine["load"] = watch.summary()

    print(render(results, plan, machine, date, wall))
    json_path = out_dir / f"{stem}.json"
    write_json(json_path, to_json(results, plan, machine, date, wall))
    from bench.chart import draw  # matplotlib is slow to import; only needed here

    draw(results, plan, f"ftpd/ftpc benchmark ({plan.name}), {date}", chart)
    print(f"\nwrote {json_path} and {chart}", file=sys.stderr)
    failed = any(t.verdict == "FAIL" for t in targets(results, plan))
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
