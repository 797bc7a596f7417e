"""Embedded SQLite backend: the default store for a single node.

WAL journal, one transaction per write, and a store-wide revision counter kept
in the same transaction, so a process killed at any point leaves either the
whole write or none of it; a COMMIT that fails is rolled back, so the
connection (and SQLite's write lock) is never left inside a transaction.
Several processes may share one file: writers take SQLite's write lock with
`BEGIN IMMEDIATE` and wait up to `busy_timeout_s` (5 s by default, well below
the agent clients' 30 s deadline, so a caller gets a 503 saying the store is
locked rather than its own timeout). Every SQLite failure is a `KVStoreError`
saying what failed. The file and its -wal/-shm are 0600.

`revision()` reads on a connection of its own: in WAL mode it answers while
another thread of the process waits for the write lock (the agent's health
check relies on that).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from podnet.kvstore.base import (
    Condition,
    Delete,
    Entry,
    KVStore,
    KVStoreError,
    NothingNewer,
    Operation,
    Put,
    as_bytes,
    check_operations,
)
from podnet.private import private_file, tighten

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
"""

SYNCHRONOUS_MODES = ("off", "normal", "full", "extra")
DEFAULT_BUSY_TIMEOUT_S = 5.0
MAX_BUSY_TIMEOUT_S = 600.0


