"""How things read for people: sizes, listing tables, one line per transfer.

Progress bars are in `ftpc.report`; `ftpc.client` reports progress through callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ftpc.files import GetResult, PutResult
from ftpc.listing import Entry


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
        if e.is_folder:
            lines.append(f"{e.index:>{width}}  {'-':>10}  {when:16}  {'-':32}  {e.name}/")
            continue
        lines.append(f"{e.index:>{width}}  {human_size(e.size):>10}  {when:16}  {e.md5}  {e.name}")
    return "\n".join(lines)


def _resumed(offset: int) -> str:
    return f" (resumed at {human_size(offset)})" if offset else ""


def put_line(r: PutResult) -> str:
    if r.existed:
        return f"{r.name}: already there with {r.digest} {r.checksum}, nothing sent"
    if r.skipped:
        return f"skipped {r.name}: a different file is stored there ({r.digest} {r.checksum})"
    return (
        f"put {r.name}: {human_size(r.size)}{_resumed(r.resumed_from)} in {r.seconds:.2f}s,"
        f" {r.digest} {r.checksum} verified"
    )


def get_line(r: GetResult) -> str:
    if r.existed:
        return f"{r.name}: {r.path} already has md5 {r.checksum}, nothing fetched"
    if r.skipped:
        return f"skipped {r.name}: {r.path} exists with other content"
    return (
        f"got {r.name} -> {r.path}: {human_size(r.size)}{_resumed(r.resumed_from)}"
        f" in {r.seconds:.2f}s,"
        f" {r.digest} {r.checksum} verified"
    )
