"""The Python API. It knows nothing of click or tqdm: progress is a callback.

    with Client("127.0.0.1", 8021, "alice", "secret") as c:
        entries = c.list()
        c.put("report.pdf", on_progress=print)
        c.get("report.pdf", "downloads/")
        c.mkdir("reports/2026", parents=True)
        c.put("q3.pdf", "reports/2026/q3.pdf", on_conflict="rename")

Every failure is one of the typed errors in `shared.errors`.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import scramp

from ftpc.files import GetResult, PutResult
from ftpc.listing import Entry, decode_listing, is_index, resolve
from ftpc.trust import TlsOptions, choose_mechanism, open_tls
from shared import digests
from shared.digests import MD5
from shared.errors import (
    AuthFailed,
    BadRequest,
    FtpError,
    NotFound,
    ProtocolError,
    RemoteProtocolError,
    StaleListing,
    TransportError,
    UntrustedServer,
    VersionMismatch,
    error_from_wire,
)
from shared.names import (
    MAX_DEPTH,
    check_folder,
    check_path,
    conflict_fields,
    conflict_mode,
    split_path,
)
from shared.protocol import PROTOCOL_VERSION, Message, Role
from shared.ratelimit import TokenBucket
from shared.wire import Channel

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

    def _require(self, capability: str, what: str) -> None:
        """Refuse, before sending, what an older server would take as a protocol error."""
        if capability not in self.hello.get("capabilities", []):
            raise BadRequest(f"this server cannot do {what} (no {capability!r} capability)")

    def _require_for(self, path: str, mode: dict[str, object] | None = None) -> None:
        if "/" in path:
            self._require("folders", "folders")
        if mode and "on_conflict" in mode:
            self._require("on-conflict", f"--on-conflict {mode['on_conflict']}")
        if mode and mode.get("resume"):
            self._require("resume", "resumable transfers")

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

    def list(self, folder: str = "") -> list[Entry]:
        """The files and folders in `folder` (default: the top), each with its 1-based index;
        also kept as `last_listing`. Each entry's `path` is its full path."""
        folder = check_folder(folder)
        if folder:
            self._require("folders", "folders")
        self.last_listing = self._fetch_listing(folder)
        return self.last_listing

    def _fetch_listing(self, folder: str = "") -> list[Entry]:
        self.chan.send("ls", **({"name": folder} if folder else {}))
        header = self._reply("listing")
        if header["size"] > MAX_LISTING:
            self._drop()
            raise RemoteProtocolError(f"listing of {header['size']} bytes is too large")
        body = bytearray()
        self.chan.recv_body(body.extend)
        try:
            entries = decode_listing(bytes(body), folder)
            if len(entries) != header["count"]:
                raise RemoteProtocolError("listing count does not match its entries")
        except RemoteProtocolError:
            self._drop()  # a server that lies in a listing is not talked to any further
            raise
        return entries

    def resolve(self, tokens: Sequence[str], seen: list[Entry] | None = None) -> list[str]:
        """Names for tokens that are names, or numbers from `seen` (default: `last_listing`).

        Numbers are checked against one fresh listing, which does not replace
        the listing the user saw.
        """
        if not any(is_index(t) for t in tokens):
            return [check_path(t) for t in tokens]
        seen = seen if seen is not None else self.last_listing
        if seen is None:
            raise StaleListing("numbers refer to a listing, but none was seen: run ls first")
        folder = split_path(seen[0].path)[0] if seen else ""
        current = self._fetch_listing(folder)
        return [resolve(t, seen, current) for t in tokens]

    def walk(self, folder: str) -> Iterator[Entry]:
        """Every file and folder below `folder`, each folder before what it holds."""
        stack = [check_folder(folder)]
        while stack:
            current = stack.pop()
            entries = self._fetch_listing(current)
            for entry in entries:
                yield entry
            for entry in reversed(entries):
                if entry.is_folder and entry.path.count("/") < MAX_DEPTH - 1:
                    stack.append(entry.path)

    def stat(self, path: str) -> Entry:
        """The listing entry of one stored file or folder."""
        folder, leaf = split_path(check_path(path))
        for entry in self._fetch_listing(folder):
            if entry.name == leaf:
                return entry
        raise NotFound(f"no file named {path!r}")

    # --- upload ----------------------------------------------------------------

    def put(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        overwrite: bool = False,
        on_conflict: str | None = None,
        on_progress: Progress | None = None,
        resume: bool = False,
    ) -> PutResult:
        """Upload one file to the path `name` (default: the file's own name, at the top).

        If the name is taken by other content, `on_conflict` decides: fail (the default,
        raising Exists), overwrite, rename (stored as name.1.ext, ...) or skip. Identical
        content is never sent again, whatever the mode. The checksum travels as a trailer
        so the file is read once.

        With `resume`, the server keeps what it received if the connection drops, and a
        later resumable put of the same file sends only the rest, once the checksums of
        the bytes already there agree (`PutResult.resumed_from` says where it started).
        """
        from ftpc.upload import put_file  # it builds on this module

        started = time.monotonic()
        path = Path(path)
        name = check_path(name if name is not None else path.name)
        mode: dict[str, object] = dict(conflict_fields(conflict_mode(overwrite, on_conflict)))
        if resume:
            mode["resume"] = True
        self._require_for(name, mode)
        return put_file(self, path, name, mode, on_progress, started)

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
        names: Sequence[str] | None = None,
        *,
        overwrite: bool = False,
        on_conflict: str | None = None,
        on_progress: Progress | None = None,
        on_result: Callable[[Path, PutResult | FtpError], None] | None = None,
        on_start: Callable[[Path, str, int], Progress] | None = None,
        resume: bool = False,
    ) -> list[PutResult | FtpError]:
        """Upload many files, small ones pipelined so the server commits them in groups.

        `names` are the paths to store them under (default: each file's own name).
        Returns one outcome per path, in order: a PutResult, or the error that refused
        that file (exists, quota, unreadable, ...); the other files go on regardless.
        `on_result(path, outcome)` is called as each one is settled; `on_start(path, name,
        size)`, if given, as each one starts, and returns that file's progress callback.
        `resume` makes the large files resumable (see `put`); small ones are sent whole.
        """
        from ftpc.pipeline import put_many  # it builds on this module

        if names is not None and len(names) != len(paths):
            raise ValueError("put_many needs one name per path")
        return list(
            put_many(
                self,
                paths,
                names,
                conflict=conflict_mode(overwrite, on_conflict),
                on_progress=on_progress,
                on_result=on_result,
                on_start=on_start,
                resume=resume,
            )
        )

    def mkdir(self, path: str, *, parents: bool = False) -> bool:
        """Create a folder; with `parents`, also those above it, and an existing one is fine.
        Returns whether it was created."""
        self._require("folders", "folders")
        self.chan.send("mkdir", name=check_path(path), **({"parents": True} if parents else {}))
        return bool(self._reply("ok").get("created"))

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
        on_conflict: str | None = None,
        on_progress: Progress | None = None,
        resume: bool = False,
    ) -> GetResult:
        """Download into a temporary file beside `dest`; link it into place once verified.

        `dest` may be a directory (the file keeps its name) or a file path. If a local
        file is in the way, a copy with the same md5 counts as done; otherwise
        `on_conflict` decides: fail (the default, LocalFileExists), overwrite, rename
        (name.1.ext, ...) or skip.

        With `resume`, the bytes land in `.NAME.ftpc-part` beside the target, which an
        interrupted download leaves behind; the next resumable get asks only for the rest,
        once the server confirms the checksum of the bytes already here.
        """
        from ftpc.download import get_file  # it builds on this module

        started = time.monotonic()
        name = check_path(name)
        mode = conflict_mode(overwrite, on_conflict)
        return get_file(self, name, dest, mode, on_progress, resume, started)

    def remove(self, name: str) -> str:
        """Delete a stored file, or an empty folder."""
        self.chan.send("rm", name=check_path(name))
        return str(self._reply("ok").get("name", name))
