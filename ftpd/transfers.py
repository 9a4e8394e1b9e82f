"""The file verbs of a session: ls, get, rm, mkdir, put, upload and uploads, each verified
with a digest.

A request may name its digest (`hello.digests`; md5 when it names none). The
checksum travels in `md5` for md5 and in `sum` for the others.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from ftpd.batch import CommitBatch
from ftpd.storage import Entry, Storage, Upload
from shared import digests
from shared.digests import MD5, sum_field, sum_fields
from shared.errors import (
    BadRequest,
    ChecksumMismatch,
    Exists,
    FtpError,
    InternalError,
    LocalFileError,
    PermissionDenied,
    RemoteProtocolError,
    RequestError,
    TransportError,
)
from shared.listing import encode_listing
from shared.names import FAIL, OVERWRITE, SKIP, check_path
from shared.protocol import Message
from shared.wire import Channel, Landing

if TYPE_CHECKING:
    from ftpd.auth import Account


_quoted = json.JSONEncoder(ensure_ascii=False).encode
"""A name as one JSON string in a log line. Made once: json.dumps builds an encoder per call
when given an option."""


class _UploadSink:
    """Writes body bytes to staging; after a write error, keeps draining to stay in frame."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.error: FtpError | None = None

    def __call__(self, chunk: memoryview) -> None:
        if self.error is not None:
            return
        try:
            self.upload.write(chunk)
        except (FtpError, OSError) as exc:
            self._failed(exc)

    def _failed(self, exc: FtpError | OSError) -> None:
        """Keep the first write error for the reply; the client hears an OSError as internal."""
        if isinstance(exc, FtpError):
            self.error = exc
        else:
            self.error = InternalError(f"cannot write the upload: {exc.strerror}")


class _UploadLanding(_UploadSink, Landing):
    """Receives a large body straight into the upload's writer (see Upload.begin_body);
    after a write error, drains the rest into a scratch buffer to stay in frame."""

    def __init__(self, upload: Upload) -> None:
        super().__init__(upload)
        self._scratch: memoryview | None = None

    def space(self) -> memoryview:
        if self.error is None:
            try:
                return self.upload.space()
            except (FtpError, OSError) as exc:
                self._failed(exc)
        if self._scratch is None:
            self._scratch = memoryview(bytearray(1 << 16))
        return self._scratch

    def filled(self, n: int) -> None:
        if self.error is None:
            self.upload.filled(n)


def requested_digest(msg: Message) -> str:
    """The digest a request names, checked: this server must have it."""
    name: str = msg.get("digest", MD5)
    if name not in digests.available():
        raise BadRequest(
            f"this server has no digest {name!r}; it offers {', '.join(digests.available())}"
        )
    return name


def claimed_sum(msg: Message, digest: str) -> str | None:
    """The checksum a message carries, in the field its digest calls for."""
    right = sum_field(digest)
    wrong = "sum" if right == "md5" else "md5"
    if wrong in msg.fields:
        raise BadRequest(f"with digest {digest!r} the checksum goes in {right!r}, not {wrong!r}")
    return msg.get(right)


@dataclass(frozen=True)
class Settled:
    """A put answered without storing anything: the name is taken and stays as it is."""

    name: str
    size: int
    checksum: str
    existed: bool = False
    """The stored file has exactly the bytes offered."""
    skipped: bool = False
    """Other (or unchecked) content is stored, and the request asked to skip it."""


def _conflict(msg: Message) -> str:
    """The request's conflict mode; `overwrite: true` is the older spelling of overwrite."""
    mode: str = msg.get("on_conflict", FAIL)
    if msg.get("overwrite"):
        if mode not in (FAIL, OVERWRITE):
            raise BadRequest(f"'overwrite' contradicts on_conflict {mode!r}")
        mode = OVERWRITE
    return mode


