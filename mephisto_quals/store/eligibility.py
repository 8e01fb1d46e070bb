"""Who passes a list of requirements, for a whole population of workers at once, in SQL.

Two ways, the same verdicts (the gate's, ``integration.gate.passes``: ``Exists`` passes a holder,
``DoesNotExist`` a non-holder, a value comparison only a holder whose value compares true; a grant
whose expiry of ours has passed is not held; a requirement whose qualification is not in the
database, ``qual_id`` None, is held by nobody):

- :func:`counts` and :func:`verdicts`, set-based over the grant rows of each qualification. The
  population (and the expired grant rows, usually none) go into TEMP tables of this connection,
  which a read-only session may write. Then one statement per qualification counts its holders
  in the population and, per requirement on it, those whose value compares true; and one
  statement finds who passes everything: it walks the grants of the requirement the fewest
  pass and keeps a worker only while each other requirement holds for them (an index lookup
  each, the most eliminating first). :func:`counts` returns numbers only; :func:`verdicts`
  also the population and who passes, for a per-worker answer. With our index
  (``schema.GRANTS_INDEX``, qualification first, covering worker and value) each
  qualification's grants are one range of it. Without it (a database no writing session of
  this version opened since Mephisto rebuilt the table), and for a population smaller than
  :data:`SMALL_POPULATION`, the counts and the walk look each worker of the population up
  instead (in Mephisto's ``UNIQUE (worker_id, qualification_id)`` index when ours is missing):
  slower on a large population, the same answers.
- :func:`masks` / :func:`passing_masks`, one statement per batch of up to :data:`BATCH`
  requirements building a bit mask per worker with correlated sums: kept as the plain form of
  the rule (the tests compare the two).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from mephisto_quals.store.grants import LIVE, META_JOIN
from mephisto_quals.store.schema import GRANTS_INDEX, has_grants_index

__all__ = ["Check", "Counts", "BATCH", "counts", "verdicts", "masks", "passing_masks"]

#: Requirements per statement (bits of one SQLite integer, the sign bit left alone).
BATCH = 62

_SCALAR_SQL = {
    "GreaterThan": ">", "GreaterThanOrEqualTo": ">=", "LessThan": "<", "LessThanOrEqualTo": "<=",
    "EqualTo": "=", "NotEqualTo": "!=",
}
_HOLD = ("Exists", "DoesNotExist")
_LISTS = {"In": "IN", "NotIn": "NOT IN"}
#: Grant rows of ours whose expiry has passed: the complement of LIVE, for rows that have meta.
_EXPIRED = f"{META_JOIN.removeprefix('LEFT ')} WHERE NOT {LIVE}"
#: META_JOIN's ON clause: which meta row belongs to a grant row.
_META_PAIRING = META_JOIN.split(" ON ", 1)[1]


class Check(NamedTuple):
    """One requirement as the store sees it: the qualification's id (None: not in the DB),
    Mephisto's comparator name and the value (an int, a sequence of ints, or None)."""

    qual_id: Optional[int]
    comparator: str
    value: Any


def _condition(check: Check, i: int, params: Dict[str, Any]) -> str:
    """SQL that is true for a grant row meeting the check (holding it, for Exists/DoesNotExist)."""
    if check.comparator in _HOLD:
        return "1"
    if check.comparator in _SCALAR_SQL:
        params[f"v{i}"] = int(check.value)
        return f"g.value {_SCALAR_SQL[check.comparator]} :v{i}"
    if check.comparator in _LISTS:
        names = []
        for j, v in enumerate(check.value):
            params[f"v{i}_{j}"] = int(v)
            names.append(f":v{i}_{j}")
        return f"g.value {_LISTS[check.comparator]} ({', '.join(names)})"
    raise ValueError(f"comparator {check.comparator!r} is not one of Mephisto's")


def _bits_case(checks: Sequence[Check], params: Dict[str, Any]) -> str:
    """``CASE g.qualification_id WHEN q THEN <bits of the checks on q> ... ELSE 0 END``."""
    by_qual: Dict[int, List[str]] = {}
    for i, c in enumerate(checks):
        if c.qual_id is not None:
            by_qual.setdefault(int(c.qual_id), []).append(f"(({_condition(c, i, params)}) << {i})")
    if not by_qual:
        return "0"
    whens = []
    for k, (qual_id, terms) in enumerate(by_qual.items()):
        params[f"q{k}"] = qual_id
        whens.append(f"WHEN :q{k} THEN {' | '.join(terms)}")
    return f"CASE g.qualification_id {' '.join(whens)} ELSE 0 END"


