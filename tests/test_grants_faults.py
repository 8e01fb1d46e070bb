"""Grants under faults: kill -9 mid-transaction, concurrent writers, hostile names, expiry.

Subprocesses run the installed package with their own HOME (``import mephisto`` writes
``~/.mephisto``) and ``-I``, as the suite itself runs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.data_model.qualification import QUAL_EXISTS, QUAL_GREATER_EQUAL
from mephisto.data_model.worker import Worker
from mephisto.utils.qualifications import make_qualification_dict, worker_is_qualified

from mephisto_quals.admin import grants
from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.requirements import Requirement
from mephisto_quals.integration import gate
from mephisto_quals.store.mephisto import mephisto_connection

BIG = 100_000

# Creates (or opens) the DB, then grants 'big' to N never-seen mock workers by name in one
# call, printing a line per chunk written inside the transaction.
GRANT_CHILD = r"""
import sys
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto_quals.admin import grants

path, n = sys.argv[1], int(sys.argv[2])
LocalMephistoDB(database_path=path)
def progress(k):
    print("progress", k, flush=True)
report = grants.grant(path, "big", [f"big{i:06d}" for i in range(n)], provider="mock", create=True,
                      reason="bulk", progress=progress)
print("done", report.counts(), flush=True)
"""

# Waits for the go file, then grants its own qualification and a shared one to a range of
# workers, in several calls so the four processes interleave.
CONCURRENT_CHILD = r"""
import json, os, sys, time
from collections import Counter
from mephisto_quals.admin import grants