class TransferVerbs:
    """Mixed into Session: everything that lists, moves or deletes files."""

    storage: Storage
    chan: Channel
    batch: CommitBatch
    account: Account | None
    log: logging.Logger
    peer: str
    user: str

    def _log_transfer(
        self,
        op: str,
        name: str,
        size: int,
        checksum: str,
        started: float,
        result: str,
        digest: str = MD5,
    ) -> None:
        self.log.info(
            "%s user=%s peer=%s name=%s bytes=%d %s=%s seconds=%.3f result=%s",
            op,
            self.user,
            self.peer,
            _quoted(name),
            size,
            digest,
            checksum or "-",
            time.monotonic() - started,
            result,
        )

    def do_ls(self, msg: Message) -> None:
        entries = self.storage.list(msg.get("name", ""))
        body = encode_listing((e.name, e.size, e.mtime, e.md5, e.kind) for e in entries)
        self.chan.send("listing", size=len(body), count=len(entries))
        self.chan.send_raw(body)

    def do_mkdir(self, msg: Message) -> None:
        path, created = self.storage.mkdir(msg["name"], msg.get("parents", False))
        self.log.info(
            "mkdir user=%s peer=%s name=%s result=%s",
            self.user,
            self.peer,
            _quoted(path),
            "ok" if created else "existed",
        )
        self.chan.send("ok", name=path, created=created)

    def do_get(self, msg: Message) -> None:
        started = time.monotonic()
        try:
            digest = requested_digest(msg)
            opened = self.storage.open(msg["name"], digest)
            with opened as (f, entry):
                start = _resume_point(msg, f, entry.size, digest)
                f.seek(start)
                self.chan.send(
                    "file",
                    name=entry.name,
                    size=entry.size - start,
                    mtime=entry.mtime,
                    **({"offset": start} if start else {}),
                    **sum_fields(digest, opened.checksum),
                )
                self.chan.send_body(f, entry.size - start)
        except RequestError as exc:
            self._log_transfer("get", msg["name"], 0, "", started, exc.code)
            raise
        except (TransportError, LocalFileError) as exc:
            # Out of frame now: the session must end.
            self._log_transfer(
                "get", entry.name, entry.size, opened.checksum, started, "network", digest
            )
            raise TransportError(str(exc)) from exc
        self._log_transfer("get", entry.name, entry.size, opened.checksum, started, "ok", digest)

    def do_rm(self, msg: Message) -> None:
        name = self.storage.remove(msg["name"])
        self.log.info(
            "rm user=%s peer=%s name=%s result=ok",
            self.user,
            self.peer,
            _quoted(name),
        )
        self.chan.send("ok", name=name)

    def _begin(
        self,
        name: str,
        size: int,
        conflict: str,
        digest: str,
        claimed: str | None,
        resume: bool = False,
    ) -> Upload | Settled:
        """The checks of put, upload and each file of uploads: an Upload to receive into, or
        the answer when the name is taken and nothing is to be stored (identical content, or
        skip)."""
        name = check_path(name)
        assert self.account is not None
        may_replace = "d" in self.account.perms
        found = self.storage.target(name)  # a missing folder is refused here
        existing = self.storage.existing_sum(name, digest, found)
        if existing is not None:
            if claimed is not None and existing == (size, claimed):
                # Another session may have published it a moment ago and not yet synced the
                # folder: sync it, so that this 'existed' promises no more than an 'ok'.
                self.storage.sync_folder_of(name)
                return Settled(name, size, claimed, existed=True)
            if claimed is None and (conflict != OVERWRITE or not may_replace):
                # Identical content is done in every mode: the client's checksum decides.
                raise Exists(f"{name!r} already exists; send its checksum to compare")
            if conflict == SKIP:
                return Settled(name, existing[0], existing[1], skipped=True)
            if conflict == FAIL:
                raise Exists(f"{name!r} already exists with other content")
            if conflict == OVERWRITE and not may_replace:
                raise PermissionDenied(
                    f"user {self.user!r} may not replace {name!r}: that needs the d permission"
                )
        if conflict == SKIP or (conflict == OVERWRITE and not may_replace):
            conflict = FAIL  # a file that appears meanwhile is refused, never replaced
        return self.storage.begin_upload(
            name,
            size,
            conflict,
            owner=self.account.name,
            quota=self.account.quota,
            digest=digest,
            resumable=resume,
            md5=claimed if digest == MD5 else None,
            found=found,
        )

    def _settled_reply(self, settled: Settled, digest: str, started: float) -> dict[str, object]:
        result = "existed" if settled.existed else "skipped"
        self._log_transfer("put", settled.name, 0, settled.checksum, started, result, digest)
        return {
            "name": settled.name,
            "size": settled.size,
            "existed": settled.existed,
            **({"skipped": True} if settled.skipped else {}),
            **sum_fields(digest, settled.checksum),
        }

    def do_put(self, msg: Message) -> None:
        started = time.monotonic()
        claimed: str | None = None
        try:
            digest = requested_digest(msg)
            claimed = claimed_sum(msg, digest)
            resume = bool(msg.get("resume"))
            upload = self._begin(msg["name"], msg["size"], _conflict(msg), digest, claimed, resume)
            if isinstance(upload, Settled):
                self.chan.send("ok", **self._settled_reply(upload, digest, started))
                return
            entry = self._receive(upload, claimed)
        except RequestError as exc:
            self._log_transfer("put", msg["name"], 0, claimed or "", started, exc.code)
            raise
        except TransportError:
            self._log_transfer("put", msg["name"], 0, claimed or "", started, "network")
            raise
        self._log_transfer("put", entry.name, entry.size, upload.checksum, started, "ok", digest)
        fields = sum_fields(digest, upload.checksum)
        self.chan.send("ok", name=entry.name, size=entry.size, existed=False, **fields)

    def do_upload(self, msg: Message) -> None:
        """A whole small file in one frame. Its reply waits in the batch, so that uploads
        sent back to back are committed together; the body is read whatever the verdict."""
        claimed = msg.get("md5", msg.get("sum"))  # exactly one: the message table says so
        self._stage_all(msg, [[msg["name"], msg["size"], claimed]])

    def do_uploads(self, msg: Message) -> None:
        """Many small files in one frame, each handled and answered as its own `upload`
        would be: one frame to parse and one body to read, instead of one per file."""
        self._stage_all(msg, msg["files"])

    def _stage_all(self, msg: Message, files: list[list[Any]]) -> None:
        """Read the frame's whole body (at most MAX_INLINE bytes, the sum of the files'
        sizes: the decoder checked both with the header), then stage each file in turn, or
        refuse every one of them for what the frame itself asks."""
        started = time.monotonic()
        body = bytearray()
        self.chan.recv_body(body.extend)
        try:
            digest = requested_digest(msg)
            claimed_sum(msg, digest)  # an `upload` carries its checksum in its digest's field
            conflict = _conflict(msg)
        except RequestError as exc:
            for name, _, claimed in files:
                self._refuse(name, claimed, started, exc)
            return
        view = memoryview(body)
        end = 0
        for name, size, claimed in files:
            start, end = end, end + size
            self._stage(name, size, conflict, digest, claimed, view[start:end], started)

    def _refuse(
        self, name: str, claimed: str, started: float, exc: FtpError, digest: str = MD5
    ) -> None:
        """Answer one pipelined file with an error, in its turn."""
        self._log_transfer("put", name, 0, claimed, started, exc.code, digest)
        self.batch.add_reply("error", started, **exc.wire_fields())

    def _stage(
        self,
        name: str,
        size: int,
        conflict: str,
        digest: str,
        claimed: str,
        data: memoryview,
        started: float,
    ) -> None:
        """One pipelined file, whole in memory: staged for the next group commit, or
        answered in its turn if it is refused or already stored."""
        try:
            upload = self._begin(name, size, conflict, digest, claimed)
        except RequestError as exc:
            self._refuse(name, claimed, started, exc, digest)
            return
        if isinstance(upload, Settled):
            self.batch.add_reply("ok", started, **self._settled_reply(upload, digest, started))
            return
        try:
            sink = _UploadSink(upload)
            sink(data)
            error = sink.error or _mismatch(upload, claimed)
        except BaseException:
            upload.abort()
            raise
        if error is not None:
            upload.abort()
            self._refuse(upload.name, claimed, started, error, digest)
            return
        self.batch.add_upload(upload, started)

    def _receive(self, upload: Upload, claimed: str | None) -> Entry:
        """Stream the body into staging; publish it only if the checksum matches."""
        try:
            if upload.offset:
                self.chan.send("continue", offset=upload.offset, prefix=upload.prefix)
            else:
                self.chan.send("continue")
            header = self.chan.expect("data")
            start = header.get("offset", 0)
            if start not in (0, upload.offset):
                raise RemoteProtocolError(
                    f"'data' starts at byte {start}; this upload can start at 0 or {upload.offset}"
                )
            if start == 0 and upload.offset:
                upload.restart()  # the client's file is not the one whose start we kept
            if header["size"] != upload.size - start:
                raise RemoteProtocolError(
                    f"'data' has {header['size']} bytes, the rest of the file is"
                    f" {upload.size - start}"
                )
            sink = _UploadLanding(upload) if upload.begin_body() else _UploadSink(upload)
            self.chan.recv_body(sink)
            if claimed is None:
                trailer = self.chan.expect("done")
                claimed = claimed_sum(trailer, upload.digest)
                if claimed is None:
                    field = sum_field(upload.digest)
                    raise RemoteProtocolError(
                        f"the 'done' of a {upload.digest} put needs {field!r}"
                    )
            error = sink.error or _mismatch(upload, claimed)
            if error is not None:
                raise error
            return upload.commit()
        except TransportError:
            upload.suspend()  # kept for a resume if the client asked for one
            raise
        except BaseException:
            upload.abort()
            raise


def _resume_point(msg: Message, f: BinaryIO, size: int, digest: str) -> int:
    """Where a download starts: the client's offset if its prefix checksum matches ours."""
    offset: int = msg.get("offset", 0)
    prefix = msg.get("prefix")
    if not offset or prefix is None or offset > size:
        return 0
    hasher, got = digests.hash_prefix(f.fileno(), offset, digest)
    return offset if got == offset and hasher.hexdigest() == prefix else 0


def _mismatch(upload: Upload, claimed: str) -> ChecksumMismatch | None:
    if upload.checksum == claimed:
        return None
    return ChecksumMismatch(
        f"the bytes received hash to {upload.checksum} ({upload.digest}), not {claimed}:"
        " nothing was stored"
    )
