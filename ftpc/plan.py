"""What a put or get will move: local arguments, globs, lists and trees, turned into pairs.

Planning reads only the local disk (put) or listings (get), so that `--dry-run` can show
the plan and a bad argument is reported before the first byte moves.
"""

from __future__ import annotations

import glob
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ftpc.client import Client
from shared.errors import BadName, FtpError, LocalFileError, NotFound
from shared.listing import Entry
from shared.names import MAX_DEPTH, check_folder, check_name, join_path, split_path


@dataclass(frozen=True)
class Item:
    """One file to move: the local path and the remote path."""

    local: Path
    remote: str
    size: int


@dataclass
class Plan:
    """Files to move in order, folders to create first, and what was refused on the way."""

    items: list[Item] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    refused: list[tuple[str, FtpError]] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    """(what, why): entries a tree walk does not transfer, such as links."""

    @property
    def total(self) -> int:
        return sum(i.size for i in self.items)


def read_list(source: str) -> list[str]:
    """Paths from a file, one per line ("-" is standard input); blank lines are ignored."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text("utf-8")
    except OSError as exc:
        raise LocalFileError(f"cannot read the list {source}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise LocalFileError(f"the list {source} is not UTF-8 text") from exc
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def expand(arguments: Iterable[str]) -> Iterator[str]:
    """Each argument as is, or the paths its glob pattern matches when it names nothing.

    A shell has usually expanded globs already; this serves quoted patterns, batch
    scripts and Windows. A pattern that matches nothing is kept, to be reported.
    """
    for arg in arguments:
        if glob.has_magic(arg) and not os.path.lexists(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if matches:
                yield from matches
                continue
        yield arg


def plan_put(arguments: Iterable[str], to: str, recursive: bool) -> Plan:
    """Local files and (with `recursive`) trees, each stored under the folder `to`.

    A tree keeps its shape below a folder named like its top; links inside it are left
    out (as rsync does without --links), and so are devices and FIFOs.
    """
    to = check_folder(to)
    plan = Plan()
    needed: set[str] = {to} if to else set()
    for arg in expand(arguments):
        path = Path(arg)
        try:
            st = os.stat(path)
        except OSError as exc:
            plan.refused.append((arg, LocalFileError(f"cannot read {arg}: {exc.strerror}")))
            continue
        if stat.S_ISDIR(st.st_mode):
            if not recursive:
                plan.refused.append((arg, LocalFileError(f"{arg} is a folder: use -r")))
                continue
            top = path.resolve().name if path.name in ("", ".", "..") else path.name
            _plan_tree(plan, path, _remote(plan, arg, to, top), needed)
            continue
        if not stat.S_ISREG(st.st_mode):
            plan.refused.append((arg, LocalFileError(f"{arg} is not a regular file")))
            continue
        remote = _remote(plan, arg, to, path.name)
        if remote is not None:
            plan.items.append(Item(path, remote, st.st_size))
    plan.folders = sorted(needed)
    return plan


def _remote(plan: Plan, arg: str, folder: str, name: str) -> str | None:
    try:
        return join_path(folder, check_name(name))
    except BadName as exc:
        plan.refused.append((arg, exc))
        return None


def _plan_tree(plan: Plan, top: Path, remote: str | None, needed: set[str]) -> None:
    if remote is None:
        return
    needed.add(remote)
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(dirpath)
        rel = here.relative_to(top)
        base = join_path(remote, "/".join(rel.parts)) if rel.parts else remote
        if base.count("/") >= MAX_DEPTH - 1:
            plan.refused.append((str(here), BadName(f"{here} is nested too deeply")))
            dirnames.clear()
            continue
        kept = []
        for d in sorted(dirnames):
            if (here / d).is_symlink():
                plan.left_out.append((str(here / d), "a link"))
                continue
            folder = _remote(plan, str(here / d), base, d)
            if folder is not None:
                needed.add(folder)
                kept.append(d)
        dirnames[:] = kept
        for f in sorted(filenames):
            path = here / f
            try:
                st = os.lstat(path)
            except OSError as exc:
                plan.refused.append((str(path), LocalFileError(f"cannot read {path}: {exc}")))
                continue
            if not stat.S_ISREG(st.st_mode):
                why = "a link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                plan.left_out.append((str(path), why))
                continue
            name = _remote(plan, str(path), base, f)
            if name is not None:
                plan.items.append(Item(path, name, st.st_size))


def plan_get(
    client: Client, names: Iterable[str], entries: dict[str, Entry], dest: Path, recursive: bool
) -> Plan:
    """Remote files and (with `recursive`) folders, each landing under the local `dest`.

    `entries` holds what is already known of some names (from the listing they were
    picked in); others are looked up. A folder lands as `dest/<its name>/...`.
    """
    plan = Plan()
    for name in names:
        try:
            entry = entries.get(name) or client.stat(name)
        except NotFound as exc:
            plan.refused.append((name, exc))
            continue
        if not entry.is_folder:
            plan.items.append(Item(dest / entry.name, entry.path, entry.size))
            continue
        if not recursive:
            plan.refused.append((name, NotFound(f"{name!r} is a folder: use get -r")))
            continue
        parent = split_path(entry.path)[0]
        plan.folders.append(str(dest / entry.name))
        for found in client.walk(entry.path):
            rel = found.path[len(parent) + 1 :] if parent else found.path
            local = dest.joinpath(*rel.split("/"))
            if found.is_folder:
                plan.folders.append(str(local))
            else:
                plan.items.append(Item(local, found.path, found.size))
    return plan