def masks(conn: sqlite3.Connection, checks: Sequence[Check], now: float, provider_type: Optional[str] = None,
          worker_ids: Optional[Sequence[int]] = None) -> List[Tuple[int, int]]:
    """(worker_id, held mask) for every worker of the population, at most :data:`BATCH` checks.

    The population is ``worker_ids`` when given (ids Mephisto does not know hold nothing),
    else every worker (of ``provider_type``, if given). Bit *i* is set when the worker holds
    a live grant of check *i*'s qualification that meets its comparison.
    """
    if len(checks) > BATCH:
        raise ValueError(f"at most {BATCH} checks per statement, got {len(checks)}")
    params: Dict[str, Any] = {"now": now}
    case = _bits_case(checks, params)
    if worker_ids is not None:
        params["ids"] = json.dumps([int(w) for w in worker_ids])
        population = "SELECT DISTINCT CAST(j.value AS INTEGER) AS worker_id FROM json_each(:ids) j"
    elif provider_type:
        params["pt"] = provider_type
        population = "SELECT worker_id FROM workers WHERE provider_type = :pt"
    else:
        population = "SELECT worker_id FROM workers"
    live_now = LIVE.replace("?", ":now")
    expired = _EXPIRED.replace(LIVE, live_now)
    sql = f"""
        WITH pop AS ({population}),
             x AS (SELECT g.worker_id AS worker_id, SUM({case}) AS bits
                   FROM granted_qualifications g {expired} GROUP BY g.worker_id)
        SELECT p.worker_id AS worker_id,
               COALESCE((SELECT SUM({case}) FROM granted_qualifications g WHERE g.worker_id = p.worker_id), 0)
               - COALESCE(x.bits, 0) AS bits
        FROM pop p LEFT JOIN x ON x.worker_id = p.worker_id"""
    return [(int(r[0]), int(r[1])) for r in conn.execute(sql, params)]


def passing_masks(conn: sqlite3.Connection, checks: Sequence[Check], now: float, provider_type: Optional[str] = None,
                  worker_ids: Optional[Sequence[int]] = None) -> Dict[int, List[int]]:
    """worker_id -> one pass mask per batch of :data:`BATCH` checks (bit *i* of batch *b*: check
    ``b * BATCH + i`` passes), the gate's verdict for every worker and check."""
    out: Dict[int, List[int]] = {}
    batches = [list(checks[s:s + BATCH]) for s in range(0, len(checks), BATCH)] or [[]]
    for batch in batches:
        flip = sum(1 << i for i, c in enumerate(batch) if c.comparator == "DoesNotExist")
        for wid, held in masks(conn, batch, now, provider_type, worker_ids):
            out.setdefault(wid, []).append(held ^ flip)
    return out


# ---------------------------------------------------------------- set-based: counts and verdicts

#: TEMP tables of one call (dropped at its end): the population, and the expired grant rows.
_POP = "mephisto_quals_eligible_pop"
_GONE = "mephisto_quals_eligible_expired"


#: Below this many workers a look-up per worker is cheaper than a scan of a qualification's grants.
SMALL_POPULATION = 5_000


class Counts(NamedTuple):
    """The population's size, how many of it pass every check, and how many pass each check alone."""

    population: int
    passing: int
    per_check: List[int]


class _Term(NamedTuple):
    """A check on a qualification that exists, its value normalised (repeated checks count once)."""

    qual_id: int
    comparator: str
    value: Any

    @property
    def negative(self) -> bool:
        return self.comparator == "DoesNotExist"


def _terms(checks: Sequence[Check]) -> List[Optional[_Term]]:
    """Each check's term, None where its qualification is not in the database (held by nobody)."""
    out: List[Optional[_Term]] = []
    for c in checks:
        if c.comparator in _HOLD:
            value: Any = None
        elif c.comparator in _SCALAR_SQL:
            value = int(c.value)
        elif c.comparator in _LISTS:
            value = tuple(int(v) for v in c.value)
        else:
            raise ValueError(f"comparator {c.comparator!r} is not one of Mephisto's")
        out.append(None if c.qual_id is None else _Term(int(c.qual_id), c.comparator, value))
    return out


