"""Bulk, idempotent, audited grants and revokes: one call for many workers.

The rows left in Mephisto's ``granted_qualifications`` table are exactly those
``Worker.grant_qualification`` / ``revoke_qualification`` leave (insert, update the value in
place on re-grant, delete on revoke). Expiry and reason live in our own table beside them,
and every change writes an audit row in the same transaction. A per-worker problem
(unknown id, malformed name) fails that worker only; everything else commits.
"""

from __future__ import annotations

import getpass
import os
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from mephisto_quals.compile.durations import format_instant, parse_duration, parse_instant
from mephisto_quals.errors import QualsError
from mephisto_quals.compile.requirements import check_name, failed_name
from mephisto_quals.store.session import META_JOIN, chunks, connect, transaction
from mephisto_quals.store.workers import parse_refs, resolve_workers

__all__ = [
    "WorkerOutcome",
    "BulkReport",
    "UnknownQualificationError",
    "grant",
    "revoke",
    "prune",
    "reset_onboarding",
    "set_values",
    "grant_rows",
    "GrantRow",
    "os_user",
    "record_audit",
    "OutcomeCounts",
]

Progress = Optional[Callable[[int], None]]
Workers = Iterable[Union[str, int]]


class UnknownQualificationError(QualsError, LookupError):
    """A qualification the caller named does not exist (and was not to be created)."""


def os_user() -> str:
    """Who is at the keyboard, for the audit."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return os.environ.get("USER") or str(os.getuid())


@dataclass(slots=True)
class WorkerOutcome:
    """What happened to one worker: status is granted, updated, unchanged, revoked, not held or failed."""

    worker: str
    status: str
    worker_id: Optional[int] = None
    worker_name: Optional[str] = None
    old_value: Optional[int] = None
    new_value: Optional[int] = None
    error: Optional[str] = None
    qualification: Optional[str] = None  # set where one report spans several (prune)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class OutcomeCounts:
    """Shared by reports whose ``outcomes`` each have a ``status`` and an ``ok``."""

    outcomes: List[Any]

    @property
    def failed(self) -> List[Any]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> Dict[str, int]:
        return dict(Counter(o.status for o in self.outcomes))


@dataclass
class BulkReport(OutcomeCounts):
    """Per-worker outcomes of one bulk operation, and a summary."""

    action: str
    qualification: str
    dry_run: bool = False
    outcomes: List[WorkerOutcome] = field(default_factory=list)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts().items())) or "no workers"
        prefix = "dry run, nothing written: " if self.dry_run else ""
        return f"{prefix}{self.action} '{self.qualification}': {counts}"


class _DryRun(Exception):
    """Raised inside the transaction to roll back a dry run after computing it exactly."""


def _qualification_id(conn: sqlite3.Connection, name: str, create: bool) -> int:
    problems = check_name(name, "qualification")
    if problems:
        raise ValueError(str(problems[0]))
    row = conn.execute("SELECT qualification_id FROM qualifications WHERE qualification_name = ?", (name,)).fetchone()
    if row is not None:
        return int(row["qualification_id"])
    if not create:
        raise UnknownQualificationError(
            f"qualification {name!r} does not exist; check the name (list them with 'mephisto-quals list') "
            "or create it (grant with --create / create=True)"
        )
    return int(conn.execute("INSERT INTO qualifications (qualification_name) VALUES (?)", (name,)).lastrowid)


class _Held(NamedTuple):
    """A current grant: its value, our expiry and reason (if any), and Mephisto's row id."""

    value: int
    expires_at: Optional[float]
    reason: Optional[str]
    row_id: int


def _existing(conn: sqlite3.Connection, qual_id: int, worker_ids: Sequence[int]) -> Dict[int, _Held]:
    """worker_id -> current grant of one qualification."""
    out: Dict[int, _Held] = {}
    for part in chunks(list(worker_ids)):
        rows = conn.execute(
            f"""SELECT g.worker_id, g.value, m.expires_at, m.reason, g.granted_qualification_id AS row_id
                FROM granted_qualifications g {META_JOIN}
                WHERE g.qualification_id = ? AND g.worker_id IN ({','.join('?' * len(part))})""",
            [qual_id, *part],
        )
        out.update({r[0]: _Held(r[1], r[2], r[3], r[4]) for r in rows})
    return out


