"""The Python API. It knows nothing of click or tqdm: progress is a callback.

    with Client("127.0.0.1", 8021, "alice", "secret") as c:
        entries = c.list()
        c.put("report.pdf", on_progress=print)
        c.get("report.pdf", "downloads/")

Every failure is one of the typed errors in `shared.errors`.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import ssl
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import scramp

from ftpc.listing import Entry, decode_listing, is_index, resolve
from ftpc.trust import TlsOptions, open_tls
from shared import digests
from shared.digests import MD5
from shared.errors import (
    AuthFailed,
    BadRequest,
    ChecksumMismatch,
    Exists,
    FtpError,
    LocalFileError,
    LocalFileExists,
    ProtocolError,
    RemoteProtocolError,
    StaleListing,
    TransportError,
    UntrustedServer,
    VersionMismatch,
    error_from_wire,
)
from shared.names import check_name
from shared.protocol import PROTOCOL_VERSION, Message, Role
from shared.wire import Channel
from shared.writeback import WriteBehind

DEFAULT_PORT = 8021
MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"
CHANNEL_BINDING = "tls-server-end-point"
MAX_LISTING = 256 << 20
"""A listing body larger than this is refused: 100,000 entries take about 20 MB."""

Progress = Callable[[int], None]
"""Called with the number of bytes moved since the previous call."""


@dataclass(frozen=True)
class PutResult:
    name: str
    size: int
    checksum: str
    existed: bool
    seconds: float
    digest: str = MD5

    @property
    def md5(self) -> str:
        """The checksum, when the transfer was verified with md5 (else empty)."""
        return self.checksum if self.digest == MD5 else ""


@dataclass(frozen=True)
class GetResult:
    name: str
    path: Path
    size: int
    checksum: str
    seconds: float
    digest: str = MD5

    @property
    def md5(self) -> str:
        """The checksum, when the transfer was verified with md5 (else empty)."""
        return self.checksum if self.digest == MD5 else ""


def sum_fields(digest: str, value: str) -> dict[str, str]:
    """The request fields that carry a checksum: `md5`, or `digest` and `sum`."""
    return {"md5": value} if digest == MD5 else {"digest": digest, "sum": value}


def _checksum_of(f: BinaryIO, algo: str) -> str:
    """Checksum of an open file from the start, leaving it rewound for sending."""
    digest = digests.new(algo)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    try:
        f.seek(0)
        while n := f.readinto(buf):  # type: ignore[attr-defined]
            digest.update(view[:n])
        f.seek(0)
    except OSError as exc:
        raise LocalFileError(
            f"cannot read {getattr(f, 'name', 'the file')}: {exc.strerror}"
        ) from exc
    return digest.hexdigest()


class Client:
    """A logged-in session with one ftpd. Not thread-safe: use one per thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        user: str | None = None,
        password: str | None = None,
        *,
        timeout: float = 60.0,
        tls: TlsOptions | None = None,
        source_address: tuple[str, int] | None = None,
        digest: str = MD5,
    ) -> None:
        """With `tls`, the link is encrypted and the login bound to the server's certificate."""
        self.host, self.port = host, port
        self.user: str | None = None
        self.perms = ""
        self.last_listing: list[Entry] | None = None
        self.digest = digest
        if tls is not None:
            sock: socket.socket = open_tls(host, port, timeout, tls, source_address)
        else:
            try:
                sock = socket.create_connection(
                    (host, port), timeout=timeout, source_address=source_address
                )
            except OSError as exc:
                raise TransportError(
                    f"cannot connect to {host}:{port}: {exc.strerror or exc}"
                ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.chan = Channel(sock, Role.CLIENT)
        try:
            self.hello = self._greeting(tls is not None)
            if self.hello["version"] != PROTOCOL_VERSION:
                raise VersionMismatch(
                    f"the server speaks protocol version {self.hello['version']};"
                    f" this ftpc speaks version {PROTOCOL_VERSION}"
                )
            offered = self.hello.get("digests", [MD5])
            if digest not in offered:
                raise BadRequest(
                    f"the server does not offer digest {digest!r}; it offers {', '.join(offered)}"
                )
            digests.new(digest)  # and this side must have it too
            if user is not None:
                self.login(user, password or "")
        except BaseException:
            self.chan.close()
            raise

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Say goodbye if the link still works, then close it."""
        try:
            self.chan.send("quit")
            self._reply("ok")
        except FtpError:
            pass
        finally:
            self.chan.close()

    def _greeting(self, tls: bool) -> Message:
        """The server's hello; an `error` here (such as busy) keeps its code."""
        try:
            return self._reply("hello")
        except TransportError as exc:
            if tls or isinstance(exc, UntrustedServer):
                raise
            raise TransportError(
                f"{exc}: no greeting from {self.host}:{self.port} (if it serves TLS, use --tls)"
            ) from exc

    def _reply(self, *types: str) -> Message:
        """The final reply to a request: an `error` becomes its typed exception.

        A protocol error or a fatal error leaves the stream unusable, so the
        connection is closed before the error is raised.
        """
        try:
            msg = self.chan.recv_message()
            if msg.type not in (*types, "error"):
                raise RemoteProtocolError(f"expected {' or '.join(types)}, got {msg.type!r}")
        except (ProtocolError, TransportError):
            self._drop()
            raise
        if msg.type == "error":
            if msg.get("fatal"):
                self._drop()
            raise error_from_wire(msg["code"], msg["message"])
        return msg

    def _drop(self) -> None:
        """After a broken transfer the stream is out of frame: nothing more can be sent."""
        self.chan.close()

    # --- login -----------------------------------------------------------------

    @property
    def encrypted(self) -> bool:
        return isinstance(self.chan.sock, ssl.SSLSocket)

    def _mechanism(self) -> tuple[str, tuple[str, ssl.SSLSocket] | None]:
        """Over TLS, only the channel-bound mechanism: a relay in the middle then fails."""
        offered = self.hello["mechanisms"]
        if self.encrypted:
            if MECHANISM_PLUS not in offered:
                self._drop()
                raise UntrustedServer(
                    f"over TLS the server must offer {MECHANISM_PLUS} (channel binding), but it"
                    f" offers {', '.join(offered) or 'nothing'}: something may be relaying"
                    " the connection"
                )
            return MECHANISM_PLUS, (CHANNEL_BINDING, self.chan.sock)  # type: ignore[return-value]
        if MECHANISM not in offered:
            if MECHANISM_PLUS in offered:
                raise AuthFailed("the server only accepts logins over TLS: use --tls")
            raise AuthFailed(f"the server offers no mechanism this client knows ({MECHANISM})")
        return MECHANISM, None

    def login(self, user: str, password: str) -> None:
        """SCRAM-SHA-256: the password never leaves this process, and the server proves itself."""
        mechanism, binding = self._mechanism()
        try:
            scram = scramp.ScramClient([mechanism], user, password, channel_binding=binding)
            first = scram.get_client_first()
        except scramp.ScramException as exc:
            raise AuthFailed(f"cannot log in as {user!r}: {exc}") from exc
        self.chan.send("auth", version=PROTOCOL_VERSION, mechanism=mechanism, data=first)
        challenge = self._reply("challenge")
        try:
            scram.set_server_first(challenge["data"])
            final = scram.get_client_final()
        except scramp.ScramException as exc:
            raise AuthFailed(f"the server sent a bad login challenge: {exc}") from exc
        self.chan.send("auth-final", data=final)
        ok = self._reply("ok")
        try:
            scram.set_server_final(ok.get("data", ""))
        except scramp.ScramException as exc:
            self._drop()
            raise AuthFailed(
                "the server could not prove it knows your password: it may be an impostor"
            ) from exc
        self.user = ok.get("user", user)
        self.perms = ok.get("perms", "")

    # --- listing ---------------------------------------------------------------

    def list(self) -> list[Entry]:
        """Every stored file with its 1-based index; also kept as `last_listing`."""
        self.last_listing = self._fetch_listing()
        return self.last_listing

    def _fetch_listing(self) -> list[Entry]:
        self.chan.send("ls")
        header = self._reply("listing")
        if header["size"] > MAX_LISTING:
            self._drop()
            raise RemoteProtocolError(f"listing of {header['size']} bytes is too large")
        body = bytearray()
        self.chan.recv_body(body.extend)
        entries = decode_listing(bytes(body))
        if len(entries) != header["count"]:
            raise RemoteProtocolError("listing count does not match its entries")
        return entries

    def resolve(self, tokens: Sequence[str], seen: list[Entry] | None = None) -> list[str]:
        """Names for tokens that are names, or numbers from `seen` (default: `last_listing`).

        Numbers are checked against one fresh listing, which does not replace
        the listing the user saw.
        """
        if not any(is_index(t) for t in tokens):
            return [check_name(t) for t in tokens]
        seen = seen if seen is not None else self.last_listing
        if seen is None:
            raise StaleListing("numbers refer to a listing, but none was seen: run ls first")
        current = self._fetch_listing()
        return [resolve(t, seen, current) for t in tokens]

    # --- upload ----------------------------------------------------------------

    def put(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        overwrite: bool = False,
        on_progress: Progress | None = None,
    ) -> PutResult:
        """Upload one file; the md5 travels as a trailer so the file is read once."""
        started = time.monotonic()
        path = Path(path)
        name = check_name(name if name is not None else path.name)
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            algo = self.digest
            named = {} if algo == MD5 else {"digest": algo}
            self.chan.send("put", name=name, size=size, overwrite=overwrite, **named)
            trailer = True
            try:
                reply = self._reply("continue")
            except Exists:
                # Identical content counts as success: prove it with the local checksum.
                local = _checksum_of(f, algo)
                fields = sum_fields(algo, local)
                self.chan.send("put", name=name, size=size, overwrite=overwrite, **fields)
                reply = self._reply("ok", "continue")
                trailer = False
            if reply.type == "ok":
                seconds = time.monotonic() - started
                return PutResult(name, size, self._sum(reply), True, seconds, algo)
            # The kernel sends the file while a second thread hashes it: two cores at work.
            hasher = digests.FileHasher(f.fileno(), size, algo)
            self.chan.send("data", size=size)
            try:
                self.chan.send_body(f, size, on_sent=on_progress)
                value = hasher.result()
            except OSError as exc:
                hasher.close()
                self._drop()
                raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
            except BaseException:
                # Interrupted mid-body (even by Ctrl-C): the stream is out of frame.
                hasher.close()
                self._drop()
                raise
            if trailer:
                self.chan.send("done", **({"md5": value} if algo == MD5 else {"sum": value}))
            ok = self._reply("ok")
        if self._sum(ok) != value:
            raise ChecksumMismatch(f"server stored {algo} {self._sum(ok)}, we sent {value}")
        seconds = time.monotonic() - started
        return PutResult(name, size, value, bool(ok.get("existed")), seconds, algo)

    def _sum(self, msg: Message) -> str:
        """The checksum a reply carries, in this session's digest."""
        if self.digest == MD5:
            return str(msg.get("md5", ""))
        if msg.get("digest") != self.digest:
            self._drop()
            raise RemoteProtocolError(
                f"asked for {self.digest}, the server answered with {msg.get('digest') or 'md5'}"
            )
        return str(msg.get("sum", ""))

    def put_many(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        overwrite: bool = False,
        on_progress: Progress | None = None,
        on_result: Callable[[Path, PutResult | FtpError], None] | None = None,
    ) -> list[PutResult | FtpError]:
        """Upload many files, small ones pipelined so the server commits them in groups.

        Returns one outcome per path, in order: a PutResult, or the error that refused
        that file (exists, quota, unreadable, ...); the other files go on regardless.
        `on_result(path, outcome)` is called as each one is settled.
        """
        from ftpc.pipeline import put_many  # it builds on this module

        return list(
            put_many(self, paths, overwrite=overwrite, on_progress=on_progress, on_result=on_result)
        )

    @property
    def connected(self) -> bool:
        return self.chan.sock.fileno() != -1

    # --- download --------------------------------------------------------------

    def get(
        self,
        name: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        overwrite: bool = False,
        on_progress: Progress | None = None,
    ) -> GetResult:
        """Download into a temporary file beside `dest`; rename it only once the md5 matches.

        `dest` may be a directory (the file keeps its name) or a file path.
        """
        started = time.monotonic()
        name = check_name(name)
        target = Path(dest) if dest is not None else Path.cwd()
        if target.is_dir():
            target = target / name
        if not overwrite and os.path.lexists(target):
            raise LocalFileExists(f"{target} already exists; use --overwrite to replace it")
        algo = self.digest
        self.chan.send("get", name=name, **({} if algo == MD5 else {"digest": algo}))
        header = self._reply("file")
        if header["name"] != name:
            self._drop()
            raise RemoteProtocolError(f"asked for {name!r}, the server sent {header['name']!r}")
        try:
            fd, tmp = _create_part(target)
        except OSError as exc:
            self._drop()
            raise LocalFileError(f"cannot write in {target.parent}: {exc.strerror}") from exc
        try:
            claimed = self._sum(header)
            value = self._receive_into(fd, on_progress)
            if value != claimed:
                raise ChecksumMismatch(
                    f"{name!r} arrived with {algo} {value}, the server said {claimed}:"
                    " nothing was saved"
                )
            _publish(Path(tmp), target, overwrite)
        except OSError as exc:
            raise LocalFileError(f"cannot write {target}: {exc.strerror}") from exc
        finally:
            Path(tmp).unlink(missing_ok=True)
        seconds = time.monotonic() - started
        return GetResult(name, target, header["size"], value, seconds, algo)

    def _receive_into(self, fd: int, on_progress: Progress | None) -> str:
        """Write the body into `fd`, hashing it on the way; fsync before anyone renames it."""
        digest = digests.hasher_for_stream(self.digest)
        behind = WriteBehind(fd)
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:

                def received(chunk: memoryview) -> None:
                    digest.update(chunk)
                    rest = chunk
                    while rest:
                        rest = rest[out.write(rest) :]
                    behind.wrote(len(chunk))
                    if on_progress is not None:
                        on_progress(len(chunk))

                try:
                    self.chan.recv_body(received)
                except BaseException:
                    behind.wait()
                    self._drop()  # the rest of the body is still on the wire
                    raise
                behind.finish()
            return digest.hexdigest()
        finally:
            if isinstance(digest, digests.BackgroundHasher):
                digest.close()

    # --- delete ----------------------------------------------------------------

    def remove(self, name: str) -> str:
        self.chan.send("rm", name=check_name(name))
        return str(self._reply("ok").get("name", name))


def _create_part(target: Path) -> tuple[int, str]:
    """A fresh temporary file beside `target`, with the mode the umask gives new files."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    # Keep the temporary name within NAME_MAX (255 bytes) whatever the target's script.
    stem = target.name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    for _ in range(100):
        tmp = str(target.parent / f".{stem}.{secrets.token_hex(6)}.part")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary name")


def open_regular(path: Path) -> BinaryIO:
    """Open a local file for upload; a device or FIFO has no honest size, so refuse it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LocalFileError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb", buffering=0)


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # refuses an existing file atomically
    except FileExistsError as exc:
        raise LocalFileExists(f"{target} already exists; use --overwrite to replace it") from exc
    finally:
        tmp.unlink(missing_ok=True)
