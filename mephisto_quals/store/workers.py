"""Naming workers: by Mephisto worker id, or by provider worker name + provider type.

Mephisto stores a sandbox provider's workers (mock, mturk_sandbox) as ``<name>_sandbox``;
the same rule applies here so a grant made before a worker ever connects finds them.
"""

from __future__ import annotations

import re
import sqlite3
from functools import partial
from itertools import repeat
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from mephisto_quals.store.mephisto import random_id, uses_random_ids
from mephisto_quals.store.session import chunks

__all__ = [
    "WorkerRef",
    "SANDBOX_PROVIDERS",
    "PROLIFIC_ID_RULE",
    "is_prolific_participant_id",
    "mephisto_worker_name",
    "parse_refs",
    "plain_ids",
    "resolve_workers",
    "provider_types",
    "insert_workers",
]

#: Providers whose workers Mephisto names with a ``_sandbox`` suffix.
SANDBOX_PROVIDERS = {"mock", "mturk_sandbox"}
#: The largest id a Mephisto worker can have (SQLite's 64-bit INTEGER).
MAX_WORKER_ID = 2**63 - 1
_ID_DIGITS = len(str(MAX_WORKER_ID))
KNOWN_PROVIDERS = {"mock", "mturk", "mturk_sandbox", "prolific", "inhouse"}
_MTURK_WORKER = re.compile(r"^A[A-Z0-9]{1,63}$")
_SPACE = re.compile(r"\s")
_PROLIFIC_PARTICIPANT = re.compile(r"^[0-9a-f]{24}$")
#: What a refused Prolific participant id is told.
PROLIFIC_ID_RULE = "not a Prolific participant id (24 lowercase hexadecimal characters, e.g. 5e9b9c9b0f9c9a0001b0b1f5)"


def is_prolific_participant_id(text: object) -> bool:
    """A Prolific participant id: 24 lowercase hexadecimal characters (a MongoDB ObjectId)."""
    return isinstance(text, str) and bool(_PROLIFIC_PARTICIPANT.match(text))


class WorkerRef(NamedTuple):
    """A worker as the caller named them; exactly one of ``worker_id`` / ``name`` is set."""

    given: str
    worker_id: Optional[int] = None
    name: Optional[str] = None
    provider: Optional[str] = None

    @property
    def lookup(self) -> Union[int, str]:
        """What finds the worker in Mephisto's ``workers`` table: the id, else the stored name."""
        return self.worker_id if self.worker_id is not None else str(self.name)


def mephisto_worker_name(name: str, provider: str) -> str:
    """The name Mephisto stores for a provider's worker (``alice`` → ``alice_sandbox`` on mock)."""
    if provider in SANDBOX_PROVIDERS and not name.endswith("_sandbox"):
        return f"{name}_sandbox"
    return name


def parse_refs(
    workers: Iterable[Union[str, int]], provider: Optional[str] = None
) -> Tuple[List[WorkerRef], Dict[str, str]]:
    """Turn what the caller gave into references, with a reason for each one refused.

    Without ``provider`` each entry is a Mephisto worker id; with it, a provider worker name
    (MTurk worker ids must look like ``A1B2C3...``, Prolific ids are 24 hex characters).
    """
    if provider is not None and provider not in KNOWN_PROVIDERS:
        raise ValueError(f"provider: {provider!r} is not known; use one of {', '.join(sorted(KNOWN_PROVIDERS))}")
    if provider is None:
        workers = list(workers)  # read twice when the list-at-a-time check declines (a generator once)
        plain = plain_ids(workers)
        if plain is not None:
            nothing = repeat(None)
            return list(map(_new_ref, zip(*plain, nothing, nothing, strict=False))), {}
    refs: List[WorkerRef] = []
    refused: Dict[str, str] = {}
    seen = set()
    add, new_ref = refs.append, tuple.__new__  # a plain tuple build: a NamedTuple's __new__ costs more than the rest
    for raw in workers:
        given = str(raw).strip() if raw is not None else ""
        if given in seen:
            continue
        seen.add(given)
        if not given:
            refused[str(raw)] = "empty worker id"
        elif provider is None:
            if not (given.isascii() and given.isdigit()):
                refused[given] = "not a Mephisto worker id (a number); name provider workers with --provider"
            elif len(given.lstrip("0")) > _ID_DIGITS or int(given) > MAX_WORKER_ID:
                refused[given] = f"not a Mephisto worker id (they go up to {MAX_WORKER_ID})"
            else:
                add(new_ref(WorkerRef, (given, int(given), None, None)))
        elif _SPACE.search(given):
            refused[given] = "worker names contain no whitespace"
        elif provider.startswith("mturk") and not _MTURK_WORKER.match(given.removesuffix("_sandbox")):
            refused[given] = "not an MTurk worker id (A followed by capital letters and digits)"
        elif provider == "prolific" and not is_prolific_participant_id(given):
            refused[given] = PROLIFIC_ID_RULE
        else:
            add(new_ref(WorkerRef, (given, None, mephisto_worker_name(given, provider), provider)))
    return refs, refused


