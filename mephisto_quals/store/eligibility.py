"""Who passes a list of requirements, for a whole population of workers at once, in SQL.

One statement per batch of up to :data:`BATCH` requirements: for every worker of the population
a correlated sum over their grant rows (Mephisto's ``UNIQUE (worker_id, qualification_id)``
index finds them) builds a bit mask, bit *i* set when the worker holds requirement *i*'s
qualification (for a value comparison: holds it with a value that compares true). Expired
grants are subtracted with the one live-grant rule of :mod:`mephisto_quals.store.grants`.
A requirement whose qualification is not in the database (``qual_id`` None) has its bit
clear for everyone: held by nobody.

The verdicts are the gate's (``integration.gate.passes``): ``Exists`` passes a holder,
``DoesNotExist`` a non-holder, a value comparison only a holder whose value compares true.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from mephisto_quals.store.grants import LIVE, META_JOIN

__all__ = ["Check", "BATCH", "masks", "passing_masks"]

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
