"""A command's work over one login, or several with --jobs: the layer under every ftpc command.

A Session holds the connection, the reporter and the listing the user last saw. The
command line makes one per command; `ftpc batch` and the shell keep one for a whole
script, so every line shares one login and one summary.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from pathlib import Path

from ftpc.client import Client
from ftpc.files import GetResult, PutResult
from ftpc.plan import Item, Plan
from ftpc.report import Progress, Reporter
from ftpc.state import ListingState, MemoryState
from shared.cli import Failed, exit_code_for
from shared.errors import FtpError, LocalFileError, ProtocolError, RequestError, TransportError
from shared.protocol import MAX_INLINE

UNIT_FILES = 64
UNIT_BYTES = 8 << 20
"""With --jobs, small files go to a connection in units this large, to be pipelined there."""

Work = Callable[[Client, list[Item], int, set[int]], None]
"""(client, unit, job, settled): moves a unit's files, adding each settled index to `settled`."""


class Session:
    """One login (more with --jobs), one reporter, and the last listing seen."""

    def __init__(
        self,
        connect: Callable[[], Client],
        reporter: Reporter,
        state: ListingState | MemoryState,
    ) -> None:
        self._connect = connect
        self.reporter = reporter
        self.state = state
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        """The session's connection, made (or made again, after a drop) when first needed."""
        if self._client is None or not self._client.connected:
            self._client = self._connect()
        return self._client

    def open(self) -> Client:
        """Log in now (if not yet), so that a bad password fails before anything else."""
        return self.client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- outcomes --------------------------------------------------------------

    def mark(self) -> tuple[int, int]:
        """Where the tally stands before a command: (errors, outcomes)."""
        t = self.reporter.tally
        return len(t.errors), t.ok + t.skipped + t.failed

    def failures_since(self, mark: tuple[int, int]) -> None:
        """Raise, with the first one's exit code, if anything failed after `mark`."""
        t = self.reporter.tally
        errors = t.errors[mark[0] :]
        if not errors:
            return
        item, first = errors[0]
        total = t.ok + t.skipped + t.failed - mark[1]
        if total == 1:
            raise Failed(str(first), exit_code_for(first))
        raise Failed(
            f"{len(errors)} of {total} files failed; the first, {item}: {first}",
            exit_code_for(first),
        )

    def refuse(self, op: str, plan: Plan) -> None:
        for what, exc in plan.refused:
            self.reporter.failure(op, what, exc)
        for what, why in plan.left_out:
            self.reporter.skip(op, what, why)

    # --- put -------------------------------------------------------------------

    def put(self, plan: Plan, conflict: str, jobs: int) -> None:
        """Create the plan's folders, then upload its files, over `jobs` connections."""
        self.reporter.plan(len(plan.items), plan.total, len(plan.refused))
        self.refuse("put", plan)
        if not plan.items:
            return
        client = self.client
        for folder in plan.folders:
            try:
                if client.mkdir(folder, parents=True):
                    self.reporter.note("mkdir", name=folder, text=f"created folder {folder}")
            except RequestError as exc:
                self.reporter.failure("mkdir", folder, exc)
        units = _put_units(plan.items) if jobs > 1 else [plan.items]
        self._run(units, jobs, self._put_unit(conflict))

    def _put_unit(self, conflict: str) -> Work:
        reporter = self.reporter

        def work(client: Client, unit: list[Item], job: int, settled: set[int]) -> None:
            waiting: defaultdict[Path, deque[int]] = defaultdict(deque)
            for i, item in enumerate(unit):
                waiting[item.local].append(i)

            def start(path: Path, name: str, size: int) -> Progress:
                return reporter.start("put", name, size, job)

            def result(path: Path, outcome: PutResult | FtpError) -> None:
                i = waiting[path].popleft()
                settled.add(i)
                reporter.outcome("put", unit[i].remote, outcome, job)

            client.put_many(
                [i.local for i in unit],
                [i.remote for i in unit],
                on_conflict=conflict,
                on_start=start,
                on_result=result,
            )

        return work

    # --- get -------------------------------------------------------------------

    def get(self, plan: Plan, conflict: str, jobs: int) -> None:
        """Make the plan's local folders, then download its files over `jobs` connections."""
        self.reporter.plan(len(plan.items), plan.total, len(plan.refused))
        self.refuse("get", plan)
        for folder in plan.folders:
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.reporter.failure("get", folder, LocalFileError(f"{folder}: {exc.strerror}"))
        if not plan.items:
            return
        units = [[item] for item in plan.items] if jobs > 1 else [plan.items]
        self._run(units, jobs, self._get_unit(conflict))

    def _get_unit(self, conflict: str) -> Work:
        reporter = self.reporter

        def work(client: Client, unit: list[Item], job: int, settled: set[int]) -> None:
            for i, item in enumerate(unit):
                progress = reporter.start("get", item.remote, item.size, job)
                outcome: GetResult | FtpError
                try:
                    # Into the folder (which exists): the file keeps its name there.
                    outcome = client.get(
                        item.remote, item.local.parent, on_conflict=conflict, on_progress=progress
                    )
                except (RequestError, LocalFileError) as exc:
                    if not client.connected:
                        raise
                    outcome = exc
                settled.add(i)
                reporter.outcome("get", item.remote, outcome, job)

        return work

    # --- running units over connections ---------------------------------------

    def _run(self, units: Sequence[list[Item]], jobs: int, work: Work) -> None:
        """Run `work` on each unit; with jobs > 1, over that many connections at once.

        A connection that fails ends its job: the files of its unit that were not settled
        are reported failed, and the other jobs take the remaining units.
        """
        if jobs <= 1 or len(units) <= 1:
            self._run_unit(self.client, units[0] if units else [], 0, work)
            for unit in units[1:]:
                self._run_unit(self.client, unit, 0, work)
            return
        todo: queue.SimpleQueue[list[Item]] = queue.SimpleQueue()
        for unit in units:
            todo.put(unit)
        first = self.client  # connect (and ask for a password) before any thread starts

        def job(number: int) -> None:
            try:
                client = first if number == 0 else self._connect()
            except FtpError as exc:
                self.reporter.note("job-failed", job=number, text=f"job {number}: {exc}")
                return
            try:
                while True:
                    try:
                        unit = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        self._run_unit(client, unit, number, work)
                    except (TransportError, ProtocolError):
                        return
            finally:
                if client is not first:
                    client.close()

        threads = [
            threading.Thread(target=job, args=(n,), name=f"ftpc-job-{n}", daemon=True)
            for n in range(min(jobs, len(units)))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lost = TransportError("not attempted: every connection failed")
        with contextlib.suppress(queue.Empty):
            while True:
                for item in todo.get_nowait():
                    self.reporter.failure("transfer", item.remote, lost)

    def _run_unit(self, client: Client, unit: list[Item], job: int, work: Work) -> None:
        settled: set[int] = set()
        try:
            work(client, unit, job, settled)
        except (TransportError, ProtocolError) as exc:
            for i, item in enumerate(unit):
                if i not in settled:
                    self.reporter.failure("transfer", item.remote, exc)
            raise


def _put_units(items: list[Item]) -> list[list[Item]]:
    """Small files in runs of up to UNIT_FILES or UNIT_BYTES; each larger file alone."""
    units: list[list[Item]] = []
    run: list[Item] = []
    run_bytes = 0
    for item in items:
        if item.size > MAX_INLINE:
            units.append([item])
            continue
        if len(run) >= UNIT_FILES or run_bytes + item.size > UNIT_BYTES:
            units.append(run)
            run, run_bytes = [], 0
        run.append(item)
        run_bytes += item.size
    if run:
        units.append(run)
    return units