def record_audit(conn: sqlite3.Connection, rows: List[Tuple[Any, ...]]) -> None:
    """Record changes inside the caller's transaction: rows of (at, qualification, worker_id, worker_name, action, old, new,
    expires_at, reason, source, os_user), stored as one batch row per shared context."""
    batches: Dict[Tuple[Any, ...], List[Tuple[Any, Any, Any]]] = {}
    for at, qualification, wid, _name, action, old, new, expires_at, reason, source, user in rows:
        batches.setdefault((at, qualification, action, expires_at, reason, source, user), []).append((wid, old, new))
    for context, changes in batches.items():
        batch_id = conn.execute(
            """INSERT INTO mephisto_quals_audit_batch (at, qualification, action, expires_at, reason, source, os_user)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            context,
        ).lastrowid
        conn.executemany(
            "INSERT INTO mephisto_quals_audit_change (batch_id, worker_id, old_value, new_value) VALUES (?, ?, ?, ?)",
            [(batch_id, *change) for change in changes],
        )


def _expiry(expires_in: Any, expires_at: Any, now: float) -> Optional[float]:
    if expires_in is not None and expires_at is not None:
        raise ValueError("give expires_in or expires_at, not both")
    if expires_in is not None:
        seconds = parse_duration(expires_in, "expires_in")
        return None if seconds is None else now + seconds
    if expires_at is not None:
        moment = parse_instant(expires_at, "expires_at")
        if moment <= now:
            raise ValueError(f"expires_at: {format_instant(moment)} is in the past")
        return moment
    return None


def _check_value(value: Any, field_name: str = "value") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{field_name}: {value!r} is not valid; qualification values are integers")
    return value


def _run(db: Any, work: Callable[[sqlite3.Connection], None], dry_run: bool) -> None:
    conn = connect(db)
    try:
        with transaction(conn):
            work(conn)
            if dry_run:
                raise _DryRun()
    except _DryRun:
        pass
    finally:
        conn.close()


class GrantRow(NamedTuple):
    """One worker's grant in a :func:`grant_rows` call (expiry as unix seconds, None = permanent)."""

    worker: Union[str, int]
    value: int = 1
    provider: Optional[str] = None
    expires_at: Optional[float] = None
    reason: Optional[str] = None


def grant_rows(
    db: Any,
    qualification: str,
    rows: Sequence[GrantRow],
    *,
    source: str = "api",
    create: bool = False,
    dry_run: bool = False,
    progress: Progress = None,
    now: Optional[float] = None,
) -> BulkReport:
    """Grant one qualification with its own value, provider, expiry and reason per worker,
    all in one transaction (what ``import`` of a CSV needs).

    New grants are plain INSERTs and changed values UPDATEs in place, as Mephisto's
    ``_grant_qualification`` does (an upsert would use up an AUTOINCREMENT id per update and
    later ids would drift from Mephisto's). Workers named by provider worker name whom
    Mephisto has never seen get a worker record, so the grant gates them when they arrive.
    """
    now = time.time() if now is None else now
    report = BulkReport("grant", qualification, dry_run)
    wanted: Dict[str, GrantRow] = {}
    refs = []
    for r in rows:
        if r.expires_at is not None and r.expires_at <= now:
            raise ValueError(f"expires_at for {r.worker}: {format_instant(r.expires_at)} is in the past")
    for provider in dict.fromkeys(r.provider for r in rows):
        group = [r for r in rows if r.provider == provider]
        for r in group:
            _check_value(r.value, f"value for {r.worker}")
        parsed, refused = parse_refs([r.worker for r in group], provider)
        report.outcomes += [WorkerOutcome(w, "failed", error=why) for w, why in refused.items()]
        for r in group:
            wanted[str(r.worker).strip()] = r
        refs += parsed
    user = os_user()

    def work(conn: sqlite3.Connection) -> None:
        qual_id = _qualification_id(conn, qualification, create)
        found, missing = resolve_workers(conn, refs, create=True)
        report.outcomes.extend(WorkerOutcome(w, "failed", error=why) for w, why in missing.items())
        targets = [(r.given, *found[r.given]) for r in refs if r.given in found]
        current = _existing(conn, qual_id, [wid for _, wid, _ in targets])
        for part in chunks(targets):
            inserts, updates, metas, stale, audits = [], [], [], [], []
            fresh: Dict[int, GrantRow] = {}
            for given, wid, wname in part:
                row = wanted[given]
                old = current.get(wid)
                if old is None:
                    status = "granted"
                elif (old.value, old.expires_at, old.reason) == (row.value, row.expires_at, row.reason):
                    status = "unchanged"
                else:
                    status = "updated"
                report.outcomes.append(WorkerOutcome(given, status, wid, wname, old.value if old else None, row.value))
                if status == "unchanged":
                    continue
                if old is None:
                    inserts.append((qual_id, wid, row.value))
                    fresh[wid] = row
                else:
                    if old.value != row.value:
                        updates.append((row.value, qual_id, wid))
                    if row.expires_at is not None or row.reason is not None:
                        metas.append((old.row_id, wid, qual_id, row.expires_at, row.reason, now))
                    elif old.expires_at is not None or old.reason is not None:
                        stale.append((old.row_id,))
                # Two names for one worker in one call: the second sees the first.
                current[wid] = _Held(row.value, row.expires_at, row.reason, old.row_id if old else -1)
                audits.append((now, qualification, wid, wname, "grant", old.value if old else None, row.value,
                               row.expires_at, row.reason, source, user))
            conn.executemany("INSERT INTO granted_qualifications (qualification_id, worker_id, value) VALUES (?, ?, ?)", inserts)
            conn.executemany("UPDATE granted_qualifications SET value = ? WHERE qualification_id = ? AND worker_id = ?", updates)
            with_meta = [wid for wid, row in fresh.items() if row.expires_at is not None or row.reason is not None]
            if with_meta:
                ids = conn.execute(
                    f"""SELECT worker_id, granted_qualification_id FROM granted_qualifications
                        WHERE qualification_id = ? AND worker_id IN ({','.join('?' * len(with_meta))})""",
                    [qual_id, *with_meta],
                ).fetchall()
                for wid, row_id in ids:
                    metas.append((row_id, wid, qual_id, fresh[wid].expires_at, fresh[wid].reason, now))
                    current[wid] = current[wid]._replace(row_id=row_id)
            conn.executemany("DELETE FROM mephisto_quals_grant_meta WHERE granted_qualification_id = ?", stale)
            conn.executemany(
                """INSERT OR REPLACE INTO mephisto_quals_grant_meta
                   (granted_qualification_id, worker_id, qualification_id, expires_at, reason, granted_at)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                metas,
            )
            record_audit(conn, audits)
            if progress:
                progress(len(part))

    _run(db, work, dry_run)
    return report


def set_values(
    db: Any,
    qualification: str,
    values: Dict[Union[str, int], int],
    *,
    provider: Optional[str] = None,
    reason: Optional[str] = None,
    expires_in: Any = None,
    expires_at: Any = None,
    source: str = "api",
    create: bool = False,
    dry_run: bool = False,
    progress: Progress = None,
    now: Optional[float] = None,
) -> BulkReport:
    """Grant one qualification with a value per worker (same provider, expiry and reason), in
    one transaction; see :func:`grant_rows`."""
    now = time.time() if now is None else now
    expiry = _expiry(expires_in, expires_at, now)
    rows = [GrantRow(w, v, provider, expiry, reason) for w, v in values.items()]
    return grant_rows(db, qualification, rows, source=source, create=create, dry_run=dry_run, progress=progress, now=now)


def grant(
    db: Any,
    qualification: str,
    workers: Workers,
    value: int = 1,
    **kwargs: Any,
) -> BulkReport:
    """Grant one qualification (same value) to many workers; see :func:`set_values` for options."""
    _check_value(value)
    return set_values(db, qualification, {w: value for w in workers}, **kwargs)


def _remove(
    db: Any,
    names: Sequence[str],
    workers: Workers,
    action: str,
    label: str,
    provider: Optional[str],
    reason: Optional[str],
    source: str,
    dry_run: bool,
    progress: Progress,
    now: float,
    require_known: bool,
) -> BulkReport:
    refs, refused = parse_refs(workers, provider)
    report = BulkReport(action, label, dry_run)
    report.outcomes += [WorkerOutcome(w, "failed", error=why) for w, why in refused.items()]
    user = os_user()

    def work(conn: sqlite3.Connection) -> None:
        qual_ids = {}
        for name in names:
            row = conn.execute("SELECT qualification_id FROM qualifications WHERE qualification_name = ?", (name,)).fetchone()
            if row is None and require_known and name == names[0]:
                # raises the clear error; companions (an onboarding's "-failed" list) may not exist yet
                _qualification_id(conn, name, create=False)
            if row is not None:
                qual_ids[name] = int(row["qualification_id"])
        found, missing = resolve_workers(conn, refs, create=False)
        for given, why in missing.items():
            status = "failed" if provider is None else "not held"
            report.outcomes.append(WorkerOutcome(given, status, error=why if status == "failed" else None))
        targets = [(r.given, *found[r.given]) for r in refs if r.given in found]
        held = {name: _existing(conn, qid, [wid for _, wid, _ in targets]) for name, qid in qual_ids.items()}
        for part in chunks(targets):
            deletes, audits = [], []
            for given, wid, wname in part:
                olds = {name: held[name][wid][0] for name in qual_ids if wid in held[name]}
                first = olds.get(names[0])
                report.outcomes.append(WorkerOutcome(given, "revoked" if olds else "not held", wid, wname, first, None))
                for name, old in olds.items():
                    deletes.append((qual_ids[name], wid))
                    audits.append((now, name, wid, wname, action, old, None, None, reason, source, user))
            conn.executemany("DELETE FROM granted_qualifications WHERE qualification_id = ? AND worker_id = ?", deletes)
            # By pair, not row id: this also clears rows left behind by Mephisto's own revoke.
            conn.executemany("DELETE FROM mephisto_quals_grant_meta WHERE qualification_id = ? AND worker_id = ?", deletes)
            record_audit(conn, audits)
            if progress:
                progress(len(part))

    _run(db, work, dry_run)
    return report


def revoke(
    db: Any,
    qualification: str,
    workers: Workers,
    *,
    provider: Optional[str] = None,
    reason: Optional[str] = None,
    source: str = "api",
    dry_run: bool = False,
    progress: Progress = None,
    now: Optional[float] = None,
) -> BulkReport:
    """Revoke one qualification from many workers; raises for an unknown qualification."""
    return _remove(db, [qualification], workers, "revoke", qualification, provider, reason, source, dry_run, progress,
                   time.time() if now is None else now, require_known=True)


def reset_onboarding(
    db: Any,
    onboarding: str,
    workers: Workers,
    *,
    provider: Optional[str] = None,
    reason: Optional[str] = None,
    source: str = "api",
    dry_run: bool = False,
    now: Optional[float] = None,
) -> BulkReport:
    """Clear workers' onboarding result (``X`` and ``X-failed``) so they can take it again."""
    return _remove(db, [onboarding, failed_name(onboarding)], workers, "reset-onboarding", onboarding, provider, reason,
                   source, dry_run, None, time.time() if now is None else now, require_known=True)


def prune(db: Any, *, now: Optional[float] = None, source: str = "api", dry_run: bool = False) -> BulkReport:
    """Delete every expired grant (they already stopped counting at the gate), audited."""
    now = time.time() if now is None else now
    report = BulkReport("prune", "*", dry_run)
    user = os_user()

    def work(conn: sqlite3.Connection) -> None:
        # Only the grant row the expiry belongs to goes; a row Mephisto made later is another grant.
        rows = conn.execute(
            """SELECT m.granted_qualification_id AS row_id, m.worker_id, q.qualification_name, w.worker_name,
                      g.value, m.expires_at
               FROM mephisto_quals_grant_meta m
               JOIN qualifications q ON q.qualification_id = m.qualification_id
               JOIN workers w ON w.worker_id = m.worker_id
               LEFT JOIN granted_qualifications g ON g.granted_qualification_id = m.granted_qualification_id
               WHERE m.expires_at IS NOT NULL AND m.expires_at <= ?""",
            (now,),
        ).fetchall()
        ids = [(r["row_id"],) for r in rows]
        conn.executemany("DELETE FROM granted_qualifications WHERE granted_qualification_id = ?", ids)
        conn.executemany("DELETE FROM mephisto_quals_grant_meta WHERE granted_qualification_id = ?", ids)
        live = [r for r in rows if r["value"] is not None]
        record_audit(conn, [(now, r["qualification_name"], r["worker_id"], r["worker_name"], "expire", r["value"], None,
                       r["expires_at"], "expired", source, user) for r in live])
        report.outcomes += [WorkerOutcome(r["worker_name"], "pruned", r["worker_id"], r["worker_name"], r["value"], None,
                                          qualification=r["qualification_name"]) for r in live]

    _run(db, work, dry_run)
    return report
