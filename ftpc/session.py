"""A command's work over one login, or several with --jobs: the layer under every ftpc command.

A Session holds the connection, the reporter and the listing the user last saw. The
command line makes one per command; `ftpc batch` and the shell keep one for a whole
script, so every line shares one login and one summary.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ftpc.client import Client
from ftpc.files import GetResult, PutResult
from ftpc.plan import Item, Plan
from ftpc.report import Progress, Reporter
from ftpc.state import ListingState, MemoryState
from shared.cli import Failed, exit_code_for
from shared.errors import FtpError, LocalFileError, ProtocolError, RequestError, TransportError
from shared.names import FAIL
from shared.protocol import MAX_INLINE

UNIT_FILES = 64
UNIT_BYTES = 8 << 20
"""With --jobs, small files go to a connection in units this large, to be pipelined there."""

MAX_RETRY_WAIT = 60.0
"""Backoff doubles from --retry-wait up to this many seconds."""

Work = Callable[[Client, list[Item], int, set[int]], None]
"""(client, unit, job, settled): moves a unit's files, adding each settled index to `settled`."""


@dataclass(frozen=True)
class Transfer:
    """How a put or get moves its files."""

    conflict: str = FAIL
    jobs: int = 1
    resume: bool = False
    retries: int = 0
    retry_wait: float = 1.0

    @property
    def resumable(self) -> bool:
        """A transfer that will be retried must be resumable, or a retry starts from zero."""
        return self.resume or self.retries > 0


class Session:
    """One login (more with --jobs), one reporter, and the last listing seen."""

    def __init__(
        self,
        connect: Callable[[], Client],
        reporter: Reporter,
        state: ListingState | MemoryState,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect = connect
        self._sleep = sleep
        self.parallel = True
        """False where `connect` cannot make more connections (the shell's one login):
        --jobs then runs its units one after another."""
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

    def put(self, plan: Plan, how: Transfer) -> None:
        """Create the plan's folders, then upload its files, over `how.jobs` connections."""
        self.reporter.plan("put", len(plan.items), plan.total, len(plan.refused))
        self.refuse("put", plan)
        if not plan.items:
            return
        client = self.client
        for folder in plan.folders:
            try:
                if client.mkdir(folder, parents=True):
                    self.reporter.note(
                        "mkdir", name=folder, created=True, text=f"created folder {folder}"
                    )
            except RequestError as exc:
                self.reporter.failure("mkdir", folder, exc)
        units = _put_units(plan.items) if how.jobs > 1 else [plan.items]
        self._run(units, how, self._put_unit(how))

    def _put_unit(self, how: Transfer) -> Work:
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
                on_conflict=how.conflict,
                on_start=start,
                on_result=result,
                resume=how.resumable,
            )

        return work

    # --- get -------------------------------------------------------------------

    def get(self, plan: Plan, how: Transfer) -> None:
        """Make the plan's local folders, then download its files over `how.jobs` connections."""
        self.reporter.plan("get", len(plan.items), plan.total, len(plan.refused))
        self.refuse("get", plan)
        for folder in plan.folders:
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.reporter.failure("get", folder, LocalFileError(f"{folder}: {exc.strerror}"))
        if not plan.items:
            return
        units = [[item] for item in plan.items] if how.jobs > 1 else [plan.items]
        self._run(units, how, self._get_unit(how))

    def _get_unit(self, how: Transfer) -> Work:
        reporter = self.reporter

        def work(client: Client, unit: list[Item], job: int, settled: set[int]) -> None:
            for i, item in enumerate(unit):
                progress = reporter.start("get", item.remote, item.size, job)
                outcome: GetResult | FtpError
                if not item.local.parent.is_dir():
                    # Its folder could not be made (a local file has that name): given that
                    # path, a download would land on the file instead.
                    settled.add(i)
                    problem = LocalFileError(f"{item.local.parent} is not a folder")
                    reporter.outcome("get", item.remote, problem, job)
                    continue
                try:
                    # Into the folder (which exists): the file keeps its name there.
                    outcome = client.get(
                        item.remote,
                        item.local.parent,
                        on_conflict=how.conflict,
                        on_progress=progress,
                        resume=how.resumable,
                    )
                except (RequestError, LocalFileError) as exc:
                    if not client.connected:
                        raise
                    outcome = exc
                settled.add(i)
                reporter.outcome("get", item.remote, outcome, job)

        return work

    # --- running units over connections ---------------------------------------

    def _run(self, units: Sequence[list[Item]], how: Transfer, work: Work) -> None:
        """Run `work` on each unit; with jobs > 1, over that many connections at once.

        A connection that fails is retried (`how.retries` times, with backoff); after
        that its job ends, the files of its unit that were not settled are reported
        failed, and the other jobs take the remaining units.
        """
        if how.jobs <= 1 or len(units) <= 1 or not self.parallel:
            for unit in units:
                self._run_unit(lambda: self.client, unit, 0, work, how)
            return
        todo: queue.SimpleQueue[list[Item]] = queue.SimpleQueue()
        for unit in units:
            todo.put(unit)
        self.open()  # log in (and ask for a password) before any thread starts

        def job(number: int) -> None:
            own: list[Client] = []

            def connect() -> Client:
                if number == 0:
                    return self.client
                if own and own[-1].connected:
                    return own[-1]
                own.append(self._connect())
                return own[-1]

            try:
                connect()  # a job that cannot connect takes no unit: the others do them
                while True:
                    try:
                        unit = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        self._run_unit(connect, unit, number, work, how)
                    except (TransportError, ProtocolError):
                        return
            except FtpError as exc:
                self.reporter.note(
                    "job-failed",
                    job=number,
                    code=exc.code,
                    message=str(exc),
                    text=f"job {number} stopped: {exc}",
                )
            finally:
                for client in own:
                    client.close()

        threads = [
            threading.Thread(target=job, args=(n,), name=f"ftpc-job-{n}", daemon=True)
            for n in range(min(how.jobs, len(units)))
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

    def _run_unit(
        self, connect: Callable[[], Client], unit: list[Item], job: int, work: Work, how: Transfer
    ) -> None:
        pending = unit
        for attempt in range(how.retries + 1):
            settled: set[int] = set()
            try:
                work(connect(), pending, job, settled)
                return
            except (TransportError, ProtocolError) as exc:
                pending = [item for i, item in enumerate(pending) if i not in settled]
                if not pending:
                    return  # every file is settled; the next unit reconnects
                if attempt == how.retries:
                    for item in pending:
                        self.reporter.failure("transfer", item.remote, exc)
                    raise
                wait = min(MAX_RETRY_WAIT, how.retry_wait * 2**attempt)
                self.reporter.note(
                    "retry",
                    job=job,
                    attempt=attempt + 1,
                    wait=wait,
                    message=str(exc),
                    text=f"{exc}; retry {attempt + 1} of {how.retries} in {wait:g}s",
                )
                self._sleep(wait)
            except FtpError as exc:
                # No connection to be had (busy, login refused), or a local failure that
                # dropped it: every file not yet settled is reported, none is lost.
                for i, item in enumerate(pending):
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
