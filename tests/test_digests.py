"""A faster digest, negotiated: xxh3-128 verifies transfers; md5 stays the default."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import xxhash
from click.testing import CliRunner

from ftpc import Client
from ftpc.cli import main as ftpc_main
from shared import digests
from shared.errors import BadRequest, ChecksumMismatch
from shared.protocol import Role, encode
from tests.conftest import ACCOUNTS, Daemon, Raw, fake_hello, fake_server

FAST = "xxh3-128"


def xxh(data: bytes) -> str:
    return xxhash.xxh3_128(data).hexdigest()


def test_digests_on_offer() -> None:
    assert digests.available()[0] == "md5"
    assert FAST in digests.available()
    with pytest.raises(ValueError, match="unknown digest 'sha1'"):
        digests.new("sha1")


def test_put_get_and_put_many_with_xxh3(
    daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = os.urandom(3 << 20)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    small = []
    for i in range(5):
        small.append(tmp_path / f"s{i}")
        small[-1].write_bytes(os.urandom(100 * i))
    with daemon.client(digest=FAST) as c:
        assert c.hello["digests"][:2] == ["md5", FAST]
        put = c.put(src)
        assert (put.digest, put.checksum, put.md5) == (FAST, xxh(data), "")
        again = c.put(src)  # identical, proven with xxh3: nothing sent
        assert again.existed and again.checksum == xxh(data)
        got = c.get("big.bin", tmp_path / "out.bin")
        assert got.checksum == xxh(data) and got.path.read_bytes() == data
        outcomes = c.put_many(small)
        assert [o.checksum for o in outcomes] == [xxh(p.read_bytes()) for p in small]  # type: ignore[union-attr]
        # The listing still shows md5, computed once for the files that arrived with xxh3.
        listed = {e.name: e.md5 for e in c.list()}
    assert listed["big.bin"] == hashlib.md5(data).hexdigest()
    assert any(f"{FAST}={xxh(data)}" in r.getMessage() for r in caplog.records)


def test_xxh3_get_of_a_file_stored_with_md5(daemon: Daemon, client: Client, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"stored the usual way")
    client.put(tmp_path / "f")
    with daemon.client(digest=FAST) as fast:
        for round_ in range(2):  # computed once, then from the catalog
            got = fast.get("f", tmp_path / f"g{round_}")
            assert got.checksum == xxh(b"stored the usual way")


def test_bad_digest_requests_are_refused_and_the_session_goes_on(daemon: Daemon) -> None:
    (daemon.root / "f").write_bytes(b"x")
    with Raw(daemon) as raw:
        raw.login()
        raw.send("get", name="f", digest="sha1")
        reply = raw.recv()
        assert (reply["code"], reply.get("fatal")) == ("bad-request", None)
        assert "no digest 'sha1'" in reply["message"]
        raw.send("put", name="g", size=1, digest=FAST, md5="0" * 32)
        assert "goes in 'sum'" in raw.recv()["message"]
        raw.send("put", name="g", size=1, sum="0" * 32)
        assert "goes in 'md5'" in raw.recv()["message"]
        data = b"abc"
        frame = encode("upload", Role.CLIENT, name="u", size=3, digest=FAST, sum="0" * 32)
        raw.sock.sendall(frame + data)
        assert raw.recv()["code"] == "checksum-mismatch"
        raw.sock.sendall(
            encode("upload", Role.CLIENT, name="u", size=3, digest=FAST, sum=xxh(data)) + data
        )
        ok = raw.recv()
        assert (ok.type, ok["digest"], ok["sum"]) == ("ok", FAST, xxh(data))
    assert (daemon.root / "u").read_bytes() == data


def test_a_digest_the_server_lacks_is_refused_at_connect(daemon: Daemon) -> None:
    with pytest.raises(BadRequest, match="does not offer digest 'blake2'"):
        Client(daemon.host, daemon.port, "alice", ACCOUNTS["alice"][0], digest="blake2")


def test_a_lying_server_is_caught_with_xxh3(tmp_path: Path) -> None:
    hello = encode(
        "hello",
        Role.SERVER,
        version=1,
        server="fake",
        mechanisms=["SCRAM-SHA-256"],
        capabilities=[],
        max_header=65536,
        digests=["md5", FAST],
    )
    body = b"the real bytes"
    header = encode(
        "file", Role.SERVER, name="f", size=len(body), mtime=0, digest=FAST, sum="1" * 32
    )
    with fake_server(hello + header + body) as port:
        c = Client("127.0.0.1", port, timeout=5, digest=FAST)
        with pytest.raises(ChecksumMismatch, match="xxh3-128"):
            c.get("f", tmp_path)
        c.close()
    assert list(tmp_path.iterdir()) == []
    assert fake_hello()  # the md5-only greeting of older servers stays valid


def test_cli_digest_option(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello")
    env = {
        "FTPC_PORT": str(daemon.port),
        "FTPC_USER": "alice",
        "FTPC_PASSWORD": ACCOUNTS["alice"][0],
        "FTPC_CACHE_DIR": str(tmp_path / "cache"),
    }
    runner = CliRunner()
    put = runner.invoke(ftpc_main, ["--digest", FAST, "put", str(tmp_path / "a.txt")], env=env)
    assert put.exit_code == 0, put.output
    assert f"{FAST} {xxh(b'hello')} verified" in put.output
    out = tmp_path / "out"
    get = runner.invoke(ftpc_main, ["--digest", FAST, "get", "a.txt", "-o", str(out)], env=env)
    assert get.exit_code == 0 and (out / "a.txt").read_bytes() == b"hello"
    bad = runner.invoke(ftpc_main, ["--digest", "sha1", "ls"], env=env)
    assert bad.exit_code == 2
