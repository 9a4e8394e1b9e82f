"""Random put/ls/get/rm sequences through `ftpc.Client` against one live daemon.

A dict of name -> bytes models what the store must hold. After every step the listing (numbers,
names, sizes, md5s) and the root on disk must match it exactly, every download must return the
model's bytes, and every refusal must be the typed error the model predicts (`Exists`,
`NotFound`). Two sessions take turns, so what one stores the other must see at once.

One daemon serves all the examples of a test; each example starts by deleting whatever the
previous one left, through the protocol, and gets its own local scratch directory.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ftpc import Client
from ftpd.auth import UserStore
from shared.errors import BadName, Exists, NotFound
from shared.names import check_name
from tests.conftest import ACCOUNTS, start_daemon, stop_daemon

MAX_FILE = 64 * 1024

POOL = ["a", "B", "name with spaces", " lead", "trail ", "文件.bin", "é", "..."]
"""Names drawn often, so that the same name is put, replaced, read and deleted repeatedly."""

ALPHABET = "ab é文 .-_"


def _safe(name: str) -> bool:
    """Only names the client sends unchanged: valid, and already in NFC."""
    try:
        return check_name(name) == name
    except BadName:
        return False


NAMES = st.one_of(
    st.sampled_from(POOL),
    st.text(alphabet=ALPHABET, min_size=1, max_size=3).filter(_safe),
)


def _noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


CONTENTS = st.one_of(
    st.binary(max_size=64),
    st.builds(_noise, st.integers(0, MAX_FILE), st.integers(0, 2**32)),
)
"""Small files up to 64 KiB: tiny ones (often equal, often empty) and random larger ones."""

SESSIONS = st.sampled_from([0, 1])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class StoreMachine(RuleBasedStateMachine):
    """Two logged-in sessions on one store, against a model of what it holds."""

    def __init__(self, host: str, port: int, root: Path) -> None:
        super().__init__()
        self.root = root
        self.model: dict[str, bytes] = {}
        self.steps = 0
        self.scratch = tempfile.TemporaryDirectory(prefix="ftpd-stateful-")
        self.local = Path(self.scratch.name)
        self.clients: list[Client] = []
        try:
            for _ in range(2):
                self.clients.append(Client(host, port, "alice", ACCOUNTS["alice"][0], timeout=10))
            for entry in self.clients[0].list():
                self.clients[0].remove(entry.name)
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> None:
        for client in self.clients:
            client.close()
        self.scratch.cleanup()

    # --- helpers -----------------------------------------------------------------------------

    def _source(self, data: bytes) -> Path:
        """A fresh local file with these bytes (the name on the server is given separately)."""
        self.steps += 1
        path = self.local / f"src-{self.steps}"
        path.write_bytes(data)
        return path

    def _download(self, who: int, name: str) -> bytes:
        self.steps += 1
        target = self.local / f"got-{self.steps}"
        result = self.clients[who].get(name, target)
        assert (result.name, result.path) == (name, target)
        data = target.read_bytes()
        target.unlink()
        return data

    def _put(self, who: int, name: str, data: bytes, overwrite: bool) -> None:
        old = self.model.get(name)
        path = self._source(data)
        if old is not None and old != data and not overwrite:
            with pytest.raises(Exists):
                self.clients[who].put(path, name=name)
            return
        result = self.clients[who].put(path, name=name, overwrite=overwrite)
        assert (result.name, result.size, result.md5) == (name, len(data), md5(data))
        # Identical content without --overwrite is acknowledged without a transfer.
        assert result.existed == (old == data)  # identical bytes are never sent again
        self.model[name] = data

    # --- rules --------------------------------------------------------------------------------

    @rule(who=SESSIONS, name=NAMES, data=CONTENTS, overwrite=st.booleans())
    def put(self, who: int, name: str, data: bytes, overwrite: bool) -> None:
        self._put(who, name, data, overwrite)

    @precondition(lambda self: self.model)
    @rule(who=SESSIONS, pick=st.data())
    def put_identical(self, who: int, pick: st.DataObject) -> None:
        name = pick.draw(st.sampled_from(sorted(self.model)), label="name")
        self._put(who, name, self.model[name], overwrite=False)

    @precondition(lambda self: self.model)
    @rule(who=SESSIONS, pick=st.data(), data=CONTENTS, overwrite=st.booleans())
    def put_over_existing(
        self, who: int, pick: st.DataObject, data: bytes, overwrite: bool
    ) -> None:
        name = pick.draw(st.sampled_from(sorted(self.model)), label="name")
        self._put(who, name, data, overwrite)

    @rule(who=SESSIONS, name=NAMES)
    def get(self, who: int, name: str) -> None:
        if name in self.model:
            assert self._download(who, name) == self.model[name]
        else:
            with pytest.raises(NotFound):
                self._download(who, name)
            assert not any(self.local.glob("got-*")) and not any(self.local.glob(".got-*"))

    @precondition(lambda self: self.model)
    @rule(who=SESSIONS, pick=st.data())
    def get_existing(self, who: int, pick: st.DataObject) -> None:
        name = pick.draw(st.sampled_from(sorted(self.model)), label="name")
        assert self._download(who, name) == self.model[name]

    @precondition(lambda self: self.model)
    @rule(who=SESSIONS, pick=st.data())
    def get_by_number(self, who: int, pick: st.DataObject) -> None:
        client = self.clients[who]
        seen = client.list()
        number = pick.draw(st.integers(1, len(seen)), label="number")
        [name] = client.resolve([str(number)])
        assert name == sorted(self.model)[number - 1]
        assert self._download(who, name) == self.model[name]

    @rule(who=SESSIONS, name=NAMES)
    def rm(self, who: int, name: str) -> None:
        if name in self.model:
            assert self.clients[who].remove(name) == name
            del self.model[name]
        else:
            with pytest.raises(NotFound):
                self.clients[who].remove(name)

    @precondition(lambda self: self.model)
    @rule(who=SESSIONS, pick=st.data())
    def rm_existing(self, who: int, pick: st.DataObject) -> None:
        name = pick.draw(st.sampled_from(sorted(self.model)), label="name")
        assert self.clients[who].remove(name) == name
        del self.model[name]

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def listing_matches_the_model(self) -> None:
        expected = [
            (i, name, len(data), md5(data))
            for i, (name, data) in enumerate(sorted(self.model.items()), start=1)
        ]
        for client in self.clients:
            got = [(e.index, e.name, e.size, e.md5) for e in client.list()]
            assert got == expected

    @invariant()
    def root_holds_exactly_the_model(self) -> None:
        on_disk = {p.name: p.read_bytes() for p in self.root.iterdir() if p.name != ".ftpd"}
        assert on_disk == self.model
        assert not any((self.root / ".ftpd" / "staging").iterdir())


SETTINGS = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,
    # No explain phase: replaying variations of a failure against a live server is slow, and
    # the shrunk sequence of steps already says what happened.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)


def test_store_always_matches_the_model(tmp_path: Path, users: UserStore) -> None:
    server, thread = start_daemon(tmp_path / "root", users)
    try:
        host, port = server.address
        root = server.storage.root
        run_state_machine_as_test(lambda: StoreMachine(host, port, root), settings=SETTINGS)
    finally:
        stop_daemon(server, thread)
