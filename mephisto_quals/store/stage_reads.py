"""What a bulk call reads back from its stage (:mod:`mephisto_quals.store.staging`): refusals,
outcomes, changes and counts, in the order the rows were given."""

from __future__ import annotations

import sqlite3
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from mephisto_quals.store.staged_rows import Outcome

__all__ = ["StageReads"]

#: The stage and its scratch tables (TEMP: private to the connection, in their own file).
TABLE = "temp.mephisto_quals_stage"
BATCHES = "temp.mephisto_quals_stage_batches"
REMOVED = "temp.mephisto_quals_stage_removed"
GROUPS = "temp.mephisto_quals_stage_groups"


class StageReads:
    """The reading half of a :class:`mephisto_quals.store.staging.Stage`."""

    conn: sqlite3.Connection
    #: Whether two rows may name one worker (see ``Stage.resolve``).
    maybe_repeats: bool
    #: What the last :meth:`plain_outcomes` returned (the changes can be taken from it).
    plain_read: Optional[List[Tuple[Any, ...]]] = None

    def conflicts(self, limit: int) -> List[Tuple[str, Optional[int], Optional[int]]]:
        """Up to ``limit`` workers given again with a different grant, as (given, first line,
        differing line)."""
        rows = self.conn.execute(
            f"SELECT given, line, conflict FROM {TABLE} WHERE conflict IS NOT NULL ORDER BY seq LIMIT ?", (limit,)
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def unknown_ids(self) -> List[Tuple[str, Optional[int]]]:
        """(given, line) of rows naming a Mephisto worker id that no worker has, in order."""
        rows = self.conn.execute(
            f"SELECT given, line FROM {TABLE} WHERE worker_id IS NULL AND by_id IS NOT NULL ORDER BY seq"
        )
        return [(r[0], r[1]) for r in rows]

    def removed(self) -> List[Tuple[str, int, Optional[str], int]]:
        """(qualification, worker_id, worker_name, old value) of every grant the last revoke removed."""
        rows = self.conn.execute(
            f"""SELECT r.qualification, r.worker_id, s.worker_name, r.old_value FROM {REMOVED} r
                JOIN {TABLE} s ON s.seq = r.seq ORDER BY r.seq, r.rowid"""
        )
        return [(r[0], int(r[1]), r[2], r[3]) for r in rows]

    def provider_types(self, skip: Sequence[str]) -> Dict[int, str]:
        """worker_id -> Mephisto's provider type of the workers this call changed (created ones
        included), except those of the providers in ``skip``."""
        marks = ",".join("?" * len(skip)) or "NULL"
        rows = self.conn.execute(
            f"""SELECT worker_id, COALESCE(ptype, provider) FROM {TABLE}
                WHERE worker_id IS NOT NULL AND status IN ('granted', 'updated', 'revoked')
                  AND COALESCE(ptype, provider) IS NOT NULL AND COALESCE(ptype, provider) NOT IN ({marks})""",
            list(skip),
        )
        return {int(r[0]): r[1] for r in rows}

    def tally(self, quiet_providers: Sequence[str]) -> Optional[Dict[str, int]]:
        """Status counts of the rows of ``quiet_providers`` (whose outcomes need no object each:
        see ``outcomes(skip=...)``), counted in SQL; None when rows may repeat a worker (then
        every outcome is read one by one)."""
        if self.maybe_repeats:
            return None
        marks = ",".join("?" * len(quiet_providers))
        rows = self.conn.execute(
            f"SELECT status, count(*) FROM {TABLE} WHERE worker_id IS NOT NULL AND provider IN ({marks})"
            " GROUP BY status",
            list(quiet_providers),
        )
        return {r[0]: int(r[1]) for r in rows}

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        """Plain tuples (not the session's Row objects): the fast paths map them onto records in C."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, list(args)).fetchall()

    def plain_outcomes(self, revoke: bool, missing_by_name: Tuple[str, Optional[str]],
                       missing_by_id: Tuple[str, Optional[str]]) -> List[Tuple[Any, ...]]:
        """Every row's (given, status, worker_id, worker_name, old value, new value, error), in
        order, set-based: only when no two rows name one worker (then each row is its own
        outcome; else read :meth:`outcomes`). A worker not found reads as ``missing_by_id`` /
        ``missing_by_name`` (status, error)."""
        if self.maybe_repeats:
            raise ValueError("plain_outcomes: two rows name one worker; read outcomes() instead")
        found = "s.worker_id IS NOT NULL"
        self.plain_read = self._rows(
            f"""SELECT s.given, CASE WHEN {found} THEN s.status WHEN s.by_id IS NOT NULL THEN ? ELSE ? END,
                       s.worker_id, s.worker_name, s.old_value,
                       CASE WHEN {found} THEN {"NULL" if revoke else "s.value"} END,
                       CASE WHEN {found} THEN NULL WHEN s.by_id IS NOT NULL THEN ? ELSE ? END
                FROM {TABLE} s ORDER BY s.seq""",
            (missing_by_id[0], missing_by_name[0], missing_by_id[1], missing_by_name[1]),
        )
        return self.plain_read

    def granted(self, quiet: Sequence[str] = ()) -> List[Tuple[Any, ...]]:
        """(worker id, worker name, old value, new value, expiry, reason) of each grant the last
        apply made or changed, in order, except rows given with a provider in ``quiet``."""
        marks = ",".join("?" * len(quiet))
        keep = f"AND (s.provider IS NULL OR s.provider NOT IN ({marks}))" if quiet else ""
        return self._rows(
            f"""SELECT s.worker_id, s.worker_name, s.old_value, s.value, s.expires_at, s.reason FROM {TABLE} s
                WHERE s.worker_id IS NOT NULL AND s.last AND s.status IN ('granted', 'updated') {keep}
                ORDER BY s.seq""",
            quiet,
        )

    def outcomes(self, revoke: bool = False, skip: Sequence[str] = ()) -> Iterator[Outcome]:
        """Every staged row's outcome, in order, except found workers of the providers in
        ``skip`` (counted by :meth:`tally`). A worker named by several rows (an id and a name)
        reads as if the rows ran one after another: the first against the database, each later
        one against the row before (for a revoke: already revoked)."""
        where = ""
        if skip:
            marks = ",".join("?" * len(skip))
            where = f"WHERE s.worker_id IS NULL OR s.provider IS NULL OR s.provider NOT IN ({marks})"
        rows = self._rows(
            f"""SELECT s.given, s.worker_id, s.worker_name, s.value, s.expires_at, s.reason, s.by_id IS NOT NULL,
                       s.last, l.status, l.old_value, l.old_expires, l.old_reason, l.row_id IS NOT NULL
                FROM {TABLE} s LEFT JOIN {TABLE} l ON l.seq = (CASE WHEN s.last OR s.worker_id IS NULL THEN s.seq
                    ELSE (SELECT max(t.seq) FROM {TABLE} t WHERE t.worker_id = s.worker_id) END)
                {where} ORDER BY s.seq""", skip)
        earlier: Dict[int, Tuple[Any, ...]] = {}  # workers with more rows to come: the grant so far
        for given, wid, wname, value, expires, reason, by_id, last, status, old, old_exp, old_reason, held in rows:
            own = (value, expires, reason)
            if wid is None:
                yield Outcome(given, "missing", None, None, None, value, bool(by_id), True)
                continue
            wid = int(wid)
            if wid not in earlier:
                if not last:  # the first of several rows: its own grant against the database
                    earlier[wid] = own if not revoke else ()
                    if not revoke:
                        same = (old, old_exp, old_reason) == own
                        status = "granted" if not held else "unchanged" if same else "updated"
            else:
                before = earlier.pop(wid) if last else earlier[wid]
                if revoke:
                    status, old = "not held", None
                else:
                    status = "unchanged" if before == own else "updated"
                    old = before[0]
                    if not last:
                        earlier[wid] = own
            yield Outcome(given, status, wid, wname, old, value, bool(by_id), bool(last))
