"""The table on stdout, the pass/fail targets, and the JSON record of a run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.ceiling import TCP_MD5
from bench.machine import describe, describe_load
from bench.plan import FAST_DIGEST, Plan
from bench.stats import Figure, Results

PEERS = ("pyftpdlib", "vsftpd")
MEMORY_BUDGET_MIB = 32


def section_titles(plan: Plan) -> dict[str, str]:
    return {
        "ceiling": f"Ceiling: {plan.big_label} between two processes on 127.0.0.1",
        "big.up": f"{plan.big_label} upload",
        "big.down": f"{plan.big_label} download",
        "small": f"{plan.small_count:,} files of {plan.small_size // 1024} KiB uploaded in one "
        "session",
        "concurrent": f"{plan.clients} concurrent clients, each uploads then downloads "
        f"{plan.client_label}; aggregate",
        "login": f"connect + log in + list a root of {plan.list_files} files",
        "memory": f"Peak RSS during one {plan.big_label} transfer: peak, and added over the "
        "baseline",
    }


@dataclass(frozen=True)
class Target:
    """One goal from the issue; `ratio` is None when a figure it needs was not measured."""

    goal: str
    ratio: float | None
    threshold: float
    detail: str
    at_most: bool = False

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "SKIP"
        ok = self.ratio <= self.threshold if self.at_most else self.ratio >= self.threshold
        return "PASS" if ok else "FAIL"

    @property
    def shown(self) -> str:
        if self.ratio is None:
            return ""
        if self.at_most:
            return f"{_num(self.ratio)} MiB"
        # Three decimals, so that 0.849x does not print as 0.85x next to a FAIL; and cut
        # rather than rounded when rounding would reach the threshold: 0.9996x next to a
        # FAIL prints as 0.999x, not 1.000x.
        shown = round(self.ratio, 3)
        if self.verdict == "FAIL" and shown >= self.threshold:
            shown = math.floor(self.ratio * 1000) / 1000
        return f"{shown:.3f}x"


def _num(value: float) -> str:
    if abs(value) < 0.05:
        value = 0.0  # no "-0.0" when a peak RSS ends a hair below its baseline
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.1f}"


def _times(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def _peer_key(key: str, peer: str) -> str:
    """The peer figure a figure compares with: same scenario, same direction. The disk rows
    of the big sections compare with the peer's big transfer: what durability alone costs."""
    rest = key.split(".", 1)[1].replace("cli.", "big.").removesuffix(".600k")
    rest = rest.removesuffix(".serial").removesuffix(f".{FAST_DIGEST}")
    if key.startswith("ceiling."):
        rest = rest.replace("tcp_disk.", "big.").replace("disk.", "big.")
    return f"{peer}.{rest}"


def targets(results: Results, plan: Plan) -> list[Target]:
    """The goals of the issue, each a ratio of medians measured in this same run."""
    out: list[Target] = []
    ceiling = results.get(TCP_MD5)
    for op, word in (("up", "upload"), ("down", "download")):
        ours = results.get(f"ftpd.big.{op}")
        out.append(
            _ratio(f"{plan.big_label} {word} >= 0.85x raw TCP+md5 ceiling", ours, ceiling, 0.85)
        )
        for peer in PEERS:
            theirs = results.get(f"{peer}.big.{op}.verified")
            if theirs is not None or peer == "pyftpdlib":
                goal = f"{plan.big_label} {word} >= 1.3x {peer} transfer + md5 both sides"
                out.append(_ratio(goal, ours, theirs, 1.3))
        # With the faster digest, a verified transfer should match or beat an unverified one.
        fast = results.get(f"ftpd.big.{op}.{FAST_DIGEST}")
        goal = f"{plan.big_label} {word} verified with {FAST_DIGEST} >= 1x pyftpdlib unverified"
        out.append(_ratio(goal, fast, results.get(f"pyftpdlib.big.{op}"), 1.0))
    goal = f"{plan.small_count:,} small files (put_many): files/s >= 4x pyftpdlib"
    out.append(_ratio(goal, results.get("ftpd.small"), results.get("pyftpdlib.small"), 4.0))
    goal = f"{plan.clients} clients aggregate >= 0.8x single-stream raw TCP+md5 ceiling"
    out.append(_ratio(goal, results.get("ftpd.concurrent"), ceiling, 0.8))
    for side in ("server", "client"):
        for op, word in (("up", "upload"), ("down", "download")):
            fig = results.get(f"ftpd.rss.{side}.{op}.added")
            goal = (
                f"{plan.big_label} {word} adds <= {MEMORY_BUDGET_MIB} MiB to the {side} (worst run)"
            )
            worst = fig.max if fig else None
            detail = f"{_num(worst)} MiB added" if worst is not None else "not measured"
            out.append(Target(goal, worst, MEMORY_BUDGET_MIB, detail, at_most=True))
    return out


