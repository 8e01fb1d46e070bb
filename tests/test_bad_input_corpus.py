"""A corpus of malformed input, everywhere a user types: each case is one command line.

Every case must exit 2 with ONE error message that names the file/line or config path, the
value, and what would be valid, and leave every table as it was (row counts, and our audit).
Kinds: ``quals`` YAML (via ``forecast --config``), grant CSVs (``import``), CLI arguments,
review-rule files (``review --rules``) and qualification-type files (``qual-types apply``).
The config cases of tests/test_bad_input.py (launch through an Operator) are not repeated.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Union

import pytest
from mephisto.abstractions.databases.local_database import LocalMephistoDB

from conftest import cli_runner, table_counts, worker
from mephisto_quals.admin import grants, queries
from mephisto_quals.cli.main import cli as root

Q = "mephisto.blueprint.quals"
R0 = f"{Q}.requirements[0]"
BIG = 2**63  # one past SQLite's INTEGER
APPROVAL = "000000000000000000L0"
APPROVED_HITS = "00000000000000000040"
ADULT = "00000000000000000060"
VALID_RANGE = "from -9223372036854775808 to 9223372036854775807"


@dataclass
class Case:
    """One command line; ``{file}`` in args is the written file, ``{db}`` the database. ``expect``:
    phrases the one message must hold (the place, the value, what is valid)."""

    kind: str
    id: str
    args: List[str]
    expect: List[str]
    content: Union[str, bytes, None] = None
    suffix: str = ".csv"
    extra: Dict[str, str] = field(default_factory=dict)


def quals_yaml(quals: str, provider: str = "mock") -> str:
    """A task config with a ``quals`` node written as YAML flow text."""
    return (f"mephisto:\n  blueprint:\n    _blueprint_type: mock_quals\n    quals: {quals}\n"
            f"  provider:\n    _provider_type: {provider}\n")


def qc(id: str, quals: str, expect: List[str], provider: str = "mock") -> Case:
    return Case("quals-yaml", id, ["forecast", "--config", "{file}"], expect, quals_yaml(quals, provider), ".yaml")


def raw(type_id: str, comparator: str, values: str) -> str:
    return f"{{mturk: {{raw: [{{QualificationTypeId: '{type_id}', Comparator: {comparator}, IntegerValues: {values}}}]}}}}"


QUALS_CASES = [
    qc("value-too-big", f"{{requirements: [{{qualification: s, comparator: '>=', value: {BIG}}}]}}",
       [f"{R0}.value", str(BIG), VALID_RANGE]),
    qc("value-too-small", f"{{requirements: [{{qualification: s, comparator: '<', value: {-BIG - 1}}}]}}",
       [f"{R0}.value", str(-BIG - 1), VALID_RANGE]),
    qc("in-list-value-too-big", f"{{requirements: [{{qualification: s, comparator: in, value: [1, {BIG}]}}]}}",
       [f"{R0}.value", str(BIG), VALID_RANGE]),
    qc("not-in-list-of-strings", "{requirements: [{qualification: s, comparator: not in, value: [a, b]}]}",
       [f"{R0}.value", "'not in' needs a list of integers"]),
    qc("requirement-unknown-key", "{requirements: [{qualification: s, comparator: '>=', value: 1, min: 2}]}",
       [R0, "unknown keys ['min']"]),
    qc("requirement-not-a-mapping", "{requirements: [score]}", [R0, "'score'", "give a mapping"]),
    qc("requirements-not-a-list", "{requirements: score}", [f"{Q}.requirements", "'score'", "give a list"]),
    qc("requirement-name-a-number", "{requirements: [{qualification: 7, comparator: exists}]}",
       [f"{R0}.qualification", "7", "must be a string"]),
    qc("allowlists-not-a-list", "{allowlists: trusted}", [f"{Q}.allowlists", "'trusted'", "give a list"]),
    qc("blocklist-name-with-spaces", "{blocklists: [' bad ']}", [f"{Q}.blocklists[0]", "remove the surrounding"]),
    qc("raw-approval-rate-120", raw(APPROVAL, "GreaterThanOrEqualTo", "[120]"),
       [f"{Q}.mturk.raw[0].IntegerValues", "[120]", "a percentage from 0 to 100"]),
    qc("raw-approval-rate-negative", raw(APPROVAL, "GreaterThan", "[-1]"),
       [f"{Q}.mturk.raw[0].IntegerValues", "[-1]", "a percentage from 0 to 100"]),
    qc("raw-approval-rate-in-list", raw(APPROVAL, "In", "[50, 101]"),
       [f"{Q}.mturk.raw[0].IntegerValues", "[50, 101]", "a percentage from 0 to 100"]),
    qc("raw-approved-hits-negative", raw(APPROVED_HITS, "GreaterThan", "[-5]"),
       [f"{Q}.mturk.raw[0].IntegerValues", "[-5]", "a count of 0 or more"]),
    qc("raw-adult-2", raw(ADULT, "EqualTo", "[2]"), [f"{Q}.mturk.raw[0].IntegerValues", "[2]", "or 0"]),
    qc("raw-unknown-comparator", raw(APPROVAL, "AtLeast", "[90]"), [f"{Q}.mturk.raw[0]", "AtLeast", "Comparator"]),
    qc("raw-missing-type-id", "{mturk: {raw: [{Comparator: Exists}]}}",
       [f"{Q}.mturk.raw[0]", "QualificationTypeId"]),
    qc("raw-not-a-list", "{mturk: {raw: {QualificationTypeId: x}}}", [f"{Q}.mturk.raw", "give a list"]),
    qc("raw-item-a-string", "{mturk: {raw: [approval]}}", [f"{Q}.mturk.raw[0]", "'approval'", "mapping"]),
    qc("preset-approval-rate-101", "{mturk: {system: {approval_rate: {comparator: '>=', value: 101}}}}",
       [f"{Q}.mturk.system.approval_rate.value", "101", "a percentage from 0 to 100"]),
    qc("preset-approved-hits-negative", "{mturk: {system: {approved_hits: {comparator: '>=', value: -1}}}}",
       [f"{Q}.mturk.system.approved_hits.value", "-1", "a count of 0 or more"]),
    qc("preset-approval-rate-string", "{mturk: {system: {approval_rate: {comparator: '>=', value: high}}}}",
       [f"{Q}.mturk.system.approval_rate.value", "'high'", "needs one integer value"]),
    qc("preset-unknown-name", "{mturk: {system: {approval: {comparator: '>=', value: 90}}}}",
       [f"{Q}.mturk.system.approval", "unknown MTurk preset", "approval_rate"]),
    qc("preset-adult-3", "{mturk: {system: {adult: {comparator: '==', value: 3}}}}",
       [f"{Q}.mturk.system.adult.value", "3", "or 0"]),
    qc("system-not-a-mapping", "{mturk: {system: [masters]}}", [f"{Q}.mturk.system", "give a mapping"]),
    qc("actions-guarded-unknown", "{mturk: {actions_guarded: Everything}}",
       [f"{Q}.mturk.actions_guarded", "'Everything'", "DiscoverPreviewAndAccept"]),
    # Prolific configs (quals.prolific: Prolific's filters, or the deprecated eligibility form).
    qc("prolific-approval-rate-120", "{prolific: [{filter: approval_rate, min: 120}]}",
       [f"{Q}.prolific[0].min", "120", "approval_rate takes"]),
    qc("prolific-age-below-18", "{prolific: [{filter: age, min: 12, max: 30}]}", [f"{Q}.prolific[0].min", "12", "age takes"]),
    qc("prolific-min-above-max", "{prolific: [{filter: age, min: 40, max: 30}]}",
       [f"{Q}.prolific[0].min", "40", "min must be <= max"]),
    qc("prolific-range-without-bounds", "{prolific: [{filter: approval_rate}]}",
       [f"{Q}.prolific[0]", "needs min and/or max"]),
    qc("prolific-range-not-a-number", "{prolific: [{filter: approval_rate, min: lots}]}",
       [f"{Q}.prolific[0].min", "'lots'", "give a number"]),
    qc("prolific-unknown-filter", "{prolific: [{filter: shoe_size, min: 40}]}",
       [f"{Q}.prolific[0].filter", "'shoe_size'", "use one of"]),
    qc("prolific-filter-and-filter-id", "{prolific: [{filter: age, filter_id: age, min: 20}]}",
       [f"{Q}.prolific[0]", "not both"]),
    qc("prolific-select-with-min", "{prolific: [{filter: first-language, min: 1}]}",
       [f"{Q}.prolific[0]", "select filter", "give values"]),
    qc("prolific-select-empty-values", "{prolific: [{filter: first-language, values: []}]}",
       [f"{Q}.prolific[0].values", "give a non-empty list"]),
    qc("prolific-not-a-list", "{prolific: approval_rate}", [f"{Q}.prolific", "'approval_rate'", "give a list of filters"]),
    qc("prolific-item-a-string", "{prolific: [approval_rate]}", [f"{Q}.prolific[0]", "'approval_rate'", "give a mapping"]),
    qc("prolific-legacy-age-a-string", "{prolific: [{name: AgeRangeEligibilityRequirement, min_age: old}]}",
       [f"{Q}.prolific[0].min_age", "'old'", "give a whole number"]),
    Case("quals-yaml", "yaml-syntax-error", ["forecast", "--config", "{file}"], ["{file}", "line 3", "not valid YAML"],
         "mephisto:\n  blueprint: [\n", ".yaml"),
    Case("quals-yaml", "yaml-tab-indent", ["explain", "1", "--config", "{file}"], ["{file}", "line 2", "not valid YAML"],
         "mephisto:\n\tblueprint: {}\n", ".yaml"),
    Case("quals-yaml", "yaml-not-utf8", ["forecast", "--config", "{file}"], ["{file}", "not UTF-8"],
         b"mephisto:\n  blueprint: {_blueprint_type: mock_quals, quals: {allowlists: [caf\xe9]}}\n", ".yaml"),
]


def ic(id: str, content: Union[str, bytes], expect: List[str], *extra_args: str) -> Case:
    return Case("grant-csv", id, ["import", "score", "{file}", "--provider", "mock", *extra_args], expect, content)


CSV_CASES = [
    ic("unknown-worker-id-with-a-good-row", "worker_id\n{alice}\n999999\n",
       ["{file}", "line 3", "'999999'", "no Mephisto worker has this id", "nothing was imported"], ),
    ic("value-too-big", f"worker,value\nalice,{BIG}\n", ["{file}", "line 2", str(BIG), VALID_RANGE]),
    ic("value-too-small", f"worker,value\nalice,{-BIG - 1}\n", ["{file}", "line 2", str(-BIG - 1), VALID_RANGE]),
    ic("value-float", "worker,value\nalice,2.5\n", ["{file}", "line 2", "'2.5' is not an integer"]),
    ic("value-huge-digits", "worker,value\nalice," + "9" * 5000 + "\n", ["{file}", "line 2", "is not an integer"]),
    ic("expires-year-10000", "worker,expires_at\nalice,10000-01-01\n", ["{file}", "line 2", "'10000-01-01'", "ISO-8601"]),
    ic("expires-garbage", "worker,expires_at\nalice,next week\n", ["{file}", "line 2", "'next week'", "ISO-8601"]),
    ic("expires-in-the-past", "worker,expires_at\nalice,1999-01-01\n", ["{file}", "line 2", "in the past"]),
    ic("not-utf8", b"worker,reason\nalice,caf\xe9\n", ["{file}", "not UTF-8"]),
    ic("utf16-file", "worker\nalice\n".encode("utf-16"), ["{file}", "not UTF-8"]),
    ic("nul-byte", "worker\nali\x00ce\n", ["{file}", "line 2", "NUL"]),
    ic("header-only", "worker,value\n", ["{file}", "header but no rows"]),
    ic("empty-file", "", ["{file}", "the CSV is empty"]),
    ic("bom-and-unknown-column", "\ufeffworker,score\nalice,1\n", ["{file}", "line 1", "'score'", "bad CSV header"]),
    ic("header-repeated-column", "worker,value,value\nalice,1,2\n", ["{file}", "repeated column(s) value"]),
    ic("header-upper-typo", "WORKER,Valeu\nalice,1\n", ["{file}", "'valeu'", "bad CSV header"]),
    ic("header-semicolons", "worker;value\nalice;1\n", ["{file}", "'worker;value'", "bad CSV header"]),
    ic("duplicate-rows-differ", "worker,value\nalice,1\nalice,2\n", ["{file}", "line 3", "also on line 2"]),
    ic("mixed-providers", "worker,provider\nalice,mock\nAB12,mturk\n", ["{file}", "line 3", "differs from --provider"]),
    ic("unknown-provider", "worker,provider\nalice,amazon\n", ["{file}", "line 2", "'amazon'", "is not one of"]),
    ic("too-many-fields", "worker,value\nalice,1,2\n", ["{file}", "line 2", "3 fields but the header has 2"]),
    ic("name-with-space", "worker\nali ce\n", ["{file}", "line 2", "'ali ce'", "no whitespace"]),
    ic("field-over-csv-limit", "worker,reason\nalice," + "x" * 200_000 + "\n", ["{file}", "line", "field larger"]),
    Case("grant-csv", "worker-id-not-a-number", ["import", "score", "{file}"],
         ["{file}", "line 2", "'alice'", "not a Mephisto worker id"], "worker\nalice\n"),
    Case("grant-csv", "worker-id-of-nobody-alone", ["import", "score", "{file}"],
         ["{file}", "line 2", "'424242'", "no Mephisto worker has this id"], "worker_id\n424242\n"),
]

ARG_CASES = [
    Case("cli-args", "value-2^63", ["grant", "score", "alice", "--provider", "mock", "--value", str(BIG)],
         ["--value", str(BIG), "9223372036854775807"]),
    Case("cli-args", "value--2^63-1", ["grant", "score", "alice", "--provider", "mock", "--value", str(-BIG - 1)],
         ["--value", str(-BIG - 1)]),
    Case("cli-args", "value-text", ["grant", "score", "alice", "--provider", "mock", "--value", "three"],
         ["--value", "three", "integer"]),
    Case("cli-args", "expires-in-99999999d", ["grant", "score", "alice", "--provider", "mock", "--expires-in", "99999999d"],
         ["--expires-in", "99999999d", "9999-12-31"]),
    Case("cli-args", "expires-in-huge-number", ["grant", "score", "alice", "--provider", "mock", "--expires-in",
                                                 "1" + "0" * 400 + "d"], ["--expires-in", "finite"]),
    Case("cli-args", "expires-in-negative", ["grant", "score", "alice", "--provider", "mock", "--expires-in", "-3d"],
         ["--expires-in", "'-3d'", "not a duration"]),
    Case("cli-args", "expires-in-unit", ["grant", "score", "alice", "--provider", "mock", "--expires-in", "3y"],
         ["--expires-in", "'3y'", "s, m, h, d, w"]),
    Case("cli-args", "expires-at-garbage", ["grant", "score", "alice", "--provider", "mock", "--expires-at", "tomorrow"],
         ["--expires-at", "'tomorrow'", "ISO-8601"]),
    Case("cli-args", "expires-at-year-10000", ["grant", "score", "alice", "--provider", "mock", "--expires-at",
                                               "10000-01-01"], ["--expires-at", "'10000-01-01'", "ISO-8601"]),
    Case("cli-args", "expires-at-past", ["grant", "score", "alice", "--provider", "mock", "--expires-at", "2001-01-01"],
         ["--expires-at", "'2001-01-01'", "in the past"]),
    Case("cli-args", "expires-at-9999-with-offset", ["grant", "score", "alice", "--provider", "mock", "--expires-at",
                                                     "9999-12-31T23:59:59-05:00"], ["--expires-at", "9999-12-31"]),
    Case("cli-args", "db-is-a-text-file", ["grant", "score", "alice", "--provider", "mock", "--db", "{file}"],
         ["{file}", "not a readable SQLite database"], "just some notes\n", ".txt"),
    Case("cli-args", "db-missing", ["grant", "score", "alice", "--provider", "mock", "--db", "{file}.nothing"],
         ["{file}.nothing", "no such file"]),
    Case("cli-args", "unknown-provider", ["grant", "score", "alice", "--provider", "amazon"], ["--provider", "amazon"]),
    Case("cli-args", "import-mturk-id-lowercase", ["import", "score", "{file}", "--provider", "mturk"],
         ["{file}", "line 2", "'a1b2'", "not an MTurk worker id"], "worker\na1b2\n"),
    Case("cli-args", "qualification-with-spaces", ["grant", " score ", "alice", "--provider", "mock", "--create"],
         ["' score '", "surrounding whitespace"]),
    Case("cli-args", "forecast-config-missing", ["forecast", "--config", "{file}.nothing"],
         ["--config", "{file}.nothing", "does not exist"]),
]

RULE_CASES = [
    Case("review-rules", "rules-yaml-syntax", ["review", "--task", "t", "--rules", "{file}"],
         ["{file}", "line 3", "not valid YAML"], "rules:\n  - [\n", ".yaml"),
    Case("review-rules", "rules-not-utf8", ["review", "--task", "t", "--rules", "{file}"],
         ["{file}", "not UTF-8"], b"rules:\n  - name: caf\xe9\n", ".yaml"),
    Case("review-rules", "rules-not-a-list", ["review", "--task", "t", "--rules", "{file}"],
         ["{file}", "rules"], "rules: everyone\n", ".yaml"),
    Case("review-rules", "rules-empty-file", ["review", "--task", "t", "--rules", "{file}"], ["{file}"], "", ".yaml"),
]

TYPE_CASES = [
    Case("qual-types", "types-yaml-syntax", ["qual-types", "apply", "{file}", "--requester", "r"],
         ["{file}", "line 3", "not valid YAML"], "qualification_types:\n  - [\n", ".yaml"),
    Case("qual-types", "types-not-utf8", ["qual-types", "apply", "{file}", "--requester", "r"],
         ["{file}", "not UTF-8"], b"qualification_types:\n  - name: caf\xe9\n", ".yaml"),
    Case("qual-types", "types-not-a-list", ["qual-types", "apply", "{file}", "--requester", "r"],
         ["qualification_types", "'one'", "give a non-empty list"], "qualification_types: one\n", ".yaml"),
]

CASES = QUALS_CASES + CSV_CASES + ARG_CASES + RULE_CASES + TYPE_CASES


def counts(db: LocalMephistoDB) -> Dict[str, int]:
    """Row counts of Mephisto's tables (conftest) plus workers and every table of ours."""
    out = dict(table_counts(db))
    conn = sqlite3.connect(db.db_path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND (name LIKE 'mephisto_quals%' OR name = 'workers')")]
        out.update({n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names})
    finally:
        conn.close()
    return out


def test_the_corpus_is_big_enough():
    kinds: Dict[str, int] = {}
    for c in CASES:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    assert len(CASES) >= 60, kinds
    assert len({(c.kind, c.id) for c in CASES}) == len(CASES)
    assert set(kinds) == {"quals-yaml", "grant-csv", "cli-args", "review-rules", "qual-types"}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}:{c.id}" for c in CASES])
