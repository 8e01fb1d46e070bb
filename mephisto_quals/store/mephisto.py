"""What differs between Mephisto lines at the database level, detected from the database
and the installed code rather than from version numbers (every git tag says 1.1.2).

- Mephisto 1.4+ renamed ``LocalMephistoDB._get_connection`` to ``get_connection``.
- Its migration drops AUTOINCREMENT and gives new workers (and runs, units...) random 63-bit
  ids; qualifications and grants stay sequential.
- 1.5.2 adds ``qualifications.description`` and ``granted_qualifications.update_date``.
- 1.5.2 deprecates ``MephistoDB.check_granted_qualifications`` for ``find_granted_qualifications``
  (same keyword arguments, positional order swapped). Both call ``LocalMephistoDB``'s
  ``GRANTED_READ`` method, whose one statement (``?1 IS NULL OR qualification_id = ?1`` ...)
  no index can serve; :func:`granted_rows` returns the same rows with a statement that can.
"""

from __future__ import annotations

import importlib.util
import random
import sqlite3
from typing import Any, Dict, List, Optional, Tuple

__all__ = [
    "mephisto_connection",
    "find_granted",
    "GRANTED_READ",
    "granted_rows",
    "granted_sql",
    "mephisto_migrations",
    "has_column",
    "uses_random_ids",
    "random_id",
    "random_ids_in_order",
    "RANDOM_ID_RANGE",
    "clock_defaults",
]

#: Mephisto 1.4+'s ``make_randomized_int_id`` range.
RANDOM_ID_RANGE = (1_000_000, 2**63 - 1)

_columns: Dict[Tuple[str, str], bool] = {}


def mephisto_connection(db: Any) -> sqlite3.Connection:
    """The calling thread's connection of a LocalMephistoDB, on either Mephisto line."""
    get = getattr(db, "get_connection", None) or db._get_connection
    return get()


def find_granted(db: Any, qualification_id: Optional[str] = None, worker_id: Optional[str] = None) -> List[Any]:
    """Mephisto's ``GrantedQualification`` objects matching the filters, through the API the
    installed Mephisto offers without a deprecation warning (by keyword: the order differs)."""
    find = getattr(db, "find_granted_qualifications", None) or db.check_granted_qualifications
    return list(find(qualification_id=qualification_id, worker_id=worker_id))


#: The ``LocalMephistoDB`` method behind ``check_granted_qualifications`` and (1.5.2)
#: ``find_granted_qualifications``: one name on both lines.
GRANTED_READ = "_check_granted_qualifications"


def _granted_statement(qualification: bool, worker: bool, value: bool) -> str:
    """Only the given filters appear, so SQLite can use Mephisto's UNIQUE (worker_id, qualification_id)
    index for a worker (with or without a qualification) and any index on qualification_id that
    exists; ORDER BY rowid keeps the order of Mephisto's full scan (an index walk orders by its key)."""
    where = [c for c, given in (("worker_id = ?", worker), ("qualification_id = ?", qualification),
                                ("value = ?", value)) if given]
    condition = " WHERE " + " AND ".join(where) if where else ""
    return f"SELECT * FROM granted_qualifications{condition} ORDER BY rowid"


_GRANTED_SQL: Dict[Tuple[bool, bool, bool], str] = {
    (q, w, v): _granted_statement(q, w, v) for q in (False, True) for w in (False, True) for v in (False, True)
}


def granted_sql(qualification_id: Any = None, worker_id: Any = None, value: Any = None) -> Tuple[str, List[Any]]:
    """The statement and parameters :func:`granted_rows` runs for these filters (None = not given)."""
    given = (qualification_id is not None, worker_id is not None, value is not None)
    params = [p for p in (worker_id, qualification_id, value) if p is not None]
    return _GRANTED_SQL[given], params


def granted_rows(conn: sqlite3.Connection, qualification_id: Any = None, worker_id: Any = None,
                 value: Any = None) -> List[Any]:
    """Mephisto's ``granted_qualifications`` rows matching the given filters, exactly as its own read
    returns them: same rows (``col = ?`` compares with the same type affinity as Mephisto's
    ``?N IS NULL OR col = ?N``, so ``"5"`` matches 5 and ``"x"`` matches nothing) in the same order
    (rowid, the order of its full scan), with the connection's own row factory."""
    sql, params = granted_sql(qualification_id, worker_id, value)
    return conn.execute(sql, params).fetchall()


def mephisto_migrations() -> List[str]:
    """Names of the database migrations the installed Mephisto applies when a LocalMephistoDB opens a
    file (1.4+ rebuilds its tables in the first one); empty for a Mephisto without that framework."""
    if importlib.util.find_spec("mephisto.abstractions.databases.migrations") is None:
        return []
    from mephisto.abstractions.databases.migrations import migrations

    return list(migrations)


def has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    """Whether Mephisto's ``table`` has ``column`` in this database (1.5.2 added some)."""
    return any(r[1] == column for r in conn.execute(f"PRAGMA table_info({table})"))


def uses_random_ids(conn: sqlite3.Connection, table: str) -> bool:
    """True for a table migrated by Mephisto 1.4+ (no AUTOINCREMENT): Mephisto then writes a
    random id itself, and so must we to write the same rows."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return row is not None and "AUTOINCREMENT" not in str(row[0]).upper()


def random_id() -> int:
    """A fresh id as Mephisto 1.4+ makes them."""
    return random.randint(*RANDOM_ID_RANGE)


def random_ids_in_order(position: str, slices: int) -> str:
    """An SQL expression drawing a random id per row in :data:`RANDOM_ID_RANGE`, ascending with
    ``position`` (an integer from 0 to ``slices`` - 1, e.g. a row number): the range is cut into
    ``slices`` equal parts and each row draws within its own. Rows inserted in ``position`` order
    are then in id order (no sort needed), and two rows never draw the same id."""
    low, high = RANDOM_ID_RANGE
    width = (high - low + 1) // max(slices, 1)
    return f"({low} + ({position}) * {width} + ((random() & 9223372036854775807) % {width}))"


_CLOCK = ("now", "current_")


def clock_defaults(conn: sqlite3.Connection, table: str) -> List[Tuple[str, Any]]:
    """(column, value) of each column of Mephisto's ``table`` whose default reads the clock
    (``CURRENT_TIMESTAMP``; 1.4+'s ``STRFTIME(..., 'NOW')``), its default evaluated once, now.

    A set-based INSERT that binds these writes what the defaults would: SQLite fixes "now"
    for the whole statement, so every row of one INSERT gets the same instant either way; but a
    default is evaluated per row (two STRFTIME calls a row were most of a 10,000-row insert).
    """
    found = [(r[1], r[4]) for r in conn.execute(f"PRAGMA table_info({table})")
             if r[4] is not None and any(word in str(r[4]).lower() for word in _CLOCK)]
    if not found:
        return []
    values = conn.execute("SELECT " + ", ".join(f"({expression})" for _, expression in found)).fetchone()
    return [(column, values[i]) for i, (column, _) in enumerate(found)]
