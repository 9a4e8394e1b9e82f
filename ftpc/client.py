"""The Python API. It knows nothing of click or tqdm: progress is a callback.

    with Client("127.0.0.1", 8021, "alice", "secret") as c:
        entries = c.list()
        c.put("report.pdf", on_progress=print)
        c.get("report.pdf", "downloads/")

Every failure is one of the typed errors in `shared.errors`.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import scramp

from ftpc.files import (
    GetResult,
    PutResult,
    checksum_of,
    create_part,
    open_regular,
    publish,
)
from ftpc.listing import Entry, decode_listing, is_index, resolve
from ftpc.trust import TlsOptions, choose_mechanism, open_tls
from shared import digests
from shared.digests import MD5, sum_field, sum_fields
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
from shared.ratelimit import TokenBucket
from shared.wire import Channel
from shared.writeback import WriteBehind

DEFAULT_PORT = 8021
MAX_LISTING = 256 << 20
"""A listing body larger than this is refused: 100,000 entries take about 20 MB."""

Progress = Callable[[int], None]
"""Called with the number of bytes moved since the previous call."""


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
        limit_rate: int | None = None,
    ) -> None:
        """With `tls`, the link is encrypted and the login bound to the server's certificate.

        `limit_rate` caps the bytes per second this client sends and reads (None or 0:
        no cap). A server drops transfers slower than its minimum rate (4 KiB/s by
        default), so a cap below that makes long transfers fail.
        """
        self.host, self.port = host, port
        self.user: str | None = None
        self.perms = ""
        self.last_listing: list[Entry] | None = None
        self.digest = digest
        throttle = TokenBucket(limit_rate) if limit_rate else None  # a bad rate fails first
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
        self.chan = Channel(sock, Role.CLIENT, throttle=throttle)
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

    def login(self, user: str, password: str) -> None:
        """SCRAM-SHA-256: the password never leaves this process, and the server proves itself."""
        try:
            mechanism, binding = choose_mechanism(self.hello["mechanisms"], self.chan.sock)
        except UntrustedServer:
            self._drop()
            raise
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
                local = checksum_of(f, algo)
                fields = sum_fields(algo, local)
                self.chan.send("put", name=name, size=size, overwrite=overwrite, **fields)
                reply = self._reply("ok", "continue")
                trailer = False
            if reply.type == "ok":
                seconds = time.monotonic() - started
                return PutResult(name, size, self._sum(reply), True, seconds, algo)
            # The kernel sends the file while a second thread hashes it: two cores at work.
            hasher = digests.FileHasher(f.fileno(), size, algo)
            try:
                self.chan.send("data", size=size)
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
                self.chan.send("done", **{sum_field(algo): value})
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
            fd, tmp = create_part(target)
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
            publish(Path(tmp), target, overwrite)
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
