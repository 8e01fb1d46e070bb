"""The grants API on a real LocalMephistoDB: outcomes, audit, dry runs, clear errors."""

from __future__ import annotations

import pytest

from conftest import table_counts, worker
from mephisto_quals.admin import grants
from mephisto_quals.admin.grants import UnknownQualificationError
from mephisto_quals.admin.queries import history, holders, list_qualifications


def test_grant_by_provider_name_creates_unseen_workers_and_audits_each_change(db):
    report = grants.grant(db, "allow", ["alice", "bob"], provider="mock", create=True, reason="pilot")
    assert report.ok and report.counts() == {"granted": 2}
    assert {w.worker_name for w in db.find_workers()} == {"alice_sandbox", "bob_sandbox"}
    assert worker(db, "alice").get_granted_qualification("allow").value == 1
    again = grants.grant(db, "allow", ["alice", "bob"], provider="mock", reason="pilot")
    assert again.counts() == {"unchanged": 2}
    changed = grants.set_values(db, "allow", {"alice": 3}, provider="mock", reason="promoted")
    assert changed.counts() == {"updated": 1}
    entries = history(db, qualification="allow")
    assert [(e.worker_name, e.old_value, e.new_value, e.reason, e.source) for e in entries] == [
        ("alice_sandbox", 1, 3, "promoted", "api"),
        ("bob_sandbox", None, 1, "pilot", "api"),
        ("alice_sandbox", None, 1, "pilot", "api"),
    ]
    assert all(e.os_user for e in entries)


def test_unknown_qualification_is_an_error_unless_created(db):
    with pytest.raises(UnknownQualificationError, match="'nope' does not exist"):
        grants.grant(db, "nope", ["alice"], provider="mock")
    with pytest.raises(UnknownQualificationError, match="'nope' does not exist"):
        grants.revoke(db, "nope", ["alice"], provider="mock")
    with pytest.raises(UnknownQualificationError):
        holders(db, "nope")
    assert table_counts(db)["qualifications"] == 0 and db.find_workers() == []


def test_per_worker_failures_do_not_lose_the_successes(db):
    report = grants.grant(db, "q", ["12345", "not-an-id", ""], create=True)  # by Mephisto id
    assert not report.ok
    reasons = {o.worker: o.error for o in report.failed}
    assert "no Mephisto worker has this id" in reasons["12345"]
    assert "not a Mephisto worker id" in reasons["not-an-id"]
    good = worker(db, "real")
    mixed = grants.grant(db, "q", [good.db_id, "99999"])
    assert [o.status for o in mixed.outcomes if o.ok] == ["granted"] and len(mixed.failed) == 1
    assert good.get_granted_qualification("q").value == 1


def test_mturk_worker_names_are_checked(db):
    report = grants.grant(db, "q", ["A1B2C3D4", "bad id", "lowercase"], provider="mturk", create=True)
    assert [o.worker for o in report.outcomes if o.ok] == ["A1B2C3D4"]
    assert {o.worker for o in report.failed} == {"bad id", "lowercase"}
    assert db.find_workers(worker_name="A1B2C3D4")[0].provider_type == "mturk"


def test_dry_run_writes_nothing_but_reports_exactly(db):
    before = table_counts(db)
    report = grants.grant(db, "q", ["a", "b"], provider="mock", create=True, dry_run=True)
    assert report.dry_run and report.counts() == {"granted": 2}
    assert "dry run, nothing written" in report.summary()
    assert table_counts(db) == before and db.find_workers() == []


