"""Mephisto's ``qualifications`` table: finding and creating qualifications by name."""

from __future__ import annotations

import sqlite3
from typing import Dict, List, Optional

from mephisto_quals.errors import UnknownQualificationError
from mephisto_quals.store.mephisto import has_column

__all__ = ["qualification_id", "find_ids", "create", "description_supported", "describe"]


def find_ids(conn: sqlite3.Connection, names: List[str]) -> Dict[str, int]:
    """name -> qualification id, for the names that exist."""
    out: Dict[str, int] = {}
    for name in dict.fromkeys(names):
        row = conn.execute(
            "SELECT qualification_id FROM qualifications WHERE qualification_name = ?", (name,)
        ).fetchone()
        if row is not None:
            out[name] = int(row[0])
    return out


def description_supported(conn: sqlite3.Connection) -> bool:
    """Mephisto 1.5.2 databases keep a description per qualification."""
    return has_column(conn, "qualifications", "description")


def create(conn: sqlite3.Connection, name: str, description: Optional[str] = None) -> int:
    """Insert a qualification as Mephisto's ``make_qualification(name, description)`` does."""
    if description is not None and description_supported(conn):
        cursor = conn.execute(
            "INSERT INTO qualifications (qualification_name, description) VALUES (?, ?)", (name, description[:500])
        )
    else:
        cursor = conn.execute("INSERT INTO qualifications (qualification_name) VALUES (?)", (name,))
    return int(cursor.lastrowid or 0)


def qualification_id(
    conn: sqlite3.Connection, name: str, create_missing: bool = False, description: Optional[str] = None
) -> int:
    """The id of a named qualification; created when asked, else UnknownQualificationError."""
    found = find_ids(conn, [name])
    if name in found:
        return found[name]
    if not create_missing:
        raise UnknownQualificationError(
            f"qualification {name!r} does not exist; check the name (list them with 'mephisto-quals list') "
            "or create it (grant with --create / create=True)"
        )
    return create(conn, name, description)


def describe(conn: sqlite3.Connection, names: Optional[List[str]] = None) -> Dict[str, Optional[str]]:
    """name -> description (None where unset or on a database without descriptions)."""
    if not description_supported(conn):
        return {}
    rows = conn.execute("SELECT qualification_name, description FROM qualifications").fetchall()
    return {r[0]: r[1] for r in rows if names is None or r[0] in names}