def _value_sql(term: _Term, alias: str, params: Dict[str, Any]) -> str:
    """SQL true for a grant row ``alias`` of the term's qualification that meets its comparison.

    The value is compared as ``+alias.value``, never as an index constraint: a look-up by
    (qualification, worker) then tests the one row it finds, where ``value IN (...)`` would be a
    seek per listed value."""
    if term.value is None:
        return "1"

    def bind(v: int) -> str:
        name = f"p{len(params)}"
        params[name] = v
        return f":{name}"

    if isinstance(term.value, tuple):
        return f"+{alias}.value {_LISTS[term.comparator]} ({', '.join(bind(v) for v in term.value)})"
    return f"+{alias}.value {_SCALAR_SQL[term.comparator]} {bind(term.value)}"


class _Sets:
    """The TEMP tables of one call and the statements over them (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, checks: Sequence[Check], now: float,
                 provider_type: Optional[str], worker_ids: Optional[Sequence[int]]) -> None:
        self.conn = conn
        self.checks = list(checks)
        self.of_check = _terms(checks)
        #: Nobody passes everything: a check needs a qualification the database does not have.
        self.hopeless = any(
            t is None and c.comparator != "DoesNotExist" for t, c in zip(self.of_check, checks, strict=True)
        )
        self.terms = list(dict.fromkeys(t for t in self.of_check if t is not None))
        self.indexed = has_grants_index(conn)
        self.index = f"INDEXED BY {GRANTS_INDEX}" if self.indexed else ""
        self._drop()
        conn.execute(f"CREATE TEMP TABLE {_POP} (worker_id INTEGER PRIMARY KEY)")
        if worker_ids is not None:
            conn.execute(f"INSERT OR IGNORE INTO temp.{_POP} SELECT CAST(value AS INTEGER) FROM json_each(?)",
                         (json.dumps([int(w) for w in worker_ids]),))
        elif provider_type:
            conn.execute(f"INSERT INTO temp.{_POP} SELECT worker_id FROM workers WHERE provider_type = ?",
                         (provider_type,))
        else:
            conn.execute(f"INSERT INTO temp.{_POP} SELECT worker_id FROM workers")
        self.population = int(conn.execute(f"SELECT COUNT(*) FROM temp.{_POP}").fetchone()[0])
        #: Few enough workers that looking each one up beats reading a qualification's grants.
        self.small = self.population < SMALL_POPULATION
        conn.execute(f"CREATE TEMP TABLE {_GONE} (granted_qualification_id INTEGER PRIMARY KEY)")
        gone = 0
        if self.terms:
            # Grant rows whose expiry has passed: META_JOIN's pairing and NOT LIVE, read from the meta
            # side (its expiry index; usually no row qualifies, prune deletes them), not per grant.
            gone = conn.execute(
                f"""INSERT INTO temp.{_GONE}
                    SELECT g.granted_qualification_id
                    FROM mephisto_quals_grant_meta m CROSS JOIN granted_qualifications g ON {_META_PAIRING}
                    WHERE m.expires_at <= ? AND NOT {LIVE}
                      AND g.qualification_id IN (SELECT value FROM json_each(?))""",
                (now, now, json.dumps(sorted({t.qual_id for t in self.terms}))),
            ).rowcount
        #: The live-grant condition on a grant row {a}: nothing to say when no row has expired.
        self.live = f" AND {{a}}.granted_qualification_id NOT IN temp.{_GONE}" if gone > 0 else ""

    def _drop(self) -> None:
        for table in (_POP, _GONE):
            self.conn.execute(f"DROP TABLE IF EXISTS temp.{table}")

    def close(self) -> None:
        self._drop()

    def term_counts(self) -> Dict[_Term, int]:
        """term -> how many of the population pass it: one statement per qualification."""
        if not self.population:
            return dict.fromkeys(self.terms, 0)
        out: Dict[_Term, int] = {}
        by_qual: Dict[int, List[_Term]] = {}
        for t in self.terms:
            by_qual.setdefault(t.qual_id, []).append(t)
        for qual_id, terms in by_qual.items():
            params: Dict[str, Any] = {"q": qual_id}
            valued = [t for t in terms if t.value is not None]
            sums = "".join(f", SUM({_value_sql(t, 'g', params)})" for t in valued)
            if self.indexed and not self.small:  # the qualification's range of our index, membership per row
                source = (f"granted_qualifications g {self.index}"
                          f" WHERE g.qualification_id = :q AND +g.worker_id IN temp.{_POP}")
            else:  # one index look-up per worker (ours, or Mephisto's (worker_id, qualification_id))
                source = (f"temp.{_POP} p CROSS JOIN granted_qualifications g {self.index}"
                          " ON g.qualification_id = :q AND g.worker_id = p.worker_id WHERE 1")
            row = self.conn.execute(f"SELECT COUNT(*){sums} FROM {source}{self.live.format(a='g')}", params).fetchone()
            holders = int(row[0])
            for t in terms:
                if t.value is None:
                    out[t] = self.population - holders if t.negative else holders
            for t, n in zip(valued, row[1:], strict=True):
                out[t] = int(n or 0)
        return out

    def passing_sql(self, passes: Dict[_Term, int], select: str) -> Optional[Tuple[str, Dict[str, Any]]]:
        """``SELECT <select> FROM`` the workers who pass every check, or None when nobody does.

        The walk starts from the grant rows of the term the fewest pass (with our index), else
        from the population; each other term is one index look-up per worker still in, the terms
        the fewest pass first, so most workers leave after one or two."""
        if self.hopeless or not self.population or any(n == 0 for n in passes.values()):
            return None
        params: Dict[str, Any] = {}
        # A value comparison passes holders only: an Exists on the same qualification adds nothing.
        valued = {t.qual_id for t in self.terms if t.value is not None and not t.negative}
        rest = sorted((t for t in self.terms if t.comparator != "Exists" or t.qual_id not in valued),
                      key=lambda t: passes[t])
        positive = [t for t in rest if not t.negative]
        if self.indexed and positive and not self.small:
            first = positive[0]
            rest.remove(first)
            params["q"] = first.qual_id
            source = (f"granted_qualifications d {self.index} WHERE d.qualification_id = :q"
                      f" AND {_value_sql(first, 'd', params)} AND +d.worker_id IN temp.{_POP}"
                      f"{self.live.format(a='d')}")
        else:
            source = f"temp.{_POP} d WHERE 1"
        wheres = []
        for i, t in enumerate(rest):
            a = f"x{i}"
            params[f"q{i}"] = t.qual_id
            held = (f"EXISTS (SELECT 1 FROM granted_qualifications {a} {self.index}"
                    f" WHERE {a}.qualification_id = :q{i} AND {a}.worker_id = d.worker_id"
                    f" AND {_value_sql(t, a, params)}{self.live.format(a=a)})")
            wheres.append(f" AND NOT {held}" if t.negative else f" AND {held}")
        return f"SELECT {select} FROM {source}{''.join(wheres)}", params

    def per_check(self, passes: Dict[_Term, int]) -> List[int]:
        """Each check's count, in the checks' order (a missing qualification: nobody holds it)."""
        return [passes[t] if t is not None else (0 if c.comparator != "DoesNotExist" else self.population)
                for t, c in zip(self.of_check, self.checks, strict=True)]


def counts(conn: sqlite3.Connection, checks: Sequence[Check], now: float, provider_type: Optional[str] = None,
           worker_ids: Optional[Sequence[int]] = None) -> Counts:
    """How many of the population pass every check and each check alone, with no per-worker rows.

    The population is ``worker_ids`` when given (each once; ids Mephisto does not know hold
    nothing), else every worker (of ``provider_type``, if given). Run it inside one read
    transaction for a consistent answer; it leaves no TEMP table behind.
    """
    sets = _Sets(conn, checks, now, provider_type, worker_ids)
    try:
        passes = sets.term_counts()
        query = sets.passing_sql(passes, "COUNT(*)")
        passing = int(conn.execute(*query).fetchone()[0]) if query else 0
        return Counts(sets.population, passing, sets.per_check(passes))
    finally:
        sets.close()


def verdicts(conn: sqlite3.Connection, checks: Sequence[Check], now: float, provider_type: Optional[str] = None,
             worker_ids: Optional[Sequence[int]] = None) -> Tuple[Dict[int, bool], List[int]]:
    """worker_id -> passes every check, for the population of :func:`counts`, and each check's count."""
    sets = _Sets(conn, checks, now, provider_type, worker_ids)
    try:
        passes = sets.term_counts()
        everyone = json.loads(conn.execute(f"SELECT json_group_array(worker_id) FROM temp.{_POP}").fetchone()[0])
        verdict = dict.fromkeys(everyone, False)
        query = sets.passing_sql(passes, "json_group_array(d.worker_id)")
        if query:
            verdict.update(dict.fromkeys(json.loads(conn.execute(*query).fetchone()[0]), True))
        return verdict, sets.per_check(passes)
    finally:
        sets.close()
