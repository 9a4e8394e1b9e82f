"""The root's small database: checksums of stored files, and which account uploaded each.

md5 has its own table (every file gets one, for listings); other digests, such
as xxh3-128, are kept in `sums` once a transfer has computed them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.digests import MD5

LOOKUP_BATCH = 500
"""Names per SELECT ... IN (...): well under SQLite's limit on bound parameters."""


class Md5Cache:
    """md5 of stored files, so a download or listing does not hash again; and their owners."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._owned: dict[str, int | None] = {}
        """Each owner's recorded bytes, summed once and then kept up to date by every change
        to the owner table (None: some of its rows have no size)."""
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
            db.execute(
                "CREATE TABLE IF NOT EXISTS owner (name TEXT PRIMARY KEY, owner TEXT, size INTEGER)"
            )
            columns = [row[1] for row in db.execute("PRAGMA table_info(owner)")]
            if "size" not in columns:  # a catalog from before sizes were kept: NULL, unknown
                db.execute("ALTER TABLE owner ADD COLUMN size INTEGER")
            db.execute("CREATE INDEX IF NOT EXISTS owner_size ON owner (owner, size)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS sums (name TEXT, algo TEXT, size INTEGER,"
                " mtime_ns INTEGER, ino INTEGER, value TEXT, PRIMARY KEY (name, algo))"
            )
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
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._owned.clear()  # totals may count changes that were rolled back
            raise

    def lookup(self, name: str, st: os.stat_result, algo: str = MD5) -> str | None:
        """The checksum of `name` if it was computed on exactly this version of the file."""
        key = (name, st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            if algo == MD5:
                sql = "SELECT md5 FROM md5 WHERE name=? AND size=? AND mtime_ns=? AND ino=?"
                row = self._db.execute(sql, key).fetchone()
            else:
                sql = (
                    "SELECT value FROM sums WHERE name=? AND size=? AND mtime_ns=? AND ino=?"
                    " AND algo=?"
                )
                row = self._db.execute(sql, (*key, algo)).fetchone()
        return row[0] if row else None

    def rows_for(self, names: list[str]) -> dict[str, tuple[int, int, int, str]]:
        """(size, mtime_ns, ino, md5) of each of `names` that has a row: a listing asks for
        the files of one folder, not for every row the root ever had."""
        with self._lock:
            rows = self._where_name_in("SELECT name, size, mtime_ns, ino, md5 FROM md5", names)
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def _where_name_in(self, select: str, names: list[str]) -> list[Any]:
        """The rows of `select` whose name is one of `names`, LOOKUP_BATCH names per query;
        call with the lock held."""
        rows: list[Any] = []
        for i in range(0, len(names), LOOKUP_BATCH):
            batch = names[i : i + LOOKUP_BATCH]
            sql = f"{select} WHERE name IN ({','.join('?' * len(batch))})"
            rows += self._db.execute(sql, batch).fetchall()
        return rows

    def store(self, name: str, st: os.stat_result, value: str, algo: str = MD5) -> None:
        if algo == MD5:
            self.store_many([(name, st, value)])
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO sums VALUES (?, ?, ?, ?, ?, ?)",
                (name, algo, st.st_size, st.st_mtime_ns, st.st_ino, value),
            )

    def store_many(self, rows: list[tuple[str, os.stat_result, str]]) -> None:
        """One transaction for many rows: a first listing of a large root hashes them all."""
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO md5 VALUES (?, ?, ?, ?, ?)",
                [(n, st.st_size, st.st_mtime_ns, st.st_ino, md5) for n, st, md5 in rows],
            )

    def record(self, rows: list[tuple[str, os.stat_result, str, str, str | None]]) -> None:
        """(name, stat, digest, checksum, owner) of freshly stored files, in one transaction.
        A name stored twice in one group (overwritten by the later upload) keeps the last."""
        rows = list({r[0]: r for r in rows}.values())
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO md5 VALUES (?, ?, ?, ?, ?)",
                [
                    (n, st.st_size, st.st_mtime_ns, st.st_ino, v)
                    for n, st, a, v, _ in rows
                    if a == MD5
                ],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO sums VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (n, a, st.st_size, st.st_mtime_ns, st.st_ino, v)
                    for n, st, a, v, _ in rows
                    if a != MD5
                ],
            )
            gone = self._owner_rows([r[0] for r in rows])
            self._db.executemany("DELETE FROM owner WHERE name=?", [(r[0],) for r in rows])
            added = [(r[0], r[4], r[1].st_size) for r in rows if r[4] is not None]
            self._db.executemany("INSERT INTO owner (name, owner, size) VALUES (?, ?, ?)", added)
            self._count(gone, -1)
            self._count([(owner, size) for _, owner, size in added], +1)

    def forget(self, name: str) -> None:
        with self._lock, self._transaction():
            gone = self._owner_rows([name])
            self._db.execute("DELETE FROM md5 WHERE name=?", (name,))
            self._db.execute("DELETE FROM owner WHERE name=?", (name,))
            self._db.execute("DELETE FROM sums WHERE name=?", (name,))
            self._count(gone, -1)

    def _owner_rows(self, names: list[str]) -> list[tuple[str, int | None]]:
        """(owner, size) of the owner rows of `names`, before they change."""
        return self._where_name_in("SELECT owner, size FROM owner", names)

    def _count(self, rows: list[tuple[str, int | None]], sign: int) -> None:
        """Apply owner rows added (+1) or removed (-1) to the totals already summed. Called
        inside the transaction: a rollback raises before the caller's next statement, and
        the totals are then dropped by `_transaction`."""
        for owner, size in rows:
            total = self._owned.get(owner)
            if total is not None:
                self._owned[owner] = None if size is None else total + sign * size

    def fill_sizes(self, owner: str, sizes: list[tuple[str, int]]) -> None:
        """Give `owner`'s rows that have no size (from before sizes were kept) the sizes
        measured now; its total is summed again when next asked."""
        if self._owned.get(owner, 0) is not None:
            return  # every row has its size
        with self._lock, self._transaction():
            self._db.executemany(
                "UPDATE owner SET size=? WHERE name=? AND owner=? AND size IS NULL",
                [(size, name, owner) for name, size in sizes],
            )
            self._owned.pop(owner, None)

    def owned_bytes(self, owner: str) -> int | None:
        """The sizes recorded when `owner`'s files were stored, in total; None if a row has no
        size (written before sizes were kept). Summed once per owner, then kept up to date."""
        with self._lock:
            if owner not in self._owned:
                rows, sized, total = self._db.execute(
                    "SELECT COUNT(*), COUNT(size), TOTAL(size) FROM owner WHERE owner=?", (owner,)
                ).fetchone()
                self._owned[owner] = int(total) if rows == sized else None
            return self._owned[owner]

    def owned_by(self, owner: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT name FROM owner WHERE owner=?", (owner,)).fetchall()
        return [r[0] for r in rows]

    def owner_row(self, name: str) -> tuple[str, int | None] | None:
        """(owner, size recorded at upload) of `name`, or None if no account owns it."""
        with self._lock:
            row = self._db.execute("SELECT owner, size FROM owner WHERE name=?", (name,)).fetchone()
        return (row[0], row[1]) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