def test_malformed_input_is_refused_with_one_message_and_nothing_written(db, tmp_path: Path, case: Case):
    alice = worker(db, "alice")
    grants.grant(db, "score", ["alice"], 1, provider="mock", create=True)
    file = tmp_path / f"input{case.suffix}"
    if case.content is not None:
        content = case.content
        if isinstance(content, str):
            content = content.replace("{alice}", str(alice.db_id)).encode("utf-8")
        file.write_bytes(content)
    args = [a.replace("{file}", str(file)) for a in case.args]
    if "--db" not in args:
        args += ["--db", db.db_path]
    before = counts(db)
    result = cli_runner().invoke(root, args, env={"COLUMNS": "250", "MEPHISTO_QUALS_DB": None},
                                 prog_name="mephisto-quals")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a failure of this corpus
    text = " ".join((result.stdout + " " + (result.stderr or "")).replace("│", " ").split())
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    assert text.count("Error") == 1, text  # one message
    for phrase in case.expect:
        phrase = phrase.replace("{file}", str(file))
        assert phrase in text, (phrase, text)
    assert counts(db) == before
    assert {h.worker_name: h.value for h in queries.holders(db, "score")} == {"alice_sandbox": 1}


HOSTILE = ["';DROP/**/TABLE/**/workers;--", 'Robert"); DELETE FROM granted_qualifications; --', "x\x00y", "bell\x07",
           "del\x7f", "esc\x1b[31m", "%_*?", "ünï©ødé", "a" * 2000, "1 OR 1=1"]


def test_hostile_worker_names_reach_sql_only_as_bound_parameters(db):
    """Names with quotes, SQL, NUL and control characters are stored and matched literally."""
    report = grants.grant(db, "hostile", [n for n in HOSTILE if " " not in n], 3, provider="inhouse", create=True,
                          crowd=False)
    assert report.ok, report.summary()
    spaced = grants.grant(db, "hostile", ["1 OR 1=1"], provider="inhouse", crowd=False)
    assert spaced.counts() == {"failed": 1}  # whitespace: refused by name, not by SQL
    got = {h.worker_name for h in queries.holders(db, "hostile")}
    assert got == {n for n in HOSTILE if " " not in n}
    assert "x\x00y" in got and len({h.worker_id for h in queries.holders(db, "hostile")}) == len(got)
    assert counts(db)["workers"] == len(got)
    revoked = grants.revoke(db, "hostile", ["x\x00y", "bell\x07"], provider="inhouse", crowd=False)
    assert revoked.counts() == {"revoked": 2}
    assert len(queries.holders(db, "hostile")) == len(got) - 2
