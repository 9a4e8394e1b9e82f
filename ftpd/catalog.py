"""The root's small database: the md5 of stored files, and which account uploaded each."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path


class Md5Cache:
    """md5 of stored files, so a download or listing does not hash again; and their owners."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError:
            path.unlink(missing_ok=True)
            self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.execute(
                "CREATE TABLE IF NOT EXISTS md5 (name TEXT PRIMARY KEY, size INTEGER,"
                " mtime_ns INTEGER, ino INTEGER, md5 TEXT)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS owner (name TEXT PRIMARY KEY, owner TEXT)")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One explicit transaction: the connection is in autocommit mode otherwise."""
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def lookup(self, name: str, st: os.stat_result) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT md5 FROM md5 WHERE name=? AND size=? AND mtime_ns=? AND ino=?",
                (name, st.st_size, st.st_mtime_ns, st.st_ino),
            ).fetchone()
        return row[0] if row else None

    def all(self) -> dict[str, tuple[int, int, int, str]]:
        with self._lock:
            rows = self._db.execute("SELECT name, size, mtime_ns, ino, md5 FROM md5").fetchall()
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def store(self, name: str, st: os.stat_result, md5: str) -> None:
        self.store_many([(name, st, md5)])

    def store_many(self, rows: list[tuple[str, os.stat_result, str]]) -> None:
        """One transaction for many rows: a first listing of a large root hashes them all."""
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO md5 VALUES (?, ?, ?, ?, ?)",
                [(n, st.st_size, st.st_mtime_ns, st.st_ino, md5) for n, st, md5 in rows],
            )

    def record(self, rows: list[tuple[str, os.stat_result, str, str | None]]) -> None:
        """md5 and owner of freshly stored files, in one transaction (a group commit's worth)."""
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO md5 VALUES (?, ?, ?, ?, ?)",
                [(n, st.st_size, st.st_mtime_ns, st.st_ino, md5) for n, st, md5, _ in rows],
            )
            self._db.executemany("DELETE FROM owner WHERE name=?", [(r[0],) for r in rows])
            self._db.executemany(
                "INSERT INTO owner VALUES (?, ?)", [(r[0], r[3]) for r in rows if r[3] is not None]
            )

    def forget(self, name: str) -> None:
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM md5 WHERE name=?", (name,))
            self._db.execute("DELETE FROM owner WHERE name=?", (name,))

    def set_owner(self, name: str, owner: str | None) -> None:
        with self._lock:
            if owner is None:
                self._db.execute("DELETE FROM owner WHERE name=?", (name,))
            else:
                self._db.execute("INSERT OR REPLACE INTO owner VALUES (?, ?)", (name, owner))

    def owned_by(self, owner: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT name FROM owner WHERE owner=?", (owner,)).fetchall()
        return [r[0] for r in rows]

    def owner_of(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT owner FROM owner WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
