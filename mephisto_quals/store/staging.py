"""Staged bulk writes: rows wait in a TEMP table, then one short transaction applies them.

A live Mephisto run in another process waits for our write lock (its connections give up after
5 s). So all that can happens before the lock: the rows go into a connection-private TEMP table
(its own file: filling it locks nothing of Mephisto's), and workers are looked up as the rows go
in, in short read transactions. Under the lock, a few set-based statements read each worker's grant and write
Mephisto's rows (exactly those of its per-row INSERT / UPDATE in place / DELETE by pair, in the
given order), our expiry, the audit and the review app's rows. It stays all-or-nothing; the gate
sees the old list or the new one. TEMP rows written in a transaction roll back with it, so a dry
run reads its outcomes before the rollback.
"""

from __future__ import annotations

import sqlite3
from itertools import chain
from typing import Any, Optional, Sequence, Tuple

from mephisto_quals.store import audit, reviews
from mephisto_quals.store.grants import META_JOIN
from mephisto_quals.store.mephisto import clock_defaults, random_ids_in_order, uses_random_ids
from mephisto_quals.store.session import savepoint
from mephisto_quals.store.stage_reads import BATCHES, GROUPS, REMOVED, TABLE, StageReads
from mephisto_quals.store.staged_rows import Groups, Outcome, StagedRow, UniformRow
from mephisto_quals.store.workers import insert_workers

__all__ = ["Stage", "StagedRow", "UniformRow", "Groups", "Outcome", "STAGE_PART"]

#: Rows staged per :meth:`Stage.add` call: their worker lookups share one short read transaction.
STAGE_PART = 5_000
#: Rows per staging statement (5 bound values each: well under SQLite's oldest limit of 999).
INSERT_ROWS = 150


