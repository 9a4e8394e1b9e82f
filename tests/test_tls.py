"""TLS: certificates, trust (CA file, pins, first use), channel binding against a relay."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from click.testing import CliRunner

from ftpc import Client
from ftpc.cli import main as ftpc_main
from ftpc.trust import KnownHosts, TlsOptions
from ftpd.auth import UserStore
from ftpd.cli import main as ftpd_main
from ftpd.limits import Limits
from ftpd.server import FtpServer
from ftpd.tls import ServerTLS, load_server_tls, make_self_signed
from shared.certs import fingerprint, parse_fingerprint
from shared.errors import AuthFailed, TransportError, UntrustedServer
from tests.conftest import (
    ACCOUNTS,
    TEST_ITERATIONS,
    ProcessDaemon,
    assert_no_traceback,
    fake_hello,
    start_daemon,
    stop_daemon,
    wait_until,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, str]]:
    """Two self-signed pairs: the server's, and a relay's (a man in the middle)."""
    d = tmp_path_factory.mktemp("certs")
    pairs = {}
    for label in ("server", "relay"):
        cert, key = d / f"{label}-cert.pem", d / f"{label}-key.pem"
        pairs[label] = (cert, key, make_self_signed("127.0.0.1", cert, key))
    return pairs


@pytest.fixture
def tls_daemon(
    tmp_path: Path,
    users: UserStore,
    certs: dict[str, tuple[Path, Path, str]],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[FtpServer]:
    caplog.set_level(logging.INFO, logger="ftpd")
    cert, key, _ = certs["server"]
    server, thread = start_daemon(
        tmp_path / "tls-root",
        users,
        tls=load_server_tls(cert, key),
        limits=Limits(idle_timeout=10, handshake_timeout=1),
    )
    try:
        yield server
    finally:
        stop_daemon(server, thread)
    assert_no_traceback(caplog)


def options(tmp_path: Path, **kw: object) -> TlsOptions:
    return TlsOptions(known_hosts=KnownHosts(tmp_path / "known_hosts"), **kw)  # type: ignore[arg-type]


def connect(server: FtpServer, tls: TlsOptions, user: str = "alice") -> Client:
    return Client(*server.address, user, ACCOUNTS[user][0], timeout=5, tls=tls)


def test_cert_command_writes_a_pair_and_prints_its_fingerprint(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    args = ["cert", "files.example.org", "--cert", str(cert), "--key", str(key)]
    result = CliRunner().invoke(ftpd_main, args)
    assert result.exit_code == 0, result.output
    assert key.stat().st_mode & 0o777 == 0o600
    printed = result.output.split("SHA256 fingerprint: ")[1].split()[0]
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert printed == fingerprint(der)
    if shutil.which("openssl"):  # the same form openssl prints, so users can cross-check
        out = subprocess.run(
            ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip().split("=")[1] == printed
    again = CliRunner().invoke(ftpd_main, args)
    assert again.exit_code == 1 and "already exists" in again.output
    assert CliRunner().invoke(ftpd_main, [*args, "--force"]).exit_code == 0


def test_fingerprints_parse_in_every_common_form() -> None:
    canonical = ":".join(["AB"] * 32)
    for text in (canonical, "ab" * 32, "SHA256:" + canonical, "sha256 Fingerprint=" + canonical):
        assert parse_fingerprint(text) == canonical
    for bad in ("", "AB:CD", "zz" * 32, "ab" * 33):
        with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
            parse_fingerprint(bad)


def test_server_context_is_modern(certs: dict[str, tuple[Path, Path, str]]) -> None:
    cert, key, fp = certs["server"]
    tls = load_server_tls(cert, key)
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.fingerprint == fp
    assert tls.context.options & ssl.OP_NO_COMPRESSION


def test_transfers_over_tls_with_a_pinned_fingerprint(
    tls_daemon: FtpServer, certs: dict[str, tuple[Path, Path, str]], tmp_path: Path
) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(b"secret contents" * 10000)
    with connect(tls_daemon, options(tmp_path, fingerprint=certs["server"][2])) as c:
        assert c.encrypted
        assert c.chan.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[attr-defined]
        assert c.hello["mechanisms"] == ["SCRAM-SHA-256-PLUS"]
        c.put(src)
        got = c.get("data.bin", tmp_path / "out")
        assert got.path.read_bytes() == src.read_bytes()
        assert [e.name for e in c.list()] == ["data.bin"]


def test_put_many_over_tls_pipelines_and_verifies_every_file(
    tls_daemon: FtpServer, certs: dict[str, tuple[Path, Path, str]], tmp_path: Path
) -> None:
    """Frames go out through send_reading, which may read replies between TLS records."""
    src = tmp_path / "many"
    src.mkdir()
    paths = []
    for i in range(700):  # more than the window: replies come back while frames still go out
        paths.append(src / f"f{i:03}")
        paths[-1].write_bytes(os.urandom(i % 5000))
    with connect(tls_daemon, options(tmp_path, fingerprint=certs["server"][2])) as c:
        outcomes = c.put_many(paths)
        listed = {e.name: e.md5 for e in c.list()}
    assert [o.size for o in outcomes] == [p.stat().st_size for p in paths]  # type: ignore[union-attr]
    assert listed == {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in paths}


def test_cafile_verifies_and_a_foreign_ca_is_refused(
    tls_daemon: FtpServer, certs: dict[str, tuple[Path, Path, str]], tmp_path: Path
) -> None:
    with connect(tls_daemon, options(tmp_path, cafile=str(certs["server"][0]))) as c:
        assert c.list() == []
    with pytest.raises(UntrustedServer, match="not trusted by"):
        connect(tls_daemon, options(tmp_path, cafile=str(certs["relay"][0])))


def test_first_use_asks_once_then_pins(
    tls_daemon: FtpServer, certs: dict[str, tuple[Path, Path, str]], tmp_path: Path
) -> None:
    asked: list[str] = []

    def refuse(host: str, port: int, fp: str) -> bool:
        asked.append(fp)
        return False

    with pytest.raises(UntrustedServer, match="not accepted"):
        connect(tls_daemon, options(tmp_path, confirm=refuse))
    assert asked == [certs["server"][2]]
    assert not (tmp_path / "known_hosts").exists()

    def accept(host: str, port: int, fp: str) -> bool:
        asked.append(fp)
        return True

    connect(tls_daemon, options(tmp_path, confirm=accept)).close()
    connect(tls_daemon, options(tmp_path, confirm=accept)).close()
    assert len(asked) == 2  # asked once more, then pinned
    host, port = tls_daemon.address
    assert KnownHosts(tmp_path / "known_hosts").get(host, port) == certs["server"][2]


def test_a_changed_certificate_is_refused_loudly(
    tls_daemon: FtpServer, certs: dict[str, tuple[Path, Path, str]], tmp_path: Path
) -> None:
    host, port = tls_daemon.address
    KnownHosts(tmp_path / "known_hosts").add(host, port, certs["relay"][2])
    asked: list[str] = []
    with pytest.raises(UntrustedServer, match="does not match") as info:
        connect(tls_daemon, options(tmp_path, confirm=lambda *a: asked.append("x") or True))
    assert certs["relay"][2] in str(info.value) and certs["server"][2] in str(info.value)
    assert asked == []  # never silently re-pinned
    with pytest.raises(UntrustedServer, match="--fingerprint given"):
        connect(tls_daemon, options(tmp_path, fingerprint=certs["relay"][2]))


@contextmanager
def relay(target: tuple[str, int], cert: Path, key: Path) -> Iterator[int]:
    """A man in the middle: terminates TLS with its own certificate and re-encrypts."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    upstream_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    upstream_ctx.check_hostname = False
    upstream_ctx.verify_mode = ssl.CERT_NONE
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    threads: list[threading.Thread] = []

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        with suppress(OSError):
            conn, _ = listener.accept()
            down = context.wrap_socket(conn, server_side=True)
            up = upstream_ctx.wrap_socket(socket.create_connection(target, timeout=10))
            down.settimeout(10)
            up.settimeout(10)
            t = threading.Thread(target=pipe, args=(up, down))
            t.start()
            threads.append(t)
            pipe(down, up)
            t.join(10)
            down.close()
            up.close()

    main = threading.Thread(target=serve)
    main.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        main.join(15)
        assert not main.is_alive()


