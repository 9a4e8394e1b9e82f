"""Figures: the samples of one measurement and their median, min and max."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """One line of the table: `section` groups lines, `impl` says who is measured.

    `better` is "higher" (MB/s, files/s) or "lower" (ms, MiB), so that ratios can always be
    printed as "how many times better", whichever way the unit points.
    """

    key: str
    section: str
    impl: str
    label: str
    unit: str
    better: str = "higher"
    samples: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.samples.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def better_than(self, other: Figure) -> float:
        """How many times better this median is than `other`'s (>1 means better)."""
        if self.better == "higher":
            return self.median / other.median if other.median else float("inf")
        return other.median / self.median if self.median else float("inf")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "section": self.section,
            "impl": self.impl,
            "label": self.label,
            "unit": self.unit,
            "better": self.better,
            "samples": [round(s, 4) for s in self.samples],
        }
        if self.samples:
            out.update(median=round(self.median, 4), min=round(self.min, 4), max=round(self.max, 4))
        return out


class Results:
    """All figures of a run, in the order they were first measured, plus skip notes."""

    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.notes: list[str] = []

    def figure(
        self, key: str, section: str, impl: str, label: str, unit: str, better: str = "higher"
    ) -> Figure:
        """The figure under `key`, created on first use so runs can add samples in turn."""
        if key not in self.figures:
            self.figures[key] = Figure(key, section, impl, label, unit, better)
        return self.figures[key]

    def get(self, key: str) -> Figure | None:
        fig = self.figures.get(key)
        return fig if fig is not None and fig.samples else None

    def note(self, text: str) -> None:
        """Something the reader must know, such as a peer that was skipped and why."""
        self.notes.append(text)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Results:
        """The figures and notes of a run saved by `bench.report.to_json`."""
        results = cls()
        for f in record["figures"]:
            fig = results.figure(
                f["key"], f["section"], f["impl"], f["label"], f["unit"], f["better"]
            )
            fig.samples.extend(f["samples"])
        results.notes.extend(record.get("notes", []))
        return results
