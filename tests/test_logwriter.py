"""The daemon's log goes through a queue to a writer thread that writes many records at once."""

from __future__ import annotations

import io
import logging
import queue
import sys

import pytest

from ftpd import logwriter
from ftpd.logwriter import SERVE_FORMAT, InProcessQueueHandler, LogWriter, ServeFormatter


class CountingStream(io.StringIO):
    """A stream that counts its writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


class Collecting(logging.Handler):
    """A handler that is not a stream handler: it gets each record by itself."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def record(message: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("ftpd.test", level, __file__, 1, message, args, None)


def test_records_that_arrive_together_are_written_with_one_write_and_one_flush() -> None:
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    LogWriter([handler]).write([record("put name=%s", f"f{i}") for i in range(500)])
    assert (stream.writes, stream.flushes) == (1, 1)
    assert stream.getvalue() == "".join(f"INFO put name=f{i}\n" for i in range(500))


def test_each_handler_gets_the_records_at_or_above_its_level() -> None:
    stream = CountingStream()
    warnings = logging.StreamHandler(stream)
    warnings.setLevel(logging.WARNING)
    everything = Collecting()
    errors = Collecting(logging.ERROR)
    batch = [record("a"), record("b", level=logging.WARNING), record("c", level=logging.ERROR)]
    LogWriter([warnings, everything, errors]).write(batch)
    assert stream.getvalue() == "b\nc\n"
    assert everything.messages == ["a", "b", "c"]
    assert errors.messages == ["c"]


def test_a_record_that_cannot_be_formatted_is_reported_and_the_others_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    LogWriter([handler]).write([record("one"), record("bytes=%d", "x"), record("three")])
    assert stream.getvalue() == "one\nthree\n"
    assert "--- Logging error ---" in capsys.readouterr().err  # as StreamHandler.emit does


def test_a_write_that_fails_is_reported_like_a_stream_handler_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = CountingStream()
    stream.close()
    LogWriter([logging.StreamHandler(stream)]).write([record("lost")])
    assert "--- Logging error ---" in capsys.readouterr().err


def test_stop_writes_what_is_queued_and_ends_the_thread(
    bare_root: logging.Logger,
) -> None:
    stream = CountingStream()
    logging.getLogger().addHandler(logging.StreamHandler(stream))
    logging.getLogger().setLevel(logging.INFO)
    writer = logwriter.BackgroundLog(linger=60.0)  # nothing is written before stop
    log = logging.getLogger("ftpd.test.writer")
    for i in range(100):
        log.info("line %d", i)
    writer.stop()
    assert not writer.writer._thread.is_alive()
    assert stream.getvalue() == "".join(f"line {i}\n" for i in range(100))
    assert stream.writes == 1


def test_exception_records_are_formatted_with_their_traceback_by_the_writer(
    bare_root: logging.Logger,
) -> None:
    root = logging.getLogger()
    out = io.StringIO()
    mine = logging.StreamHandler(out)
    mine.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(mine)
    root.setLevel(logging.INFO)
    log = logging.getLogger("ftpd.test.writer")
    writer = logwriter.BackgroundLog()
    assert [type(h) for h in root.handlers] == [InProcessQueueHandler]

    def fail() -> None:
        raise ValueError("boom in the session thread")

    try:
        fail()
    except ValueError:
        log.exception("internal error peer=%s user=%s", "127.0.0.1:5", "alice")
    try:
        raise KeyError("second")
    except KeyError:
        log.error("cannot commit uploads peer=%s", "p", exc_info=True)
    log.info("put user=%s bytes=%d seconds=%.3f", "ü", 12, 0.5)
    log.info("no args, 100%")
    writer.stop()
    text = out.getvalue()
    assert "ERROR ftpd.test.writer internal error peer=127.0.0.1:5 user=alice\n" in text
    assert "Traceback (most recent call last)" in text
    assert "in fail\n" in text and "ValueError: boom in the session thread" in text
    assert "KeyError: 'second'" in text
    assert "INFO ftpd.test.writer put user=ü bytes=12 seconds=0.500" in text
    assert "no args, 100%" in text


def test_the_queued_record_is_the_record_itself() -> None:
    records: queue.SimpleQueue[object] = queue.SimpleQueue()
    handler = InProcessQueueHandler(records)
    logger = logging.getLogger("ftpd.test.direct")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        try:
            raise OSError(5, "I/O error")
        except OSError:
            logger.exception("x=%s", "y")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    queued = records.get_nowait()
    assert isinstance(queued, logging.LogRecord)
    assert queued.args == ("y",) and queued.exc_info is not None
    formatted = logging.Formatter().format(queued)
    assert formatted.startswith("x=y\nTraceback") and "OSError: [Errno 5] I/O error" in formatted


@pytest.mark.parametrize("datefmt", [None, "%H:%M"])
def test_the_serve_formatter_writes_what_logging_formatter_writes(datefmt: str | None) -> None:
    """The same text within one second, across seconds, back in time, and with a traceback
    or a stack."""
    ours, standard = ServeFormatter(), logging.Formatter(SERVE_FORMAT, datefmt)
    ours.datefmt = datefmt
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    for created in (1_700_000_000.001, 1_700_000_000.999, 1_700_000_001.5, 1_699_999_999.25):
        for extra in (
            {"exc_info": None},
            {"exc_info": exc_info},
            {"exc_info": None, "sinfo": "Stack (most recent call last):"},
        ):
            r = logging.LogRecord(
                "ftpd.t", logging.WARNING, "f", 1, "put %s %d%%", ("a", 5), **extra
            )
            r.created, r.msecs = created, int((created - int(created)) * 1000) + 0.0
            theirs = logging.makeLogRecord(r.__dict__)  # each formats a fresh record
            assert ours.format(r) == standard.format(theirs)
