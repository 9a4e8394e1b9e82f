"""The daemon's log, written by a background thread, all the records that have arrived in one
write.

A session thread only queues its record. Handing each record to a writer thread woke that
thread once per record, and the thread then formatted it and wrote and flushed it alone: at
a few thousand small uploads a second, a fifth of the server's time went to the log, and
much of it to the two threads passing the GIL back and forth. The writer here wakes for a
record, waits LINGER for more to arrive, and writes them all with one write and one flush.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

LINGER = 0.05
"""How long the writer collects records after the first: how late a line may reach the log."""

_STOP = object()


class InProcessQueueHandler(logging.Handler):
    """Queue each record as it is, for the writer thread to format.

    logging's QueueHandler formats and copies every record in the logging thread, so that it
    could be pickled to another process; at 5,000 uploads a second that was a tenth of a
    session thread's time. This queue never leaves the process, and ftpd's log arguments
    are strings and numbers, which cannot change before the writer formats them.
    """

    def __init__(self, records: queue.SimpleQueue[object]) -> None:
        super().__init__()
        self.records = records

    def handle(self, record: logging.LogRecord) -> bool:
        """Handler.handle without the handler's lock: the queue is safe to share."""
        verdict = self.filter(record)
        if verdict:
            self.records.put(verdict if isinstance(verdict, logging.LogRecord) else record)
        return bool(verdict)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.put(record)


class LogWriter:
    """Writes queued records to `handlers` from a thread of its own."""

    def __init__(self, handlers: Sequence[logging.Handler], linger: float = LINGER) -> None:
        self.handlers = list(handlers)
        self.linger = linger
        self.records: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ftpd-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is still queued, without waiting out the linger, then end the thread."""
        self._stopping.set()
        self.records.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self.records.get()
            batch = [first]
            if first is not _STOP:
                self._stopping.wait(self.linger)
            while True:
                try:
                    batch.append(self.records.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in batch if isinstance(r, logging.LogRecord)]
            if records:
                try:
                    self.write(records)
                except Exception:  # a handler or filter that raises must not end the log
                    traceback.print_exc(file=sys.stderr)
            if _STOP in batch:
                return

    def write(self, records: list[logging.LogRecord]) -> None:
        """Hand each handler its records: a plain StreamHandler gets those at or above its
        level in one write and one flush; any other handler (a file handler that opens
        lazily or rotates, a subclass with its own emit) gets each through its own handle."""
        for handler in self.handlers:
            if type(handler) is logging.StreamHandler:
                wanted = [r for r in records if r.levelno >= handler.level and handler.filter(r)]
                if wanted:
                    _write_stream(handler, wanted)
                continue
            for record in records:
                if record.levelno >= handler.level:
                    handler.handle(record)


def _write_stream(handler: logging.StreamHandler[Any], records: list[logging.LogRecord]) -> None:
    """What StreamHandler.emit does for each record, with one write and one flush for all."""
    lines = []
    for record in records:
        try:
            lines.append(handler.format(record) + handler.terminator)
        except RecursionError:
            raise
        except Exception:
            handler.handleError(record)  # a record that cannot be formatted is reported alone
    if not lines:
        return
    handler.acquire()
    try:
        handler.stream.write("".join(lines))
        handler.flush()
    except RecursionError:
        raise
    except Exception:
        handler.handleError(records[0])
    finally:
        handler.release()


SERVE_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class ServeFormatter(logging.Formatter):
    """SERVE_FORMAT exactly as logging.Formatter writes it, in a third of the time: the date
    and time of day are worked out once a second instead of once a record, and a record
    without a traceback is put together with one f-string."""

    def __init__(self) -> None:
        super().__init__(SERVE_FORMAT)
        self._stamp: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        return f"{record.asctime} {record.levelname} {record.message}"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second, stamp = self._stamp  # one tuple: a thread never sees half an update
        if second != int(record.created):
            second = int(record.created)
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._stamp = (second, stamp)
        return self.default_msec_format % (stamp, record.msecs)


class BackgroundLog:
    """The root logger's handlers moved behind a queue and a LogWriter, until `stop` puts
    them back (so that what is logged after, or by a second `serve` in the same process,
    still reaches them)."""

    def __init__(self, linger: float = LINGER) -> None:
        self.root = logging.getLogger()
        self.writer = LogWriter(self.root.handlers, linger)
        self.queue_handler = InProcessQueueHandler(self.writer.records)
        for handler in self.writer.handlers:
            self.root.removeHandler(handler)
        self.root.addHandler(self.queue_handler)
        self.writer.start()

    def stop(self) -> None:
        """Hand logging back to the original handlers, then write what is still queued
        (records logged meanwhile go straight to the handlers: none is lost)."""
        for handler in self.writer.handlers:
            self.root.addHandler(handler)
        self.root.removeHandler(self.queue_handler)
        self.writer.stop()
