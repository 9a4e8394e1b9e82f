"""What the command line and the shell show: listings, progress bars, transfer lines.

tqdm lives here and only here; `ftpc.client` reports progress through callbacks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from ftpc.client import Client, GetResult, PutResult
from ftpc.listing import Entry
from shared.errors import FtpError

Echo = Callable[[str], None]


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_listing(entries: Sequence[Entry]) -> str:
    if not entries:
        return "(no files)"
    width = len(str(len(entries)))
    lines = [f"{'#':>{width}}  {'SIZE':>10}  {'MODIFIED':16}  {'MD5':32}  NAME"]
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.mtime))
        lines.append(f"{e.index:>{width}}  {human_size(e.size):>10}  {when:16}  {e.md5}  {e.name}")
    return "\n".join(lines)


def listing_json(entries: Sequence[Entry]) -> str:
    return json.dumps([asdict(e) for e in entries], ensure_ascii=False, indent=2)


class Bars:
    """A bar per file, and an overall bar when there are several files."""

    def __init__(self, enabled: bool, echo: Echo, files: int, total_bytes: int) -> None:
        self.enabled = enabled
        self._echo = echo
        self.overall = (
            tqdm(
                total=total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"{files} files",
                position=0,
                leave=False,
            )
            if enabled and files > 1
            else None
        )

    def echo(self, line: str) -> None:
        if self.enabled:
            tqdm.write(line)
        else:
            self._echo(line)

    @contextmanager
    def file(self, name: str, size: int) -> Iterator[Callable[[int], None] | None]:
        if not self.enabled:
            yield None
            return
        bar = tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=name,
            position=1 if self.overall else 0,
            leave=False,
        )

        def advance(n: int) -> None:
            bar.update(n)
            if self.overall is not None:
                self.overall.update(n)

        try:
            yield advance
        finally:
            bar.close()

    def close(self) -> None:
        if self.overall is not None:
            self.overall.close()


def put_line(r: PutResult) -> str:
    if r.existed:
        return f"{r.name}: already there with {r.digest} {r.checksum}, nothing sent"
    return (
        f"put {r.name}: {human_size(r.size)} in {r.seconds:.2f}s, {r.digest} {r.checksum} verified"
    )


def get_line(r: GetResult) -> str:
    return (
        f"got {r.name} -> {r.path}: {human_size(r.size)} in {r.seconds:.2f}s,"
        f" {r.digest} {r.checksum} verified"
    )


def put_files(
    client: Client, paths: Sequence[Path], overwrite: bool, bars_on: bool, echo: Echo
) -> None:
    """One file gets its own bar; several are pipelined under one overall bar.

    A file that is refused does not stop the others; the failures are summed up at the end.
    """
    sizes = [p.stat().st_size if p.is_file() else 0 for p in paths]
    bars = Bars(bars_on, echo, len(paths), sum(sizes))
    failures: list[tuple[Path, FtpError]] = []
    try:
        if len(paths) == 1:
            with bars.file(paths[0].name, sizes[0]) as advance:
                result = client.put(paths[0], overwrite=overwrite, on_progress=advance)
            bars.echo(put_line(result))
            return

        def report(path: Path, outcome: PutResult | FtpError) -> None:
            if isinstance(outcome, FtpError):
                failures.append((path, outcome))
                bars.echo(f"failed {path.name}: {outcome}")
            else:
                bars.echo(put_line(outcome))

        overall = bars.overall.update if bars.overall is not None else None
        client.put_many(paths, overwrite=overwrite, on_progress=overall, on_result=report)
    finally:
        bars.close()
    if failures:
        path, first = failures[0]
        raise type(first)(
            f"{len(failures)} of {len(paths)} files failed; the first, {path.name}: {first}"
        )


def get_files(
    client: Client,
    names: Sequence[str],
    dest: Path | None,
    overwrite: bool,
    bars_on: bool,
    echo: Echo,
    sizes: dict[str, int],
) -> None:
    bars = Bars(bars_on, echo, len(names), sum(sizes.get(n, 0) for n in names))
    try:
        for name in names:
            with bars.file(name, sizes.get(name, 0)) as advance:
                result = client.get(name, dest, overwrite=overwrite, on_progress=advance)
            bars.echo(get_line(result))
    finally:
        bars.close()
