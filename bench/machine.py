"""What the figures were measured on: they mean little without the machine next to them."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any


def _first(path: str, prefix: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip() if ":" in line else line.strip()
    except OSError:
        pass
    return "unknown"


def _filesystem(path: Path) -> str:
    """Type and device of the filesystem holding `path` (the bench's temp dir)."""
    best, found = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                device, mount, fstype = line.split()[:3]
                if str(path).startswith(mount) and len(mount) >= len(best):
                    best, found = mount, f"{fstype} on {device} ({mount})"
    except OSError:
        pass
    return found


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


BENCH_OUTPUTS = (":(exclude)bench/results", ":(exclude)docs/bench.png")
"""What the bench itself writes: the previous run's results are not a change to the code."""


def code_version(repo: Path) -> str:
    """The commit measured, marked "+changes" when the working tree differs from it (the
    bench's own outputs aside)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"]
        dirty = subprocess.run(
            [*status, "--", ".", *BENCH_OUTPUTS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def machine_info(tmp: Path) -> dict[str, Any]:
    ram_kib = _first("/proc/meminfo", "MemTotal").split()[0]
    os_name = _first("/etc/os-release", "PRETTY_NAME=").split("=", 1)[-1].strip('"')
    return {
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "ram_gib": round(int(ram_kib) / 2**20, 1) if ram_kib.isdigit() else None,
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "tmp_filesystem": _filesystem(tmp),
        "ftpdrop": _version("ftpdrop"),
        "commit": code_version(Path(__file__).resolve().parent.parent),
        "pyftpdlib": _version("pyftpdlib"),
    }


def describe(m: dict[str, Any]) -> str:
    return (
        f"{m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}, "
        f"Linux {m['kernel']}, Python {m['python']}; temp files on {m['tmp_filesystem']};"
        f" ftpd commit {m['commit']}"
    )


class CpuWatch:
    """CPU time the rest of the machine used while the bench ran: the figures' noise floor.

    Busy time from /proc/stat, less the CPU time of the bench and its (reaped) children.
    Kernel work done for the bench, such as writeback, counts as "other" too, so a few
    percent is normal; much more means someone else was using the machine. Steal (time the
    hypervisor gave our virtual CPUs to other guests) is part of "other" and is also shown
    on its own: it is the one share that nothing on this machine can explain.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.cpu = _cpu_fields()
        self.own = _own_cpu_seconds()
        self.load = os.getloadavg()[0]

    def summary(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        cpu = _cpu_fields()
        other = (_busy(cpu) - _busy(self.cpu)) - (_own_cpu_seconds() - self.own)
        steal = cpu["steal"] - self.cpu["steal"]
        capacity = wall * (os.cpu_count() or 1)
        return {
            "load_1min_at_start": round(self.load, 2),
            "load_1min_at_end": round(os.getloadavg()[0], 2),
            "other_cpu_seconds": round(max(0.0, other), 1),
            "other_cpu_share": round(max(0.0, other) / capacity, 3),
            "steal_cpu_seconds": round(max(0.0, steal), 1),
            "steal_cpu_share": round(max(0.0, steal) / capacity, 3),
        }


def _cpu_fields() -> dict[str, float]:
    """The first line of /proc/stat, in seconds summed over all CPUs."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    with open("/proc/stat", encoding="ascii") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return {name: n / tick for name, n in zip(names, ticks, strict=True)}


def _busy(cpu: dict[str, float]) -> float:
    """All CPUs' non-idle time (user, nice, system, irq, softirq, steal)."""
    return sum(v for k, v in cpu.items() if k not in ("idle", "iowait"))


def _own_cpu_seconds() -> float:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def describe_load(load: dict[str, Any]) -> str:
    share = load["other_cpu_share"]
    text = f"other processes and the kernel used {share:.0%} of the CPU during the run"
    if "steal_cpu_share" in load:  # runs saved before it was measured have no such field
        text += f", the hypervisor's steal {load['steal_cpu_share']:.0%} of it"
    text += f" (load average {load['load_1min_at_start']} at start)"
    return text + ("; figures are disturbed" if share > 0.1 else "")
