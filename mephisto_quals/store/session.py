"""A session: one connection to a Mephisto database file and its transactions.

Every read and write of mephisto-quals goes through a :class:`Session`. A writing session
takes SQLite's write lock up front (``BEGIN IMMEDIATE``), so a change and its audit rows commit
together or not at all and concurrent writers wait their turn; a reading session opens the
file read-only and never migrates anything.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, TypeVar, Union

from mephisto_quals.errors import DatabaseBusy, DatabaseError, SchemaError
from mephisto_quals.store import schema

__all__ = ["Session", "DatabaseLike", "database_path", "chunks", "session_for", "savepoint"]

T = TypeVar("T")
#: A LocalMephistoDB (anything with ``db_path``) or the path of its ``database.db``.
DatabaseLike = Union[str, "os.PathLike[str]", Any]

#: Seconds a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT = 120.0
_SQLITE_MAX_VARS = 900
_MEPHISTO_TABLES = ("workers", "qualifications", "granted_qualifications")


def database_path(db: DatabaseLike) -> str:
    """The file behind a LocalMephistoDB, or a path given directly."""
    return os.fspath(getattr(db, "db_path", db))


def chunks(items: Sequence[T], size: int = _SQLITE_MAX_VARS) -> Iterator[List[T]]:
    """Slices small enough for SQLite's bound-parameter limit."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class Session:
    """One connection to one Mephisto database; use as a context manager.

    ``Session.open(db)`` is for writers: our tables are created or upgraded once, in a
    transaction. ``Session.open(db, readonly=True)`` opens the file with ``mode=ro``: it
    works on a database file nobody may write, and reads our tables as empty where we never
    wrote. Functions of the store take ``session.conn`` and run inside the caller's
    transaction, so several of them compose into one commit.
    """

    def __init__(self, conn: sqlite3.Connection, path: str, readonly: bool) -> None:
        self.conn = conn
        self.path = path
        self.readonly = readonly
        self._depth = 0
        #: Seconds each write transaction of this session held SQLite's write lock (BEGIN IMMEDIATE
        #: to COMMIT or ROLLBACK), oldest first: what a live run in another process may wait for.
        self.write_holds: List[float] = []

    @classmethod
    def open(
        cls, db: DatabaseLike, *, readonly: bool = False, timeout: float = BUSY_TIMEOUT, upgradable: bool = False
    ) -> Session:
        """Open the database behind ``db``; raises :class:`DatabaseError` naming the path if it is
        missing, not a Mephisto database, or (for a writer) not writable. ``upgradable`` lets a read-only session open a
        database whose tables of ours are older (to report their version)."""
        path = database_path(db)
        if not os.path.isfile(path):
            raise DatabaseError(f"no Mephisto database at {path} (give the path of a Mephisto database.db)")
        if not readonly and not (os.access(path, os.W_OK) and os.access(os.path.dirname(path) or ".", os.W_OK)):
            # Before anything is written here or sent to a provider (SQLite also needs the folder for its journal).
            raise DatabaseError(f"{path} is read-only: a writing command needs write access to the file and its "
                                "folder; nothing was written")
        try:
            if readonly:
                uri = f"file:{urllib.parse.quote(str(Path(path).resolve()))}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
            else:
                conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise DatabaseError(f"{path} is not a readable SQLite database ({e})") from e
        missing = [t for t in _MEPHISTO_TABLES if t not in tables]
        if missing:
            conn.close()
            raise DatabaseError(f"{path} is not a Mephisto database (no {', '.join(missing)} table)")
        session = cls(conn, path, readonly)
        try:
            session._prepare(upgradable)
        except BaseException:
            conn.close()
            raise
        return session

    def _prepare(self, upgradable: bool = False) -> None:
        version = schema.schema_version(self.conn)
        if self.readonly and (version == schema.SCHEMA_VERSION or upgradable):
            return
        if version == schema.SCHEMA_VERSION and not schema.missing_indexes(self.conn):
            return
        if self.readonly:
            if version is None:
                schema.add_stand_ins(self.conn)
                return
            raise SchemaError(
                f"{self.path} holds mephisto-quals tables of schema version {version}; this version reads "
                f"{schema.SCHEMA_VERSION}: run 'mephisto-quals migrate --db {self.path}' (or any writing command) first"
            )
        with self.transaction():
            schema.ensure_schema(self.conn)

    @contextmanager
    def transaction(self, rollback: bool = False) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error (or always, with
        ``rollback=True``: a dry run computes exactly and writes nothing).

        Inside an open transaction this joins it: the outermost one commits.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        if self.readonly:
            self.conn.execute("BEGIN")
        else:
            self._begin_immediate()
        started = time.perf_counter()
        self._depth = 1
        try:
            yield self.conn
        except BaseException as e:
            self._depth = 0
            # SQLite has already rolled back after some errors (a full disk, an I/O error): then
            # there is nothing to roll back, and the original error is the one to report.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._held(started)
            if isinstance(e, sqlite3.OperationalError) and "readonly" in str(e):
                raise DatabaseError(f"{self.path} is read-only ({e}); nothing was written: a writing command needs "
                                    "write access to the file and its folder") from e
            raise
        self._depth = 0
        self.conn.execute("ROLLBACK" if rollback or self.readonly else "COMMIT")
        self._held(started)

    def _held(self, started: float) -> None:
        if not self.readonly:
            self.write_holds.append(time.perf_counter() - started)

    def _begin_immediate(self) -> None:
        for attempt in range(50):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                time.sleep(min(0.05 * (attempt + 1), 1.0))
        raise DatabaseBusy(f"{self.path} stayed locked: another process holds its write lock")

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextmanager
def session_for(db: DatabaseLike, session: Optional[Session] = None, *, readonly: bool = False) -> Iterator[Session]:
    """The caller's session when given (left open), else a new one closed afterwards."""
    if session is not None:
        yield session
        return
    own = Session.open(db, readonly=readonly)
    try:
        yield own
    finally:
        own.close()


@contextmanager
def savepoint(conn: sqlite3.Connection, name: str = "mephisto_quals") -> Iterator[None]:
    """A SAVEPOINT around some statements inside a transaction: on an error they alone are undone
    (the transaction goes on), so a statement can be retried (a clashing random id)."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")