def test_a_relay_cannot_reuse_the_login(
    tls_daemon: FtpServer,
    certs: dict[str, tuple[Path, Path, str]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The user accepted the relay's certificate; the binding still exposes it."""
    cert, key, relay_fp = certs["relay"]
    with relay(tls_daemon.address, cert, key) as port:
        tls = options(tmp_path, fingerprint=relay_fp)
        with pytest.raises(AuthFailed, match="channel binding does not match"):
            Client("127.0.0.1", port, "alice", ACCOUNTS["alice"][0], timeout=5, tls=tls)
    assert any("result=failed" in r.getMessage() for r in caplog.records)


def test_plain_scram_offered_over_tls_is_refused(
    certs: dict[str, tuple[Path, Path, str]], tmp_path: Path
) -> None:
    """A server (or relay) offering only unbound SCRAM over TLS is a downgrade."""
    cert, key, fp = certs["server"]
    context = load_server_tls(cert, key).context
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        with suppress(OSError):
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls_conn:
                tls_conn.sendall(fake_hello())
                tls_conn.settimeout(5)
                with suppress(OSError):
                    tls_conn.recv(1)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        port = listener.getsockname()[1]
        with pytest.raises(UntrustedServer, match="channel binding"):
            Client(
                "127.0.0.1", port, "alice", "pw", timeout=5, tls=options(tmp_path, fingerprint=fp)
            )
    finally:
        thread.join(15)
        listener.close()


def test_mismatched_modes_fail_with_a_hint(
    tls_daemon: FtpServer, daemon: object, tmp_path: Path
) -> None:
    with pytest.raises(TransportError, match="use --tls"):
        Client(*tls_daemon.address, "alice", ACCOUNTS["alice"][0], timeout=2)
    plain = (daemon.host, daemon.port)  # type: ignore[attr-defined]
    with pytest.raises(TransportError, match="serving TLS"):
        Client(*plain, "alice", ACCOUNTS["alice"][0], timeout=2, tls=options(tmp_path))


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_old_tls_and_stalled_handshakes_are_dropped(tls_daemon: FtpServer) -> None:
    baseline = threading.active_count()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with suppress(ValueError, ssl.SSLError):
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.minimum_version = ssl.TLSVersion.TLSv1
    with (
        socket.create_connection(tls_daemon.address, timeout=5) as raw,
        pytest.raises((ssl.SSLError, OSError)),
    ):
        context.wrap_socket(raw)
    # A client that connects and never says hello is cut after handshake_timeout (1 s).
    with socket.create_connection(tls_daemon.address, timeout=5) as silent:
        assert silent.recv(1) == b""
    assert wait_until(lambda: threading.active_count() <= baseline)


def test_cli_over_tls(
    tls_daemon: FtpServer, certs: dict[str, tuple[Path, Path, str]], tmp_path: Path
) -> None:
    host, port = tls_daemon.address
    env = {
        "FTPC_HOST": host,
        "FTPC_PORT": str(port),
        "FTPC_USER": "alice",
        "FTPC_PASSWORD": ACCOUNTS["alice"][0],
        "FTPC_CACHE_DIR": str(tmp_path / "cache"),
        "FTPC_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
    }
    runner = CliRunner()
    unknown = runner.invoke(ftpc_main, ["--tls", "ls"], env=env)
    assert unknown.exit_code == 3  # an untrusted server fails like a login
    assert "not accepted" in unknown.output and certs["server"][2] in unknown.output
    pinned = runner.invoke(ftpc_main, ["--fingerprint", certs["server"][2], "ls"], env=env)
    assert pinned.exit_code == 0, pinned.output
    bad = runner.invoke(ftpc_main, ["--fingerprint", "nonsense", "ls"], env=env)
    assert bad.exit_code == 2 and "not a SHA-256 fingerprint" in bad.output
    cafile = runner.invoke(ftpc_main, ["--cafile", str(certs["server"][0]), "ls"], env=env)
    assert cafile.exit_code == 0, cafile.output


def test_server_tls_is_plain_data(certs: dict[str, tuple[Path, Path, str]]) -> None:
    cert, key, _ = certs["server"]
    tls = load_server_tls(cert, key)
    assert isinstance(tls, ServerTLS) and "BEGIN CERTIFICATE" in tls.cert_pem
    with pytest.raises(ssl.SSLError):
        load_server_tls(cert, certs["relay"][1])  # a key that does not match


def test_ftpd_serve_over_tls_as_a_real_process(
    certs: dict[str, tuple[Path, Path, str]], tmp_path: Path
) -> None:
    cert, key, fp = certs["server"]
    store = UserStore(tmp_path / "users.json")
    store.add("alice", ACCOUNTS["alice"][0], "rwd", iterations=TEST_ITERATIONS)
    args = ("--tls-cert", str(cert), "--tls-key", str(key))
    with ProcessDaemon(tmp_path / "root", store.path, *args) as daemon:
        assert daemon.banner[0] == f"TLS certificate SHA256 fingerprint: {fp}\n"
        assert daemon.banner[1].endswith("(TLS)\n")
        with daemon.client(tls=options(tmp_path, fingerprint=fp)) as c:
            assert c.encrypted and c.list() == []
    assert daemon.proc.returncode == 0


def test_serve_refuses_half_or_wrong_tls_options(
    certs: dict[str, tuple[Path, Path, str]], tmp_path: Path
) -> None:
    cert = certs["server"][0]
    base = ["serve", "--root", str(tmp_path / "r"), "--users", str(tmp_path / "u.json")]
    half = CliRunner().invoke(ftpd_main, [*base, "--tls-cert", str(cert)])
    assert half.exit_code == 2 and "go together" in half.output
    wrong = CliRunner().invoke(
        ftpd_main, [*base, "--tls-cert", str(cert), "--tls-key", str(certs["relay"][1])]
    )
    assert wrong.exit_code == 1 and "cannot use" in wrong.output
