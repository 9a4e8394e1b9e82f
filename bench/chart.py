"""The bar chart: one panel per scenario, medians with min-max whiskers."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed, and none is there in CI

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.axes import Axes

from bench.ceiling import TCP_MD5
from bench.plan import FAST_DIGEST, Plan
from bench.report import MEMORY_BUDGET_MIB, section_titles
from bench.stats import Figure, Results

COLORS = {"ceiling": "#7f7f7f", "ftpd": "#1f77b4", "pyftpdlib": "#ff7f0e", "vsftpd": "#2ca02c"}
FAST_COLOR = "#aec7e8"
"""ftpd verified with FAST_DIGEST: a lighter shade of ftpd's blue."""
MEMORY_TITLE = f"MiB added during one transfer (peak - baseline); budget {MEMORY_BUDGET_MIB} MiB"


def draw(results: Results, plan: Plan, title: str, path: Path) -> None:
    titles = section_titles(plan)
    panels = []
    for section, section_title in titles.items():
        figs = [f for f in results.figures.values() if f.section == section and f.samples]
        if section == "memory":
            figs, section_title = [f for f in figs if f.key.endswith(".added")], MEMORY_TITLE
        if figs:
            panels.append((section, section_title, figs))
    if not panels:
        return
    rows = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(15, 3.2 * rows + 1), squeeze=False)
    ceiling = results.get(TCP_MD5)
    for ax, (section, section_title, figs) in zip(axes.flat, panels, strict=False):
        _panel(ax, section_title, figs)
        if section == "memory":
            ax.axvline(MEMORY_BUDGET_MIB, color="red", linestyle="--", linewidth=1, label="budget")
            ax.legend(fontsize=7, loc="lower right")
        elif ceiling is not None and figs[0].unit == "MB/s" and section != "ceiling":
            ax.axvline(ceiling.median, color="black", linestyle="--", linewidth=1, label="ceiling")
            ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _color(f: Figure) -> str:
    if f.key.endswith(f".{FAST_DIGEST}"):
        return FAST_COLOR
    return COLORS.get(f.impl, "#9467bd")


def _panel(ax: Axes, title: str, figs: list[Figure]) -> None:
    """Horizontal bars, one per figure; hatched bars are a peer's transfer plus md5, light
    blue ones ftpd verified with FAST_DIGEST instead of md5."""
    medians = [f.median for f in figs]
    bars = ax.barh(
        [f.label for f in figs],
        medians,
        xerr=[[f.median - f.min for f in figs], [f.max - f.median for f in figs]],
        color=[_color(f) for f in figs],
        capsize=3,
    )
    for bar, f in zip(bars, figs, strict=True):
        if f.key.endswith(".verified"):
            bar.set_hatch("//")
    labels = [f"{m:,.0f}" if m >= 10 else f"{m:.1f}" for m in medians]
    ax.bar_label(bars, labels=labels, fontsize=7, padding=4)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    unit = figs[0].unit
    ax.set_xlabel(unit + (" (MB = 10^6 bytes)" if unit == "MB/s" else ""))
    ax.tick_params(axis="y", labelsize=8)
    if min(medians) > 0 and max(medians) / min(medians) > 50:
        ax.set_xscale("log")  # a 600,000-iteration login would flatten every other bar