path, go, k, start, count, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
open(f"{go}.ready{k}", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
names = [f"cw{i:05d}" for i in range(start, start + count)]
totals = {"own": Counter(), "shared": Counter()}
step = count // calls
began = time.time()
for c in range(calls):
    part = names[c * step:(c + 1) * step]
    own = grants.grant(path, f"own{k}", part, provider="mock", create=True, value=k, reason=f"p{k}")
    shared = grants.grant(path, "shared", part, provider="mock", create=True, value=k, reason=f"p{k}")
    assert own.ok and shared.ok, (own.summary(), shared.summary())
    totals["own"].update(own.counts())
    totals["shared"].update(shared.counts())
totals["span"] = [began, time.time()]
print(json.dumps(totals))
"""


def child_env(home: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["HOME"] = str(home)
    return env


def start_child(code: str, args: List[Any], home: Path, **kwargs: Any) -> subprocess.Popen:
    """Run ``code`` with the same mephisto_quals this process imported (the installed one)."""
    home.mkdir(exist_ok=True)
    preamble = f"import sys; sys.path.insert(0, {str(Path(grants.__file__).parents[1])!r})\n"
    return subprocess.Popen(
        [sys.executable, "-I", "-c", preamble + code, *map(str, args)],
        env=child_env(home), cwd=str(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )


def counts(path: str, qualification: str) -> Dict[str, int]:
    """Rows of one qualification in every table a grant writes (opening rolls back a hot journal)."""
    conn = sqlite3.connect(path)
    try:
        one = lambda sql, *a: conn.execute(sql, a).fetchone()[0]  # noqa: E731
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        qid = conn.execute("SELECT qualification_id FROM qualifications WHERE qualification_name = ?", (qualification,)).fetchone()
        out = {
            "integrity": conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)],
            "qualifications": one("SELECT COUNT(*) FROM qualifications WHERE qualification_name = ?", qualification),
            "workers": one("SELECT COUNT(*) FROM workers"),
            "granted": one("SELECT COUNT(*) FROM granted_qualifications WHERE qualification_id = ?", qid[0]) if qid else 0,
            "meta": 0,
            "audit": 0,
        }
        if "mephisto_quals_audit" in tables:
            out["audit"] = one("SELECT COUNT(*) FROM mephisto_quals_audit WHERE qualification = ?", qualification)
            out["meta"] = one("SELECT COUNT(*) FROM mephisto_quals_grant_meta WHERE qualification_id = ?", qid[0]) if qid else 0
        return out
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.subprocess
def test_kill_9_during_100k_grant_leaves_all_rows_or_none_then_completes(tmp_path: Path) -> None:
    path = str(tmp_path / "database.db")
    journal = Path(path + "-journal")
    # Killed while the rows are staged (before the write lock), then inside the short write
    # transaction (the moment its rollback journal appears).
    for inside in (False, True):
        proc = start_child(GRANT_CHILD, [path, BIG], tmp_path / "home")
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("progress"), (line, proc.stderr.read())  # type: ignore[union-attr]
        if inside:
            deadline = time.monotonic() + 60
            while not journal.exists():
                assert proc.poll() is None, f"the grant ended before its transaction was seen: {proc.stderr.read()}"  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "no write transaction began within 60 s"
                time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        if inside:
            # The write transaction was open when the process died: its rollback journal is hot.
            assert journal.exists(), "the kill did not land mid-transaction"
        after = counts(path, "big")  # opening it rolls the hot journal back
        # None of it: no grant, no audit, no meta, not even the workers or the qualification it created.
        assert (after["granted"], after["audit"], after["meta"], after["workers"], after["qualifications"]) == (0, 0, 0, 0, 0), after
        assert after["integrity"]

    started = time.monotonic()
    proc = start_child(GRANT_CHILD, [path, BIG], tmp_path / "home")
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 0, err
    assert f"done {{'granted': {BIG}}}" in out
    assert out.count("progress") >= BIG // 5_000  # staged in chunks of 5,000 workers
    done = counts(path, "big")
    assert done == {"integrity": True, "qualifications": 1, "workers": BIG, "granted": BIG, "meta": BIG, "audit": BIG}
    assert took < 60, f"a {BIG:,}-worker grant took {took:.0f} s"


@pytest.mark.subprocess
def test_four_processes_granting_at_once_lose_nothing_and_never_crash_on_locks(tmp_path: Path) -> None:
    path = str(tmp_path / "database.db")
    LocalMephistoDB(database_path=path).shutdown()  # our tables: left for the children to race on
    go = tmp_path / "go"
    per, offset, calls = 5_000, 2_500, 5  # process k: workers [k*2500, k*2500+5000), neighbours overlap
    procs = [start_child(CONCURRENT_CHILD, [path, go, k, k * offset, per, calls], tmp_path / f"home{k}") for k in range(4)]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.ready{k}").exists() for k in range(4)):  # all imported, at the barrier
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            pytest.fail(f"a child never reached the barrier: {[p.communicate()[1] for p in procs]}")
        time.sleep(0.01)
    go.touch()
    results = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
    reports = [json.loads(out) for out, _ in results]
    # They really ran at the same time: every process was still granting when the last began.
    spans = [r["span"] for r in reports]
    assert max(a for a, _ in spans) < min(b for _, b in spans), spans

    union = 3 * offset + per
    conn = sqlite3.connect(path)
    try:
        one = lambda sql, *a: conn.execute(sql, a).fetchone()[0]  # noqa: E731
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert one("SELECT COUNT(*) FROM workers") == union
        assert one("SELECT COUNT(DISTINCT worker_name) FROM workers") == union
        for k in range(4):
            name = f"own{k}"
            assert reports[k]["own"] == {"granted": per}
            assert one("""SELECT COUNT(*) FROM granted_qualifications g JOIN qualifications q USING (qualification_id)
                          WHERE q.qualification_name = ? AND g.value = ?""", name, k) == per
            assert one("SELECT COUNT(*) FROM mephisto_quals_audit WHERE qualification = ?", name) == per
        # The shared qualification: every worker once, each value from a process that covered them.
        assert one("""SELECT COUNT(*) FROM granted_qualifications g JOIN qualifications q USING (qualification_id)
                      WHERE q.qualification_name = 'shared'""") == union
        rows = conn.execute(
            """SELECT w.worker_name, g.value FROM granted_qualifications g
               JOIN qualifications q USING (qualification_id) JOIN workers w USING (worker_id)
               WHERE q.qualification_name = 'shared'"""
        ).fetchall()
        for wname, value in rows:
            i = int(wname[2:7])
            assert value in [k for k in range(4) if k * offset <= i < k * offset + per], (wname, value)
        written = sum(r["shared"].get("granted", 0) + r["shared"].get("updated", 0) for r in reports)
        assert sum(r["shared"].get("granted", 0) for r in reports) == union
        assert one("SELECT COUNT(*) FROM mephisto_quals_audit WHERE qualification = 'shared'") == written
        assert one("SELECT COUNT(*) FROM mephisto_quals_grant_meta") == union + 4 * per
        assert one("SELECT COUNT(*) FROM qualifications") == 5
    finally:
        conn.close()


HOSTILE = [
    "x');DROP/**/TABLE/**/workers;--",
    '";DELETE/**/FROM/**/granted_qualifications;--',
    "Robert'),('evil','mock');--",
    "1/**/OR/**/1=1",
    "%",
    "_",
    "NULL",
    "a,b,\"c\",'d'",
    "Zoë-Ørsted-名前-😀",
    "\u202etxt.exe",
    "L" * 10_000,
]


def test_hostile_worker_names_and_texts_are_stored_literally(db: LocalMephistoDB) -> None:
    qualification = "q'); DROP TABLE qualifications; --"
    reason = "'); DROP TABLE mephisto_quals_audit; --"
    spaced = ["x'); DROP TABLE workers; --", '"; DELETE FROM granted_qualifications; --', "tab\there", "new\nline"]
    report = grants.grant(db, qualification, HOSTILE + spaced, provider="mock", create=True, reason=reason)
    assert report.counts() == {"granted": len(HOSTILE), "failed": len(spaced)}
    assert {o.worker for o in report.failed} == set(spaced)
    assert all("whitespace" in (o.error or "") for o in report.failed)
    # Without a provider, entries are Mephisto worker ids: anything but digits is refused, not run.
    by_id = grants.grant(db, qualification, ["1 OR 1=1", "1; DROP TABLE workers", "1)"])
    assert by_id.counts() == {"failed": 3}

    with db.table_access_condition:
        conn = mephisto_connection(db)
        tables = {r["name"] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        # By name: Mephisto 1.4+ gives workers random ids, so id order is not creation order.
        names = [r["worker_name"] for r in conn.execute("SELECT worker_name FROM workers ORDER BY worker_name")]
        quals = [r["qualification_name"] for r in conn.execute("SELECT qualification_name FROM qualifications")]
        granted = conn.execute("SELECT COUNT(*) AS n FROM granted_qualifications").fetchone()["n"]
        audit = conn.execute("SELECT worker_name, reason FROM mephisto_quals_audit ORDER BY audit_id").fetchall()
    assert {"workers", "qualifications", "granted_qualifications", "mephisto_quals_audit", "mephisto_quals_grant_meta"} <= tables
    assert names == sorted(f"{n}_sandbox" for n in HOSTILE)
    assert quals == [qualification]
    assert granted == len(HOSTILE)
    assert [(r["worker_name"], r["reason"]) for r in audit] == [(f"{n}_sandbox", reason) for n in HOSTILE]

    # Mephisto's own API and the gate find each of them by the literal name.
    dicts = [make_qualification_dict(qualification, QUAL_EXISTS, None)]
    for name in HOSTILE:
        (w,) = db.find_workers(worker_name=f"{name}_sandbox")
        assert w.get_granted_qualification(qualification).value == 1
        assert worker_is_qualified(w, dicts) and gate.qualified(w, dicts)
    revoked = grants.revoke(db, qualification, HOSTILE, provider="mock")
    assert revoked.counts() == {"revoked": len(HOSTILE)}
    assert all(not gate.qualified(db.find_workers(worker_name=f"{n}_sandbox")[0], dicts) for n in HOSTILE)


def meph_worker(db: LocalMephistoDB, name: str) -> Worker:
    return Worker.get(db, db.new_worker(f"{name}_sandbox", "mock"))


def live(db: LocalMephistoDB) -> Dict[tuple, int]:
    with db.table_access_condition:
        rows = mephisto_connection(db).execute(
            """SELECT w.worker_name, q.qualification_name, g.value FROM granted_qualifications g
               JOIN workers w USING (worker_id) JOIN qualifications q USING (qualification_id)"""
        ).fetchall()
    return {(r["worker_name"].removesuffix("_sandbox"), r["qualification_name"]): r["value"] for r in rows}


def test_short_real_expiry_counts_at_the_gate_until_it_passes(db: LocalMephistoDB) -> None:
    w = meph_worker(db, "temp")
    grants.grant(db, "trial", [w.db_id], value=5, expires_in=1.5, create=True)
    dicts = [make_qualification_dict("trial", QUAL_EXISTS, None), make_qualification_dict("trial", QUAL_GREATER_EQUAL, 3)]
    granted_at = time.time()
    assert gate.qualified(w, dicts)
    time.sleep(max(0.0, granted_at + 1.7 - time.time()))
    assert not gate.qualified(w, dicts)
    # Mephisto's own check still sees the row until it is pruned; ours does not.
    assert worker_is_qualified(w, dicts)
    pruned = grants.prune(db)
    assert [(o.worker_id, o.status, o.old_value) for o in pruned.outcomes] == [(int(w.db_id), "pruned", 5)]
    assert not worker_is_qualified(w, dicts)


def test_expiry_boundary_is_the_same_for_check_worker_and_prune(db: LocalMephistoDB) -> None:
    t0 = 1_900_000_000.0
    ids = {n: meph_worker(db, n).db_id for n in ("soon", "later", "forever", "other", "gone")}
    grants.grant(db, "score", [ids["soon"]], value=4, expires_in="10s", now=t0, create=True, reason="trial")
    grants.grant(db, "score", [ids["later"]], value=2, expires_in="1h", now=t0)
    grants.grant(db, "score", [ids["forever"]], value=3, now=t0)
    grants.grant(db, "badge", [ids["other"], ids["gone"]], expires_at=t0 + 5, now=t0, create=True)
    # A grant Mephisto's own API revoked (its meta row stays behind): pruned silently, not audited.
    Worker.get(db, ids["gone"]).revoke_qualification("badge")
    req = [Requirement("score", cmp.EXISTS, None, "t", "t"), Requirement("score", cmp.GREATER_EQUAL, 2, "t", "t")]

    def counted(name: str, at: float) -> bool:
        return all(r.passed for r in gate.check_worker(db, ids[name], req, now=at))

    assert counted("soon", t0 + 9.999) and not counted("soon", t0 + 10)
    assert counted("later", t0 + 10) and counted("forever", t0 + 10**6)
    before = live(db)

    assert grants.prune(db, now=t0 + 4.999).outcomes == []  # nothing expired yet
    dry = grants.prune(db, now=t0 + 10, dry_run=True)
    assert len(dry.outcomes) == 2 and live(db) == before

    audit_before = _audit_rows(db)
    report = grants.prune(db, now=t0 + 10)
    assert sorted((o.worker_name, o.old_value) for o in report.outcomes) == [("other_sandbox", 1), ("soon_sandbox", 4)]
    expected = dict(before)
    del expected[("soon", "score")], expected[("other", "badge")]
    assert live(db) == expected
    new_audit = _audit_rows(db)[len(audit_before):]
    assert sorted(new_audit) == sorted([
        ("badge", "other_sandbox", "expire", 1, None, t0 + 5, "expired"),
        ("score", "soon_sandbox", "expire", 4, None, t0 + 10, "expired"),
    ])
    with db.table_access_condition:
        metas = mephisto_connection(db).execute("SELECT COUNT(*) AS n FROM mephisto_quals_grant_meta WHERE expires_at <= ?",
                                             (t0 + 10,)).fetchone()["n"]
    assert metas == 0  # the orphaned meta row of 'gone' went too
    assert grants.prune(db, now=t0 + 10).outcomes == [] and len(_audit_rows(db)) == len(audit_before) + 2
    assert counted("later", t0 + 3599) and not counted("later", t0 + 3600)


def _audit_rows(db: LocalMephistoDB) -> List[tuple]:
    with db.table_access_condition:
        return [tuple(r) for r in mephisto_connection(db).execute(
            """SELECT qualification, worker_name, action, old_value, new_value, expires_at, reason
               FROM mephisto_quals_audit ORDER BY audit_id""")]


@pytest.mark.parametrize("when", ["before", "after"])
def test_expired_grant_made_again_counts_again(db: LocalMephistoDB, when: str) -> None:
    """Re-granting an expired grant (same value) with our API makes it live again, before or after prune."""
    t0 = time.time() - 100
    w = meph_worker(db, "again")
    grants.grant(db, "trial", [w.db_id], expires_in="10s", now=t0, create=True)
    dicts = [make_qualification_dict("trial", QUAL_EXISTS, None)]
    assert not gate.qualified(w, dicts)
    if when == "after":
        grants.prune(db)
    report = grants.grant(db, "trial", [w.db_id])
    assert report.counts() == {"updated" if when == "before" else "granted": 1}
    assert gate.qualified(w, dicts)


def test_mephisto_regrant_after_our_expired_grant_is_not_expired(db: LocalMephistoDB) -> None:
    """Mephisto's revoke leaves our grant_meta row behind; a later Mephisto grant is a new row,
    which must not inherit the old expiry (the gate would refuse the worker and prune would
    delete Mephisto's grant). Expiry is keyed by Mephisto's grant row id for this."""
    t0 = time.time() - 100
    w = meph_worker(db, "regrant")
    grants.grant(db, "trial", [w.db_id], expires_in="10s", now=t0, create=True)
    w.revoke_qualification("trial")
    w.grant_qualification("trial", 1)  # e.g. Mephisto's onboarding granting its qualification
    dicts = [make_qualification_dict("trial", QUAL_EXISTS, None)]
    assert worker_is_qualified(w, dicts)
    assert gate.qualified(w, dicts)
    grants.prune(db)
    assert w.get_granted_qualification("trial") is not None
