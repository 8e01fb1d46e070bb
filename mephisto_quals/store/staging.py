"""Staged bulk writes: rows wait in a TEMP table, then one short transaction applies them.

A live Mephisto run in another process waits for our write lock (its connections give up after
5 s). So all that can happens before the lock: the rows go into a connection-private TEMP table
(its own file: filling it locks nothing of Mephisto's) and workers are looked up in short read
statements. Under the lock, a few set-based statements read each worker's grant and write
Mephisto's rows (exactly those of its per-row INSERT / UPDATE in place / DELETE by pair, in the
given order), our expiry, the audit and the review app's rows. It stays all-or-nothing; the gate
sees the old list or the new one. TEMP rows written in a transaction roll back with it, so a dry
run reads its outcomes before the rollback.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from mephisto_quals.store import audit, reviews
from mephisto_quals.store.grants import META_JOIN
from mephisto_quals.store.mephisto import random_id_sql, uses_random_ids
from mephisto_quals.store.session import savepoint
from mephisto_quals.store.staged_rows import Outcome, StagedRow
from mephisto_quals.store.workers import insert_workers

__all__ = ["Stage", "StagedRow", "Outcome", "RESOLVE_CHUNK"]

#: Rows per read statement while resolving workers outside the lock (each holds a read lock briefly).
RESOLVE_CHUNK = 5_000
_TABLE = "temp.mephisto_quals_stage"
_BATCHES = "temp.mephisto_quals_stage_batches"
_REMOVED = "temp.mephisto_quals_stage_removed"


class Stage:
    """A TEMP table of rows for one bulk call on one connection."""

    def __init__(self, conn: sqlite3.Connection, repeats: bool = True) -> None:
        """``repeats=False``: the caller gives each worker once (a plain, faster table, indexed
        after loading); else a repeat of a row's (given, provider) merges into it (see _insert)."""
        self.conn = conn
        self.repeats = repeats
        conn.execute(f"DROP TABLE IF EXISTS {_TABLE}")
        conn.execute(f"DROP TABLE IF EXISTS {_BATCHES}")
        conn.execute(
            f"""CREATE TABLE {_TABLE} (
                seq INTEGER PRIMARY KEY, given TEXT NOT NULL, by_id INTEGER, name TEXT, provider TEXT,
                pkey TEXT NOT NULL,
                value INTEGER, expires_at REAL, reason TEXT,
                worker_id INTEGER, worker_name TEXT, last INTEGER NOT NULL DEFAULT 1,
                status TEXT, old_value INTEGER, shown_old INTEGER, old_expires REAL, old_reason TEXT,
                row_id INTEGER, created TEXT,
                new_worker_id INTEGER, review_id INTEGER, line INTEGER, conflict INTEGER, bkey TEXT, rank INTEGER,
                ptype TEXT
                {", UNIQUE (given, pkey)" if repeats else ""})"""
        )
        if repeats:
            conn.execute("CREATE INDEX temp.mephisto_quals_stage_name ON mephisto_quals_stage (name)")
        self.size = 0
        #: Whether two rows may name one worker (decided by :meth:`resolve`; until then, maybe).
        self.maybe_repeats = True
        #: Named workers to create (:meth:`plan_new_workers`; None: not planned yet).
        self.new_workers: Optional[int] = None
        self.random_ids = False

    def add(self, rows: Iterable[StagedRow]) -> int:
        """Stage rows in the order given; returns how many were read."""
        before = self.size
        batch: List[Tuple[Any, ...]] = []
        keys: Dict[Tuple[Any, Any], str] = {}  # the audit batch key of each (expiry, reason), made once
        for r in rows:
            self.size += 1
            key = keys.get((r.expires_at, r.reason))
            if key is None:
                key = keys[(r.expires_at, r.reason)] = f"{r.expires_at!r},{r.reason!r}"
            batch.append((self.size, r.given, r.worker_id, r.name, r.provider, r.provider or "", r.value, r.expires_at,
                          r.reason, r.line, key))
            if len(batch) >= RESOLVE_CHUNK:
                self._insert(batch)
                batch = []
        if batch:
            self._insert(batch)
        return self.size - before

    def _insert(self, batch: Sequence[Tuple[Any, ...]]) -> None:
        # The same worker given twice: one row, in the first one's place, with the last one's grant;
        # the first repeat that differs is remembered (see conflicts).
        insert = f"""INSERT INTO {_TABLE}
                     (seq, given, by_id, name, provider, pkey, value, expires_at, reason, line, bkey)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
        if not self.repeats:
            self.conn.executemany(insert, batch)
            return
        self.conn.executemany(
            f"""{insert}
                ON CONFLICT (given, pkey) DO UPDATE SET
                    value = excluded.value, expires_at = excluded.expires_at, reason = excluded.reason,
                    bkey = excluded.bkey,
                    conflict = CASE WHEN conflict IS NULL AND (value IS NOT excluded.value
                        OR expires_at IS NOT excluded.expires_at OR reason IS NOT excluded.reason)
                        THEN excluded.line ELSE conflict END""",
            batch,
        )

    def conflicts(self, limit: int) -> List[Tuple[str, Optional[int], Optional[int]]]:
        """Up to ``limit`` workers given again with a different grant, as (given, first line,
        differing line)."""
        rows = self.conn.execute(
            f"SELECT given, line, conflict FROM {_TABLE} WHERE conflict IS NOT NULL ORDER BY seq LIMIT ?", (limit,)
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def resolve(self) -> None:
        """Find the workers that exist (by id or by name), in short read statements.

        Outside a transaction each statement holds a read lock only for its chunk of rows, so a
        writer in another process waits milliseconds, not the length of the whole lookup.
        """
        for low in range(1, self.size + 1, RESOLVE_CHUNK):
            for column, ours in (("worker_id", "by_id"), ("worker_name", "name")):  # by id, then by name
                self.conn.execute(
                    f"""UPDATE {_TABLE} SET (worker_id, worker_name, ptype) = (
                            SELECT w.worker_id, w.worker_name, w.provider_type FROM workers w
                            WHERE w.{column} = {_TABLE}.{ours})
                        WHERE seq BETWEEN ? AND ? AND worker_id IS NULL AND {ours} IS NOT NULL""",
                    (low, low + RESOLVE_CHUNK - 1),
                )
        self.conn.execute("CREATE INDEX IF NOT EXISTS temp.mephisto_quals_stage_bkey ON mephisto_quals_stage (bkey)")
        self.conn.execute("CREATE INDEX IF NOT EXISTS temp.mephisto_quals_stage_name ON mephisto_quals_stage (name)")
        # Outside the lock, too: can two rows name one worker (see _mark_last)?
        self.maybe_repeats = self.conn.execute(
            f"""SELECT 1 FROM {_TABLE} WHERE name IS NOT NULL GROUP BY name HAVING count(*) > 1
                UNION ALL SELECT 1 FROM {_TABLE} WHERE by_id IS NOT NULL LIMIT 1"""
        ).fetchone() is not None

    def unknown_ids(self) -> List[Tuple[str, Optional[int]]]:
        """(given, line) of rows naming a Mephisto worker id that no worker has, in order."""
        rows = self.conn.execute(
            f"SELECT given, line FROM {_TABLE} WHERE worker_id IS NULL AND by_id IS NOT NULL ORDER BY seq"
        )
        return [(r[0], r[1]) for r in rows]

    def _repeats(self) -> bool:
        """Whether two rows name one worker (an id and a name, or two spellings of one name)."""
        if not self.maybe_repeats:
            return False
        self.conn.execute("CREATE INDEX IF NOT EXISTS temp.mephisto_quals_stage_worker"
                          " ON mephisto_quals_stage (worker_id)")
        return self.conn.execute(
            f"SELECT 1 FROM {_TABLE} WHERE worker_id IS NOT NULL GROUP BY worker_id HAVING count(*) > 1 LIMIT 1"
        ).fetchone() is not None

    def plan_new_workers(self) -> None:
        """Outside the lock: number the named workers not found (one per name, in the given order)
        and, on a database Mephisto 1.4+ migrated, draw their random ids."""
        c = self.conn
        c.execute(
            f"""UPDATE {_TABLE} SET rank = r.n FROM (
                    SELECT s.seq, row_number() OVER (ORDER BY s.seq) AS n FROM {_TABLE} s
                    WHERE s.worker_id IS NULL AND s.name IS NOT NULL
                      AND s.seq = (SELECT min(t.seq) FROM {_TABLE} t WHERE t.name = s.name)) AS r
                WHERE {_TABLE}.seq = r.seq"""
        )
        self.new_workers = int(c.execute(f"SELECT count(*) FROM {_TABLE} WHERE rank IS NOT NULL").fetchone()[0])
        self.random_ids = uses_random_ids(c, "workers")
        if self.new_workers and self.random_ids:
            c.execute(f"UPDATE {_TABLE} SET new_worker_id = {random_id_sql()} WHERE rank IS NOT NULL")

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
        unseen = f"""FROM {_TABLE} s WHERE s.rank IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.worker_name = s.name)"""
        ids = "new_worker_id"
        if self.random_ids:  # inserted in id order: random ids in given order would touch pages all over
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
            c.execute(f"UPDATE {_TABLE} SET worker_id = {ids}, worker_name = name, status = 'granted'"
                      " WHERE rank IS NOT NULL")
        c.execute(
            f"""UPDATE {_TABLE} SET (worker_id, worker_name) = (
                    SELECT w.worker_id, w.worker_name FROM workers w WHERE w.worker_name = {_TABLE}.name)
                WHERE worker_id IS NULL AND name IS NOT NULL"""
        )

    def _mark_last(self) -> None:
        """Several rows may name one worker (an id and a name): the last row wins, the others follow it."""
        if not self._repeats():
            return
        self.conn.execute(
            f"""UPDATE {_TABLE} SET last = (
                    seq = (SELECT max(t.seq) FROM {_TABLE} t WHERE t.worker_id = {_TABLE}.worker_id))
                WHERE worker_id IS NOT NULL"""
        )

    def apply_grant(self, qual_id: int, qualification: str, now: float, source: str, user: str) -> None:
        """Grant the staged rows' values of one qualification, inside the caller's write transaction:
        new rows inserted, changed values updated in place, expiry/reason kept beside them, every
        change audited (and recorded for Mephisto 1.5.2's review app)."""
        c = self.conn
        self._mark_last()
        # One pass: each worker's current grant (a row of NULLs where none) and what the call does to it.
        c.execute(
            f"""UPDATE {_TABLE} SET (old_value, old_expires, old_reason, row_id, created, status) = (
                    SELECT g.value, m.expires_at, m.reason, g.granted_qualification_id, g.creation_date,
                           CASE WHEN g.granted_qualification_id IS NULL THEN 'granted'
                                WHEN g.value IS {_TABLE}.value AND m.expires_at IS {_TABLE}.expires_at
                                     AND m.reason IS {_TABLE}.reason THEN 'unchanged'
                                ELSE 'updated' END
                    FROM (SELECT 1) LEFT JOIN granted_qualifications g
                         ON g.qualification_id = ? AND g.worker_id = {_TABLE}.worker_id
                    {META_JOIN})
                WHERE worker_id IS NOT NULL AND last AND status IS NULL""",
            (qual_id,),
        )
        c.execute(
            f"""INSERT INTO granted_qualifications (qualification_id, worker_id, value)
                SELECT ?, worker_id, value FROM {_TABLE} WHERE status = 'granted' ORDER BY seq""",
            (qual_id,),
        )
        c.execute(
            f"""UPDATE granted_qualifications AS g SET value = s.value FROM {_TABLE} AS s
                WHERE s.status = 'updated' AND s.old_value IS NOT s.value
                  AND g.qualification_id = ? AND g.worker_id = s.worker_id""",
            (qual_id,),
        )
        with_meta = "(expires_at IS NOT NULL OR reason IS NOT NULL)"
        c.execute(
            f"""UPDATE {_TABLE} SET (row_id, created) = (
                    SELECT g.granted_qualification_id, g.creation_date FROM granted_qualifications g
                    WHERE g.qualification_id = ? AND g.worker_id = {_TABLE}.worker_id)
                WHERE status = 'granted' AND {with_meta}""",
            (qual_id,),
        )
        c.execute(
            f"""DELETE FROM mephisto_quals_grant_meta WHERE granted_qualification_id IN (
                    SELECT row_id FROM {_TABLE} WHERE status = 'updated' AND NOT {with_meta}
                    AND (old_expires IS NOT NULL OR old_reason IS NOT NULL))"""
        )
        c.execute(
            f"""INSERT OR REPLACE INTO mephisto_quals_grant_meta
                (granted_qualification_id, worker_id, qualification_id, expires_at, reason, granted_at, grant_created)
                SELECT row_id, worker_id, ?, expires_at, reason, ?, created FROM {_TABLE}
                WHERE status IN ('granted', 'updated') AND {with_meta} ORDER BY seq""",
            (qual_id, now),
        )
        changed = "s.status IN ('granted', 'updated')"
        audit.record_staged(c, _TABLE, _BATCHES, changed, qualification, "grant", now, source, user, "s.value")
        reviews.record_staged(c, _TABLE, changed, "s.worker_id, NULL, ?, s.value, NULL, 'grant', s.reason", (qual_id,),
                              now)

    def apply_revoke(self, qual_ids: Sequence[Tuple[str, int]], action: str, now: float, source: str,
                     user: str) -> None:
        """Revoke each named qualification from the staged workers, inside the caller's write
        transaction, audited (the staged rows carry the reason). A worker holding any of them is
        revoked; the first one's old value is the one shown. Companions such as an onboarding's
        "-failed" list go with the first."""
        c = self.conn
        self._mark_last()
        c.execute(f"DROP TABLE IF EXISTS {_REMOVED}")
        c.execute(f"CREATE TABLE {_REMOVED} (seq INTEGER, qualification TEXT, worker_id INTEGER, old_value INTEGER)")
        c.execute(f"UPDATE {_TABLE} SET status = 'not held' WHERE worker_id IS NOT NULL AND last")
        for position, (name, qid) in enumerate(qual_ids):
            c.execute(
                f"""UPDATE {_TABLE} SET (old_value, row_id) = (
                        SELECT g.value, g.granted_qualification_id FROM granted_qualifications g
                        WHERE g.qualification_id = ? AND g.worker_id = {_TABLE}.worker_id)
                    WHERE worker_id IS NOT NULL AND last""",
                (qid,),
            )
            held = "s.row_id IS NOT NULL AND s.last"
            if position == 0:
                c.execute(f"UPDATE {_TABLE} SET shown_old = old_value WHERE worker_id IS NOT NULL AND last")
            c.execute(f"UPDATE {_TABLE} AS s SET status = 'revoked' WHERE {held}")
            c.execute(f"INSERT INTO {_REMOVED} SELECT s.seq, ?, s.worker_id, s.old_value FROM {_TABLE} s WHERE {held}",
                      (name,))
            audit.record_staged(c, _TABLE, _BATCHES, held, name, action, now, source, user, "NULL")
            reviews.record_staged(c, _TABLE, held, "s.worker_id, NULL, NULL, NULL, ?, 'revoke', s.reason", (qid,), now)
            pairs = f"SELECT s.worker_id FROM {_TABLE} s WHERE {held}"
            c.execute(f"DELETE FROM granted_qualifications WHERE qualification_id = ? AND worker_id IN ({pairs})",
                      (qid,))
            c.execute(f"DELETE FROM mephisto_quals_grant_meta WHERE qualification_id = ? AND worker_id IN ({pairs})",
                      (qid,))
        c.execute(f"UPDATE {_TABLE} SET old_value = shown_old WHERE worker_id IS NOT NULL AND last")

    def removed(self) -> List[Tuple[str, int, Optional[str], int]]:
        """(qualification, worker_id, worker_name, old value) of every grant the last revoke removed."""
        rows = self.conn.execute(
            f"""SELECT r.qualification, r.worker_id, s.worker_name, r.old_value FROM {_REMOVED} r
                JOIN {_TABLE} s ON s.seq = r.seq ORDER BY r.seq, r.rowid"""
        )
        return [(r[0], int(r[1]), r[2], r[3]) for r in rows]

    def provider_types(self, skip: Sequence[str]) -> Dict[int, str]:
        """worker_id -> Mephisto's provider type of the workers this call changed (created ones
        included), except those of the providers in ``skip``."""
        marks = ",".join("?" * len(skip)) or "NULL"
        rows = self.conn.execute(
            f"""SELECT worker_id, COALESCE(ptype, provider) FROM {_TABLE}
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
            f"SELECT status, count(*) FROM {_TABLE} WHERE worker_id IS NOT NULL AND provider IN ({marks})"
            " GROUP BY status",
            list(quiet_providers),
        )
        return {r[0]: int(r[1]) for r in rows}

    def outcomes(self, revoke: bool = False, skip: Sequence[str] = ()) -> Iterator[Outcome]:
        """Every staged row's outcome, in order, except found workers of the providers in
        ``skip`` (counted by :meth:`tally`). A worker named by several rows (an id and a name)
        reads as if the rows ran one after another: the first against the database, each later
        one against the row before (for a revoke: already revoked)."""
        where = ""
        if skip:
            marks = ",".join("?" * len(skip))
            where = f"WHERE s.worker_id IS NULL OR s.provider IS NULL OR s.provider NOT IN ({marks})"
        rows = self.conn.execute(
            f"""SELECT s.given, s.worker_id, s.worker_name, s.value, s.expires_at, s.reason, s.by_id IS NOT NULL,
                       s.last, s.provider, l.status, l.old_value, l.old_expires, l.old_reason, l.row_id IS NOT NULL
                FROM {_TABLE} s LEFT JOIN {_TABLE} l ON l.seq = (CASE WHEN s.last OR s.worker_id IS NULL THEN s.seq
                    ELSE (SELECT max(t.seq) FROM {_TABLE} t WHERE t.worker_id = s.worker_id) END)
                {where} ORDER BY s.seq""", list(skip))
        earlier: Dict[int, Tuple[Any, ...]] = {}  # workers with more rows to come: the grant so far
        for row in rows:
            given, wid, wname, value, expires, reason, by_id, last, provider = row[:9]
            status, old, old_exp, old_reason, held = row[9:]
            own = (value, expires, reason)
            if wid is None:
                yield Outcome(given, "missing", None, None, None, value, expires, reason, bool(by_id), True)
                continue
            wid = int(wid)
            changed = (old,) if last and status in ("granted", "updated", "revoked") else None
            if wid not in earlier:
                if not last:  # the first of several rows: its own grant against the database
                    earlier[wid] = own if not revoke else ()
                    if not revoke:
                        same = (old, old_exp, old_reason) == own
                        status = "granted" if not held else "unchanged" if same else "updated"
                yield Outcome(given, status, wid, wname, old, value, expires, reason, bool(by_id), bool(last), changed,
                              provider)
                continue
            before = earlier.pop(wid) if last else earlier[wid]
            if revoke:
                status, old = "not held", None
            else:
                status = "unchanged" if before == own else "updated"
                old = before[0]
                if not last:
                    earlier[wid] = own
            yield Outcome(given, status, wid, wname, old, value, expires, reason, bool(by_id), bool(last), changed,
                          provider)

    def drop(self) -> None:
        for table in (_TABLE, _BATCHES, _REMOVED):
            self.conn.execute(f"DROP TABLE IF EXISTS {table}")