def test_revoke_and_reset_onboarding(db):
    grants.grant(db, "onb", ["x", "y"], provider="mock", create=True, value=0)
    grants.grant(db, "onb-failed", ["x"], provider="mock", create=True, value=0)
    report = grants.revoke(db, "onb", ["y", "never-seen"], provider="mock", reason="retry")
    assert report.counts() == {"revoked": 1, "not held": 1}
    reset = grants.reset_onboarding(db, "onb", ["x"], provider="mock")
    assert reset.counts() == {"revoked": 1}
    assert worker(db, "x").get_granted_qualification("onb") is None
    assert worker(db, "x").get_granted_qualification("onb-failed") is None
    assert {(e.action, e.qualification) for e in history(db, worker="x")} >= {
        ("reset-onboarding", "onb"), ("reset-onboarding", "onb-failed")}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"value": "1"}, "value: '1' is not valid; qualification values are integers"),
        ({"value": True}, "value: True is not valid"),
        ({"expires_in": "soon"}, "expires_in: 'soon' is not a duration"),
        ({"expires_in": "0d"}, "must be longer than zero"),
        ({"expires_at": "yesterday"}, "expires_at: 'yesterday' is not a date/time"),
        ({"expires_at": "2001-01-01"}, "is in the past"),
        ({"expires_in": "1d", "expires_at": "2999-01-01"}, "not both"),
        ({"provider": "amazon"}, "provider: 'amazon' is not known"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(db, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        grants.grant(db, "q", ["a"], **{"provider": "mock", "create": True, **kwargs})
    assert table_counts(db)["qualifications"] == 0


def test_list_counts_live_and_expired_holders(db):
    grants.grant(db, "q", ["a", "b"], provider="mock", create=True)
    grants.grant(db, "q", ["c"], provider="mock", expires_in="1s", now=0.0)  # expired long ago
    summary = {s.name: (s.holders, s.expired) for s in list_qualifications(db)}
    assert summary["q"] == (2, 1)
    assert [h.worker_name for h in holders(db, "q")] == ["a_sandbox", "b_sandbox"]
    pruned = grants.prune(db)
    assert [o.worker_name for o in pruned.outcomes] == ["c_sandbox"]
    assert {s.name: (s.holders, s.expired) for s in list_qualifications(db)}["q"] == (2, 0)


@pytest.mark.parametrize("given", ["9223372036854775808", "1" * 5000, "²", "١٢"])
def test_worker_ids_out_of_range_or_not_ascii_digits_fail_that_worker_only(db, given):
    good = worker(db, "real")
    before = table_counts(db)
    report = grants.grant(db, "q", [given, good.db_id], create=True)
    [failed] = report.failed
    assert failed.worker == given and "not a Mephisto worker id" in failed.error
    assert [o.status for o in report.outcomes if o.ok] == ["granted"]
    assert table_counts(db)["granted_qualifications"] == before["granted_qualifications"] + 1


def test_one_worker_named_twice_reads_as_two_calls_in_a_row(db):
    """Two spellings of one id ("5", "05") skip the set-based report path: the second row finds
    the first one's grant, and only one grant row and one audit change are written."""
    good = worker(db, "real")
    wid = int(good.db_id)
    report = grants.set_values(db, "q", {str(wid): 2, f"0{wid}": 3}, create=True)
    assert [(o.worker, o.status, o.old_value, o.new_value) for o in report.outcomes] == [
        (str(wid), "granted", None, 2), (f"0{wid}", "updated", 2, 3)]
    assert good.get_granted_qualification("q").value == 3
    assert [(c.old_value, c.new_value) for c in report.changes] == [(None, 3)]
    assert [(e.old_value, e.new_value) for e in history(db, qualification="q")] == [(None, 3)]


def test_the_set_based_report_matches_the_row_by_row_one(db):
    """Each outcome field of a mixed call (new, unchanged, updated, unknown id) is the same
    whether the report is read set-based (no repeats) or row by row (a repeat forces it)."""
    a, b, c = (worker(db, n) for n in ("a", "b", "c"))
    grants.set_values(db, "q", {a.db_id: 1, b.db_id: 1}, create=True)
    plain = grants.set_values(db, "q", {a.db_id: 1, b.db_id: 2, c.db_id: 1, "424242": 1}, dry_run=True)
    slow = grants.set_values(db, "q", {a.db_id: 1, b.db_id: 2, c.db_id: 1, "424242": 1, f"0{c.db_id}": 1},
                             dry_run=True)
    assert slow.outcomes[:4] == plain.outcomes
    assert [o.status for o in plain.outcomes] == ["unchanged", "updated", "granted", "failed"]


@pytest.mark.parametrize("given", [
    ["12", " 7", "0009"],  # clean: checked a list at a time
    ["12", "12 "],  # one worker given twice once stripped
    ["12", ""],  # an empty one
    ["12", "x"],  # not digits
    ["12", "١٢"],  # digits, not ASCII
    ["12", "9" * 19],  # as long as the largest id: checked one by one
    ["12", 13],  # not all strings
    [],
])
def test_ids_checked_a_list_at_a_time_read_as_checked_one_by_one(given):
    """parse_refs' list-at-a-time path (plain_ids) gives exactly what the per-worker loop gives."""
    from mephisto_quals.store import workers

    fast = workers.parse_refs(given)
    plain = workers.plain_ids(given)
    assert (plain is not None) == (given == ["12", " 7", "0009"])
    original = workers.plain_ids
    try:
        workers.plain_ids = lambda items: None  # the per-worker loop only
        slow = workers.parse_refs(given)
    finally:
        workers.plain_ids = original
    assert fast == slow
    assert workers.parse_refs(iter(given)) == slow  # a generator is read once, whichever path takes it
    assert all(type(r) is workers.WorkerRef for r in fast[0])


def test_one_batch_audit_of_a_uniform_grant_and_revoke(db):
    """A call whose rows share one expiry and reason writes one audit batch for its changes
    (and none when nothing changed)."""
    import sqlite3

    grants.grant(db, "allow", ["alice", "bob"], provider="mock", create=True, reason="pilot")
    grants.grant(db, "allow", ["alice", "bob"], provider="mock", reason="pilot")  # unchanged: no batch
    grants.revoke(db, "allow", ["alice", "carol"], provider="mock", reason="left")
    conn = sqlite3.connect(db.db_path)
    try:
        batches = conn.execute("SELECT batch_id, action, reason FROM mephisto_quals_audit_batch ORDER BY batch_id")\
            .fetchall()
        changes = conn.execute("SELECT batch_id, worker_name, old_value, new_value FROM mephisto_quals_audit_change"
                               " ORDER BY change_id").fetchall()
    finally:
        conn.close()
    assert [(a, r) for _, a, r in batches] == [("grant", "pilot"), ("revoke", "left")]
    first, second = batches[0][0], batches[1][0]
    assert changes == [(first, "alice_sandbox", None, 1), (first, "bob_sandbox", None, 1),
                       (second, "alice_sandbox", 1, None)]