def plain_ids(workers: Iterable[Union[str, int]]) -> Optional[Tuple[List[str], List[int]]]:
    """The common case of :func:`parse_refs` checked a list at a time (in C, not per worker):
    strings of ASCII digits, each given once, none empty and too short to pass the largest id;
    (the stripped strings, their ids), or None when any one is not (the per-worker check then
    tells which and why)."""
    try:
        givens = list(map(str.strip, workers))  # type: ignore[arg-type]
    except TypeError:  # not all strings
        return None
    text = "".join(givens)
    distinct = set(givens)
    if not (text.isascii() and text.isdigit()) or "" in distinct or len(distinct) != len(givens) \
            or max(map(len, givens)) >= _ID_DIGITS:
        return None
    return givens, list(map(int, givens))


_new_ref = partial(tuple.__new__, WorkerRef)  # a NamedTuple's own constructors cost more than the check


def resolve_workers(
    conn: sqlite3.Connection, refs: List[WorkerRef], create: bool
) -> Tuple[Dict[str, Tuple[int, str]], Dict[str, str]]:
    """Map each reference to (worker_id, worker_name); create unseen named workers if asked.

    Must run inside the caller's transaction, so created workers commit with the grant.
    """
    found: Dict[str, Tuple[int, str]] = {}
    missing: Dict[str, str] = {}
    by_id = [r for r in refs if r.worker_id is not None]
    for part in chunks(by_id):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT worker_id, worker_name FROM workers WHERE worker_id IN ({marks})", [r.worker_id for r in part]
        )
        known = {row["worker_id"]: row["worker_name"] for row in rows}
        for r in part:
            if r.worker_id in known:
                found[r.given] = (int(str(r.worker_id)), known[r.worker_id])
            else:
                missing[r.given] = "no Mephisto worker has this id"
    by_name = [r for r in refs if r.name is not None]
    for part in chunks(by_name):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT worker_id, worker_name FROM workers WHERE worker_name IN ({marks})", [r.name for r in part]
        )
        known = {row["worker_name"]: row["worker_id"] for row in rows}
        fresh = [r for r in part if r.name not in known]
        if create and fresh:
            insert_workers(conn, [(r.name, r.provider) for r in fresh])  # type: ignore[misc]
            rows = conn.execute(
                f"SELECT worker_id, worker_name FROM workers WHERE worker_name IN ({','.join('?' * len(fresh))})",
                [r.name for r in fresh],
            )
            known.update({row["worker_name"]: row["worker_id"] for row in rows})
        for r in part:
            if r.name in known:
                found[r.given] = (known[r.name], str(r.name))
            else:
                missing[r.given] = "Mephisto has never seen this worker"
    return found, missing


def insert_workers(conn: sqlite3.Connection, named: Sequence[Tuple[str, str]]) -> None:
    """Insert workers as Mephisto does on this database: sequential ids on 1.1.1's schema,
    random 63-bit ids (retried on a clash) once Mephisto 1.4+ has migrated it."""
    if not uses_random_ids(conn, "workers"):
        conn.executemany("INSERT INTO workers (worker_name, provider_type) VALUES (?, ?)", named)
        return
    for name, provider in named:
        for _ in range(20):
            try:
                conn.execute(
                    "INSERT INTO workers (worker_id, worker_name, provider_type) VALUES (?, ?, ?)",
                    (random_id(), name, provider),
                )
                break
            except sqlite3.IntegrityError as e:
                if "worker_id" not in str(e) and "PRIMARY" not in str(e).upper():
                    raise


def provider_types(conn: sqlite3.Connection, worker_ids: Iterable[int]) -> Dict[int, str]:
    """worker_id -> provider_type (as Mephisto stored it) of the given workers that exist."""
    out: Dict[int, str] = {}
    for part in chunks(list(dict.fromkeys(int(w) for w in worker_ids))):
        marks = ",".join("?" * len(part))
        rows = conn.execute(f"SELECT worker_id, provider_type FROM workers WHERE worker_id IN ({marks})", part)
        out.update({int(row["worker_id"]): row["provider_type"] for row in rows})
    return out