class Stage(StageReads):
    """A TEMP table of rows for one bulk call on one connection."""

    def __init__(self, conn: sqlite3.Connection, groups: Groups, repeats: bool = True, distinct: bool = False) -> None:
        """Rows name their shared part (provider, expiry, reason) by its number in ``groups``.
        ``repeats=False``: the caller gives each (given, provider) once (a plain, faster table);
        else a repeat merges into the first (see _insert). ``distinct``: moreover no two rows name
        one worker (different Mephisto ids), so :meth:`resolve` need not look for repeats."""
        self.conn = conn
        self.groups = groups
        self.repeats = repeats and not distinct
        self.distinct = distinct
        for table in (TABLE, BATCHES, GROUPS):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"""CREATE TABLE {GROUPS} (grp INTEGER PRIMARY KEY, provider TEXT, pkey TEXT NOT NULL,
                             expires_at REAL, reason TEXT, bkey TEXT NOT NULL)""")
        conn.execute(
            f"""CREATE TABLE {TABLE} (
                seq INTEGER PRIMARY KEY, given TEXT NOT NULL, by_id INTEGER, name TEXT, provider TEXT,
                pkey TEXT NOT NULL,
                value INTEGER, expires_at REAL, reason TEXT,
                worker_id INTEGER, worker_name TEXT, last INTEGER NOT NULL DEFAULT 1,
                status TEXT, old_value INTEGER, shown_old INTEGER, old_expires REAL, old_reason TEXT,
                row_id INTEGER, created TEXT,
                new_worker_id INTEGER, line INTEGER, conflict INTEGER, bkey TEXT, rank INTEGER,
                ptype TEXT
                {", UNIQUE (given, pkey)" if repeats else ""})"""
        )
        self._groups_staged = 0
        #: Whether two rows name one worker (decided by :meth:`resolve`; until then, maybe).
        self.maybe_repeats = True
        #: Named workers to create (:meth:`plan_new_workers`; None: not planned yet).
        self.new_workers: Optional[int] = None
        self.random_ids = False
        #: Whether some rows name workers by a name not found when staged (known after :meth:`resolve`).
        self.unfound_names = True

    def add(self, rows: Sequence[Tuple[Any, ...]], group: Optional[int] = None) -> int:
        """Stage rows (see :data:`StagedRow`) after those already staged, looking their workers up
        as they go in; returns how many were read. With ``group``, every row is of that group and
        has no line: give (given, ref, value) only (fewer values to bind). Outside a transaction
        the lookups of one call of this share one short read transaction (a writer in another
        process waits for it, a few milliseconds), instead of one lock per row."""
        fresh = self.groups.groups[self._groups_staged:]
        if fresh:
            self.conn.executemany(
                f"INSERT INTO {GROUPS} (grp, provider, pkey, expires_at, reason, bkey) VALUES (?, ?, ?, ?, ?, ?)",
                [(self._groups_staged + i, g.provider, g.provider or "", g.expires_at, g.reason, g.audit_key)
                 for i, g in enumerate(fresh)],
            )
            self._groups_staged += len(fresh)
        own = not self.conn.in_transaction
        if own:
            self.conn.execute("BEGIN")
        try:
            self._insert(rows, group)
        finally:
            if own:
                self.conn.execute("COMMIT")
        return len(rows)

    def _insert(self, rows: Sequence[Tuple[Any, ...]], group: Optional[int]) -> None:
        # INSERT_ROWS rows per statement (executing one statement per row costs more than the row),
        # their worker looked up by a join, in C, in the given order. Rows of one group bind three
        # values each and the group's columns once; mixed rows bind five and join their group
        # (CROSS JOIN keeps the rows in the outer loop; the group tells id or name). The same
        # worker given twice: one row, in the first one's place, with the last one's grant; the
        # first repeat that differs is remembered (see conflicts).
        upsert = """ON CONFLICT (given, pkey) DO UPDATE SET
                    value = excluded.value, expires_at = excluded.expires_at, reason = excluded.reason,
                    bkey = excluded.bkey,
                    conflict = CASE WHEN conflict IS NULL AND (value IS NOT excluded.value
                        OR expires_at IS NOT excluded.expires_at OR reason IS NOT excluded.reason)
                        THEN excluded.line ELSE conflict END""" if self.repeats else ""
        shared: Tuple[Any, ...]
        if group is not None:  # (given, ref, value) rows of one group: its columns bound once per statement
            g = self.groups.groups[group]
            ref, join = ("by_id", "w.worker_id = v.ref") if g.provider is None else ("name", "w.worker_name = v.ref")
            marks, shared = "(?, ?, ?)", (g.provider, g.provider or "", g.expires_at, g.reason, g.audit_key)
            head = "WITH v (given, ref, value) AS (VALUES "
            tail = f""") INSERT INTO {TABLE} (given, {ref}, provider, pkey, value, expires_at, reason, bkey,
                                               worker_id, worker_name, ptype, status)
                    SELECT v.given, v.ref, ?, ?, v.value, ?, ?, ?, w.worker_id, w.worker_name, w.provider_type,
                           CASE WHEN w.worker_id IS NOT NULL THEN 'granted' END
                    FROM v LEFT JOIN workers w ON {join} WHERE true {upsert}"""
        else:  # (given, ref, value, line, group) rows
            marks, shared = "(?, ?, ?, ?, ?)", ()
            head = "WITH v (given, ref, value, line, grp) AS (VALUES "
            tail = f""") INSERT INTO {TABLE} (given, by_id, name, provider, pkey, value, expires_at, reason, line,
                                               bkey, worker_id, worker_name, ptype, status)
                    SELECT v.given, CASE WHEN g.provider IS NULL THEN v.ref END,
                           CASE WHEN g.provider IS NOT NULL THEN v.ref END,
                           g.provider, g.pkey, v.value, g.expires_at, g.reason, v.line, g.bkey,
                           coalesce(wi.worker_id, wn.worker_id), coalesce(wi.worker_name, wn.worker_name),
                           coalesce(wi.provider_type, wn.provider_type),
                           CASE WHEN coalesce(wi.worker_id, wn.worker_id) IS NOT NULL THEN 'granted' END
                    FROM v CROSS JOIN {GROUPS} g
                    LEFT JOIN workers wi ON g.provider IS NULL AND wi.worker_id = v.ref
                    LEFT JOIN workers wn ON g.provider IS NOT NULL AND wn.worker_name = v.ref
                    WHERE g.grp = v.grp {upsert}"""
        for start in range(0, len(rows), INSERT_ROWS):
            part = rows[start:start + INSERT_ROWS]
            self.conn.execute(head + ",".join([marks] * len(part)) + tail, [*chain.from_iterable(part), *shared])

    def resolve(self) -> None:
        """Once every row is staged (their workers looked up on the way in): index what the
        apply looks up and find out whether two rows name one worker (see _mark_last).

        Rows by id name workers that existed when staged; a name not found then may be created
        by the time of the apply, but never as a worker some id row names (that one existed, so
        the name would have been found). So repeats are known here, outside the lock: two found
        rows with one worker, or two unfound rows with one name.
        """
        c = self.conn
        named = any(g.provider is not None for g in self.groups.groups)  # else every row is by id
        self.unfound_names = named and c.execute(
            f"SELECT 1 FROM {TABLE} WHERE worker_id IS NULL AND name IS NOT NULL LIMIT 1").fetchone() is not None
        if self.unfound_names:  # the only rows looked up by name from here on
            c.execute("CREATE INDEX IF NOT EXISTS temp.mephisto_quals_stage_name ON mephisto_quals_stage (name)")
        if self.distinct and not self.unfound_names:
            self.maybe_repeats = False
            return
        c.execute("CREATE INDEX IF NOT EXISTS temp.mephisto_quals_stage_worker ON mephisto_quals_stage (worker_id)")
        self.maybe_repeats = c.execute(
            f"""SELECT 1 FROM {TABLE} WHERE worker_id IS NOT NULL GROUP BY worker_id HAVING count(*) > 1
                UNION ALL SELECT 1 FROM {TABLE} WHERE worker_id IS NULL AND name IS NOT NULL
                GROUP BY name HAVING count(*) > 1 LIMIT 1"""
        ).fetchone() is not None

    def plan_new_workers(self) -> None:
        """Outside the lock: number the named workers not found (one per name, in the given order)
        and, on a database Mephisto 1.4+ migrated, draw their random ids (ascending in name order)."""
        c = self.conn
        if not self.unfound_names:
            self.new_workers = 0
            return
        c.execute(
            f"""UPDATE {TABLE} SET rank = r.n FROM (
                    SELECT s.seq, row_number() OVER (ORDER BY s.seq) AS n FROM {TABLE} s
                    WHERE s.worker_id IS NULL AND s.name IS NOT NULL
                      AND s.seq = (SELECT min(t.seq) FROM {TABLE} t WHERE t.name = s.name)) AS r
                WHERE {TABLE}.seq = r.seq"""
        )
        self.new_workers = int(c.execute(f"SELECT count(*) FROM {TABLE} WHERE rank IS NOT NULL").fetchone()[0])
        self.random_ids = uses_random_ids(c, "workers")
        if self.new_workers and self.random_ids:  # ascending in name order: see create_workers
            c.execute(
                f"""UPDATE {TABLE} SET new_worker_id = {random_ids_in_order("r.k", self.new_workers)} FROM (
                        SELECT seq, row_number() OVER (ORDER BY name) - 1 AS k FROM {TABLE}
                        WHERE rank IS NOT NULL) AS r
                    WHERE {TABLE}.seq = r.seq"""
            )

    def create_workers(self) -> None:
        """Insert the named workers Mephisto has not seen, as Mephisto would (in the given order;
        random 63-bit ids once Mephisto 1.4+ migrated the table), then resolve them. Inside the
        caller's transaction, so they commit with the grant. Numbered by :meth:`plan_new_workers`
        outside the lock; when nobody created any of them meanwhile, their ids follow from the
        insert itself and they are known to hold nothing yet."""
        c = self.conn
        if self.new_workers is None:
            self.plan_new_workers()
        if not self.new_workers:  # every named worker exists
            return
        unseen = f"""FROM {TABLE} s WHERE s.rank IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.worker_name = s.name)"""
        ids = "new_worker_id"
        if self.random_ids:  # in id order, which is name order: both of the table's B-trees fill in turn
            try:
                with savepoint(c):
                    made = c.execute(f"INSERT INTO workers (worker_id, worker_name, provider_type) SELECT"
                                     f" s.new_worker_id, s.name, s.provider {unseen} ORDER BY s.new_worker_id").rowcount
            except sqlite3.IntegrityError:  # a random id clashed (about 1 in 10^13): one by one, retried
                insert_workers(c, c.execute(f"SELECT s.name, s.provider {unseen} ORDER BY s.seq").fetchall())
                made = -1
        else:
            made = c.execute(f"INSERT INTO workers (worker_name, provider_type)"
                             f" SELECT s.name, s.provider {unseen} ORDER BY s.seq").rowcount
            last = int(c.execute("SELECT last_insert_rowid()").fetchone()[0])
            ids = f"({last - made} + rank)"  # one INSERT under the write lock: consecutive ids, in order
        if made == self.new_workers:
            c.execute(f"UPDATE {TABLE} SET worker_id = {ids}, worker_name = name, status = 'granted'"
                      " WHERE rank IS NOT NULL")
        c.execute(
            f"""UPDATE {TABLE} SET (worker_id, worker_name, status) = (
                    SELECT w.worker_id, w.worker_name, 'granted' FROM workers w WHERE w.worker_name = {TABLE}.name)
                WHERE worker_id IS NULL AND name IS NOT NULL"""
        )

    def _mark_last(self) -> None:
        """Several rows may name one worker (an id and a name): the last row wins, the others follow it."""
        if not self.maybe_repeats:
            return
        self.conn.execute(
            f"""UPDATE {TABLE} SET last = (
                    seq = (SELECT max(t.seq) FROM {TABLE} t WHERE t.worker_id = {TABLE}.worker_id))
                WHERE worker_id IS NOT NULL"""
        )
        self.conn.execute(f"UPDATE {TABLE} SET status = NULL WHERE NOT last")  # only the last row is written

    def _only_audit_key(self) -> Optional[str]:
        """The audit batch key every staged row shares, if they all share one (one batch to write)."""
        keys = {g.audit_key for g in self.groups.groups}
        return keys.pop() if len(keys) == 1 else None

    def apply_grant(self, qual_id: int, qualification: str, now: float, source: str, user: str) -> None:
        """Grant the staged rows' values of one qualification, inside the caller's write transaction:
        new rows inserted, changed values updated in place, expiry/reason kept beside them, every
        change audited (and recorded for Mephisto 1.5.2's review app)."""
        c = self.conn
        self._mark_last()
        # Each worker's current grant and what the call does to it: the rows of found workers were
        # staged as new grants ('granted'); those of workers holding one are joined to it and corrected.
        held = c.execute("SELECT 1 FROM granted_qualifications WHERE qualification_id = ? LIMIT 1",
                         (qual_id,)).fetchone() is not None  # else nobody holds it: every found row is new
        holders = held and c.execute(
            f"""UPDATE {TABLE} SET (old_value, old_expires, old_reason, row_id, created, status) = (
                    g.value, m.expires_at, m.reason, g.granted_qualification_id, g.creation_date,
                    CASE WHEN g.value IS {TABLE}.value AND m.expires_at IS {TABLE}.expires_at
                              AND m.reason IS {TABLE}.reason THEN 'unchanged' ELSE 'updated' END)
                FROM granted_qualifications g {META_JOIN}
                WHERE g.qualification_id = ? AND g.worker_id = {TABLE}.worker_id AND {TABLE}.last""",
            (qual_id,),
        ).rowcount
        dates = clock_defaults(c, "granted_qualifications")  # bound once, as the defaults would give
        named = "".join(", " + column for column, _ in dates)
        c.execute(
            f"""INSERT INTO granted_qualifications (qualification_id, worker_id, value{named})
                SELECT ?, worker_id, value{", ?" * len(dates)} FROM {TABLE} WHERE status = 'granted' ORDER BY seq""",
            (qual_id, *(v for _, v in dates)),
        )
        with_meta = "(expires_at IS NOT NULL OR reason IS NOT NULL)"
        if holders:  # some workers hold a grant of it already: values and meta to change in place
            c.execute(  # by the row found above (under this lock it is the worker's row of this qualification)
                f"""UPDATE granted_qualifications AS g SET value = s.value FROM (
                        SELECT row_id, value FROM {TABLE} WHERE status = 'updated' AND old_value IS NOT value) AS s
                    WHERE g.granted_qualification_id = s.row_id"""
            )
            c.execute(
                f"""DELETE FROM mephisto_quals_grant_meta WHERE granted_qualification_id IN (
                        SELECT row_id FROM {TABLE} WHERE status = 'updated' AND NOT {with_meta}
                        AND (old_expires IS NOT NULL OR old_reason IS NOT NULL))"""
            )
        if any(g.expires_at is not None or g.reason is not None for g in self.groups.groups):
            c.execute(
                f"""UPDATE {TABLE} SET (row_id, created) = (
                        SELECT g.granted_qualification_id, g.creation_date FROM granted_qualifications g
                        WHERE g.qualification_id = ? AND g.worker_id = {TABLE}.worker_id)
                    WHERE status = 'granted' AND {with_meta}""",
                (qual_id,),
            )
            c.execute(
                f"""INSERT OR REPLACE INTO mephisto_quals_grant_meta
                    (granted_qualification_id, worker_id, qualification_id, expires_at, reason, granted_at,
                     grant_created)
                    SELECT row_id, worker_id, ?, expires_at, reason, ?, created FROM {TABLE}
                    WHERE status IN ('granted', 'updated') AND {with_meta} ORDER BY seq""",
                (qual_id, now),
            )
        changed = "s.status IN ('granted', 'updated')"
        audit.record_staged(c, TABLE, BATCHES, changed, qualification, "grant", now, source, user, "s.value",
                            self._only_audit_key())
        reviews.record_staged(c, TABLE, changed, "s.worker_id, NULL, ?, s.value, NULL, 'grant', s.reason", (qual_id,),
                              now)

    def apply_revoke(self, qual_ids: Sequence[Tuple[str, int]], action: str, now: float, source: str,
                     user: str) -> None:
        """Revoke each named qualification from the staged workers, inside the caller's write
        transaction, audited (the staged rows carry the reason). A worker holding any of them is
        revoked; the first one's old value is the one shown. Companions such as an onboarding's
        "-failed" list go with the first."""
        c = self.conn
        self._mark_last()
        c.execute(f"DROP TABLE IF EXISTS {REMOVED}")
        c.execute(f"CREATE TABLE {REMOVED} (seq INTEGER, qualification TEXT, worker_id INTEGER, old_value INTEGER)")
        c.execute(f"UPDATE {TABLE} SET status = 'not held' WHERE worker_id IS NOT NULL AND last")
        for position, (name, qid) in enumerate(qual_ids):
            c.execute(
                f"""UPDATE {TABLE} SET (old_value, row_id) = (
                        SELECT g.value, g.granted_qualification_id FROM granted_qualifications g
                        WHERE g.qualification_id = ? AND g.worker_id = {TABLE}.worker_id)
                    WHERE worker_id IS NOT NULL AND last""",
                (qid,),
            )
            held = "s.row_id IS NOT NULL AND s.last"
            if position == 0:
                c.execute(f"UPDATE {TABLE} SET shown_old = old_value WHERE worker_id IS NOT NULL AND last")
            c.execute(f"UPDATE {TABLE} AS s SET status = 'revoked' WHERE {held}")
            c.execute(f"INSERT INTO {REMOVED} SELECT s.seq, ?, s.worker_id, s.old_value FROM {TABLE} s WHERE {held}",
                      (name,))
            audit.record_staged(c, TABLE, BATCHES, held, name, action, now, source, user, "NULL",
                                self._only_audit_key())
            reviews.record_staged(c, TABLE, held, "s.worker_id, NULL, NULL, NULL, ?, 'revoke', s.reason", (qid,), now)
            pairs = f"SELECT s.worker_id FROM {TABLE} s WHERE {held}"
            c.execute(f"DELETE FROM granted_qualifications WHERE qualification_id = ? AND worker_id IN ({pairs})",
                      (qid,))
            c.execute(f"DELETE FROM mephisto_quals_grant_meta WHERE qualification_id = ? AND worker_id IN ({pairs})",
                      (qid,))
        c.execute(f"UPDATE {TABLE} SET old_value = shown_old WHERE worker_id IS NOT NULL AND last")

    def drop(self) -> None:
        for table in (TABLE, BATCHES, REMOVED, GROUPS):
            self.conn.execute(f"DROP TABLE IF EXISTS {table}")
