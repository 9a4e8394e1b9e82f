"""What one benchmark run measures: sizes, counts and repetitions, full or quick."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

MIB = 1 << 20
MB = 10**6
"""Throughput is reported in MB/s with MB = 10^6 bytes; sizes are powers of two."""

SCENARIOS = ("ceiling", "big", "small", "concurrent", "login")
"""`--only` picks among these; the memory figures come with the `big` scenario."""

FAST_DIGEST = "xxh3-128"
"""The faster digest ftpd negotiates; the `big` scenario measures ftpd with it too. Its
figures' keys end in `.xxh3-128` (`ftpd.big.up.xxh3-128`, `ftpd.big.down.xxh3-128`)."""


@dataclass(frozen=True)
class Plan:
    """Everything that differs between a full run and a CI smoke run."""

    name: str
    runs: int
    big_size: int
    small_count: int
    small_size: int
    clients: int
    client_size: int
    list_files: int
    login_samples: int
    slow_login_samples: int
    scenarios: tuple[str, ...] = SCENARIOS

    def with_options(self, runs: int | None, only: list[str] | None) -> Plan:
        return replace(
            self,
            runs=runs if runs is not None else self.runs,
            scenarios=tuple(s for s in SCENARIOS if not only or s in only),
        )

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Plan:
        return cls(**{**obj, "scenarios": tuple(obj["scenarios"])})

    @property
    def big_label(self) -> str:
        return _size_label(self.big_size)

    @property
    def client_label(self) -> str:
        return _size_label(self.client_size)


def _size_label(size: int) -> str:
    if size >= 1 << 30 and size % (1 << 30) == 0:
        return f"{size >> 30} GiB"
    return f"{size / MIB:g} MiB"


FULL = Plan(
    name="full",
    runs=3,
    big_size=1 << 30,
    small_count=2000,
    small_size=4096,
    clients=32,
    client_size=32 * MIB,
    list_files=100,
    login_samples=10,
    slow_login_samples=2,
)

QUICK = Plan(
    name="quick",
    runs=1,
    big_size=64 * MIB,
    small_count=200,
    small_size=4096,
    clients=8,
    client_size=4 * MIB,
    list_files=100,
    login_samples=3,
    slow_login_samples=1,
)