def _ratio(goal: str, ours: Figure | None, base: Figure | None, threshold: float) -> Target:
    if ours is None or base is None:
        return Target(goal, None, threshold, "not measured")
    detail = f"{_num(ours.median)} vs {_num(base.median)} {ours.unit}"
    return Target(goal, ours.median / base.median, threshold, detail)


def render(results: Results, plan: Plan, machine: dict[str, Any], date: str, wall: float) -> str:
    """The whole report as text: header, one block per section, then the targets."""
    lines = [
        f"ftpd/ftpc benchmark, {plan.name} run of {date}, {wall:.0f} s wall",
        f"machine: {describe(machine)}",
        f"load: {describe_load(machine['load'])}",
        "MB = 10^6 bytes. Each figure: median of its runs [min-max]; "
        f"{plan.runs} run(s), login figures pool every sample.",
        "xceiling = MB/s over raw TCP+md5; xpyftpdlib = times better than pyftpdlib's figure for",
        "the same scenario (>1 = better; for ms and MiB, lower is better).",
    ]
    lines += [f"note: {n}" for n in results.notes]
    ceiling = results.get(TCP_MD5)
    titles = section_titles(plan)
    for section, title in titles.items():
        figs = [f for f in results.figures.values() if f.section == section and f.samples]
        if not figs:
            continue
        lines += ["", title]
        if section == "memory":
            lines += _memory_rows(results, figs)
            continue
        lines.append(
            f"  {'':48} {'median':>9} {'':7} {'[min-max]':<19} {'xceiling':>8} {'xpyftpdlib':>10}"
        )
        for fig in figs:
            x_ceiling = (
                _times(fig.median / ceiling.median) if ceiling and fig.unit == "MB/s" else ""
            )
            peer = results.get(_peer_key(fig.key, "pyftpdlib"))
            x_peer = _times(fig.better_than(peer)) if peer and peer is not fig else ""
            spread = f"[{_num(fig.min)}-{_num(fig.max)}]"
            lines.append(
                f"  {fig.label:<48} {_num(fig.median):>9} {fig.unit:<7} {spread:<19}"
                f" {x_ceiling:>8} {x_peer:>10}"
            )
    lines += ["", "Targets (ratios of medians from this run; memory uses the worst run)"]
    for t in targets(results, plan):
        lines.append(f"  {t.verdict}  {t.goal:<66} {t.shown:>10}  ({t.detail})")
    return "\n".join(lines)


def _memory_rows(results: Results, figs: list[Figure]) -> list[str]:
    rows = [f"  {'':48} {'peak':>9} {'added':>9}     [min-max added]"]
    for fig in figs:
        if not fig.key.endswith(".peak"):
            continue
        added = results.get(fig.key.removesuffix(".peak") + ".added")
        if added is None:
            continue
        rows.append(
            f"  {fig.label:<48} {_num(fig.median):>5} MiB {_num(added.median):>5} MiB"
            f"     [{_num(added.min)}-{_num(added.max)}]"
        )
    return rows


def to_json(
    results: Results, plan: Plan, machine: dict[str, Any], date: str, wall: float
) -> dict[str, Any]:
    return {
        "date": date,
        "mode": plan.name,
        "wall_seconds": round(wall, 1),
        "machine": machine,
        "plan": asdict(plan),
        "units": {"MB": 10**6, "MiB": 2**20},
        "notes": results.notes,
        "figures": [f.to_json() for f in results.figures.values() if f.samples],
        "targets": [
            {
                "goal": t.goal,
                "verdict": t.verdict,
                "value": None if t.ratio is None else round(t.ratio, 4),
                "threshold": t.threshold,
                "detail": t.detail,
            }
            for t in targets(results, plan)
        ],
    }


def write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", "utf-8")