class SQLiteStore(KVStore):
    def __init__(
        self, path: str | Path, *, synchronous: str = "normal", busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
    ):
        if synchronous not in SYNCHRONOUS_MODES:
            raise KVStoreError(
                f"invalid sqlite synchronous mode {synchronous!r} (expected one of {', '.join(SYNCHRONOUS_MODES)})"
            )
        if not 0 <= busy_timeout_s <= MAX_BUSY_TIMEOUT_S:
            raise KVStoreError(f"invalid sqlite busy_timeout {busy_timeout_s!r} (seconds, 0 to {MAX_BUSY_TIMEOUT_S:g})")
        self.path = Path(path)
        self.url = f"sqlite://{self.path.resolve()}"
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        if not self.path.parent.is_dir():
            raise KVStoreError(f"cannot open kvstore {self.url}: directory {self.path.parent} does not exist")
        try:
            private_file(self.path)  # SQLite gives -wal and -shm the database file's mode
        except OSError as err:
            raise KVStoreError(f"cannot open kvstore {self.url}: {err.strerror}") from err
        # Processes opening a new file at once contend for switching it to WAL,
        # which SQLite answers with "locked" without waiting: retry until the timeout.
        deadline = time.monotonic() + busy_timeout_s
        while True:
            try:
                self._db = sqlite3.connect(
                    self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
                )
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
                with self._write("creating the schema"):
                    for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                        self._db.execute(statement)
                self._reader = sqlite3.connect(
                    self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
                )
                break
            except KVStoreError as err:
                self._db.close()
                contended = isinstance(err.__cause__, sqlite3.OperationalError) and _contended(err.__cause__)
                if not contended or time.monotonic() > deadline:
                    raise KVStoreError(f"cannot open kvstore {self.url}: {err.__cause__ or err}") from err
                time.sleep(0.05)
            except sqlite3.OperationalError as err:
                self._db.close()
                if not _contended(err) or time.monotonic() > deadline:
                    raise KVStoreError(f"cannot open kvstore {self.url}: {err}") from err
                time.sleep(0.05)
            except sqlite3.Error as err:
                raise KVStoreError(f"cannot open kvstore {self.url}: {err}") from err
        for suffix in ("-wal", "-shm"):  # left looser by an older version
            tighten(f"{self.path}{suffix}")

    def _failed(self, what: str, err: sqlite3.Error) -> KVStoreError:
        if isinstance(err, sqlite3.OperationalError) and _contended(err):
            return KVStoreError(
                f"kvstore {self.url} is locked by another writer: {what} waited {self.busy_timeout_s:g} s ({err}); "
                "retry, or raise busy_timeout in the store URL"
            )
        return KVStoreError(f"kvstore {self.url}: {what} failed: {err}")

    @contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as err:
                raise self._failed(what, err) from err

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed on success, rolled back on any error, COMMIT's included."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise self._failed(what, err) from err
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as err:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error):
                raise self._failed(what, err) from err
            raise

    def _bump(self, db: sqlite3.Connection) -> int:
        row = db.execute("UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value").fetchone()
        return int(row[0])

    def get(self, key: str) -> Entry | None:
        with self._reading(f"reading {key}") as db:
            row = db.execute(
                "SELECT key, value, create_revision, mod_revision FROM kv WHERE key = ?", (key,)
            ).fetchone()
        return Entry(row[0], bytes(row[1]), row[2], row[3]) if row else None

    def put(self, key: str, value: bytes | str) -> int:
        with self._lock, self._write(f"writing {key}") as db:
            rev = self._bump(db)
            db.execute(
                "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision",
                (key, as_bytes(value), rev, rev),
            )
            return rev

    def create(self, key: str, value: bytes | str) -> int:
        return self.compare_and_swap(key, value, mod_revision=0)

    def compare_and_swap(self, key: str, value: bytes | str, *, mod_revision: int) -> int:
        with self._lock, self._write(f"writing {key}") as db:
            row = db.execute("SELECT mod_revision FROM kv WHERE key = ?", (key,)).fetchone()
            current = row[0] if row else 0
            if current != mod_revision:
                return 0
            rev = self._bump(db)
            if row:
                db.execute("UPDATE kv SET value = ?, mod_revision = ? WHERE key = ?", (as_bytes(value), rev, key))
            else:
                db.execute(
                    "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?)",
                    (key, as_bytes(value), rev, rev),
                )
            return rev

    def delete(self, key: str, *, mod_revision: int | None = None) -> bool:
        with self._lock, self._write(f"deleting {key}") as db:
            if mod_revision is None:
                cur = db.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                cur = db.execute("DELETE FROM kv WHERE key = ? AND mod_revision = ?", (key, mod_revision))
            if cur.rowcount:
                self._bump(db)
            return cur.rowcount > 0

    def _holds(self, db: sqlite3.Connection, condition: Condition) -> bool:
        if isinstance(condition, NothingNewer):
            newer = db.execute(
                "SELECT 1 FROM kv WHERE key >= ? AND key < ? AND mod_revision > ? LIMIT 1",
                (condition.prefix, condition.prefix + "\U0010ffff", condition.revision),
            ).fetchone()
            return newer is None
        row = db.execute("SELECT mod_revision FROM kv WHERE key = ?", (condition.key,)).fetchone()
        return (row[0] if row else 0) == condition.mod_revision

    def commit(self, conditions: Sequence[Condition], operations: Sequence[Operation]) -> int:
        check_operations(operations)
        with self._lock, self._write(f"committing a transaction on {len(operations)} key(s)") as db:
            current = int(db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0])
            if not all(self._holds(db, c) for c in conditions):
                return 0
            rev, changed = current + 1, False
            for op in operations:
                if isinstance(op, Put):
                    db.execute(
                        "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision",
                        (op.key, as_bytes(op.value), rev, rev),
                    )
                    changed = True
                elif isinstance(op, Delete):
                    changed = db.execute("DELETE FROM kv WHERE key = ?", (op.key,)).rowcount > 0 or changed
            if not changed:
                return current
            db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (rev,))
            return rev

    def list_prefix(self, prefix: str) -> list[Entry]:
        # Range scan on the primary key: [prefix, prefix + U+10FFFF).
        with self._reading(f"listing {prefix}") as db:
            rows = db.execute(
                "SELECT key, value, create_revision, mod_revision FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return [Entry(r[0], bytes(r[1]), r[2], r[3]) for r in rows]

    def revision(self) -> int:
        with self._read_lock:
            try:
                row = self._reader.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
            except sqlite3.Error as err:
                raise self._failed("reading the revision", err) from err
        return int(row[0])

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file ('ok' when sound)."""
        with self._reading("checking integrity") as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self._db.close()
        self._reader.close()


def _contended(err: sqlite3.OperationalError) -> bool:
    text = str(err)
    return "locked" in text or "busy" in text
