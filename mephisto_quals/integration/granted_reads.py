"""Mephisto's own grant reads answered from an index: the same rows in the same order, fast at any size.

Why. For every arrival at a task with onboarding, Mephisto's worker pool asks
``worker.is_disqualified(onboarding)`` and ``worker.is_qualified(onboarding)``; both end in
``LocalMephistoDB``'s grant read (``store.mephisto.GRANTED_READ``, the method behind both
public grant lookups, 1.5.2's ``find_granted_qualifications`` and the one it deprecates)
with a qualification and a worker. Its one statement, ``WHERE (?1 IS NULL OR
qualification_id = ?1) AND (?2 IS NULL OR worker_id = ?2) AND (?3 IS NULL OR value = ?3)``,
is one no index can serve, so every call scans the whole of ``granted_qualifications`` (on
1.1.1 it then reads each matching row once more). After a bulk grant of a big list, every
arrival of a live run pays for the list's size.

What. :func:`granted_qualifications` takes that method's place. It runs
:func:`mephisto_quals.store.mephisto.granted_rows`: a statement naming only the filters given,
so Mephisto's ``UNIQUE (worker_id, qualification_id)`` index answers a worker's reads (any
index on ``qualification_id`` that exists serves a qualification's), with ``ORDER BY rowid``,
the order of Mephisto's full scan. It builds the ``GrantedQualification`` objects from those
rows, as 1.5.2 does (1.1.1 reads each row again by its (qualification, worker) pair, which is
the same row, unique by that constraint).

Why it is safe. The rows are the same: ``col = ?`` compares with the same type affinity as
Mephisto's ``?N IS NULL OR col = ?N`` (``"5"`` matches 5, ``"x"`` and ``""`` match nothing, a
``None`` filter is no filter), checked against Mephisto's own function for every combination
of given filters in ``tests/test_granted_reads.py``. So are the order, the lock
(``table_access_condition``), the connection and its row factory, and the public methods
around it (their latency metrics, 1.5.2's deprecation warning). Nothing changes in the
database (no index, trigger or view), so Mephisto's migrations, such as 1.5.2's first one
that drops and rebuilds ``granted_qualifications``, meet exactly the tables they expect.
What differs on 1.1.1: no second read per row, so a row another process deletes between
Mephisto's two reads is returned as it was read instead of raising ``EntryDoesNotExistException``,
and those second reads no longer count in the ``get_granted_qualification`` latency metric.

Scope. :func:`install_granted_reads` is called by the mixin when a ``_quals`` run starts (never
at import), beside the gate. It replaces the method on ``LocalMephistoDB`` for that process
(the Operator's database, the workers' and any other instance: their answers are unchanged),
once; it replaces only Mephisto's own function, so a method something else put there is left
alone. :func:`original_granted_read` returns Mephisto's function.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, List, Optional

from mephisto.data_model.qualification import GrantedQualification

from mephisto_quals.store.mephisto import GRANTED_READ, granted_rows, mephisto_connection

__all__ = ["granted_qualifications", "install_granted_reads", "original_granted_read", "in_effect"]

logger = logging.getLogger("mephisto_quals")

ReadFn = Callable[..., List[Any]]

_MARK = "__mephisto_quals_granted_reads__"
_MEPHISTO_MODULE = "mephisto.abstractions.databases.local_database"
_original: Optional[ReadFn] = None


def granted_qualifications(
    self: Any, qualification_id: Optional[str] = None, worker_id: Optional[str] = None, value: Optional[int] = None
) -> List[GrantedQualification]:
    """Drop-in for ``LocalMephistoDB``'s ``GRANTED_READ`` method: the same objects in the same order."""
    with self.table_access_condition:
        rows = granted_rows(mephisto_connection(self), qualification_id, worker_id, value)
        return [GrantedQualification(self, str(r["qualification_id"]), str(r["worker_id"]), row=r) for r in rows]


setattr(granted_qualifications, _MARK, True)


def _local_db_class() -> Any:
    from mephisto.abstractions.databases.local_database import LocalMephistoDB

    return LocalMephistoDB


def _is_mephistos(fn: Any) -> bool:
    return getattr(fn, "__module__", None) == _MEPHISTO_MODULE and getattr(fn, "__name__", None) == GRANTED_READ


def original_granted_read() -> ReadFn:
    """Mephisto's own ``LocalMephistoDB`` read, as it was before :func:`install_granted_reads`."""
    if _original is not None:
        return _original
    return _local_db_class().__dict__[GRANTED_READ]


def install_granted_reads() -> bool:
    """Put :func:`granted_qualifications` in ``LocalMephistoDB``'s place (idempotent).

    Returns whether it is in place afterwards. Mephisto's function is captured the first time;
    a function that is neither Mephisto's nor ours is left where it is.
    """
    global _original
    cls = _local_db_class()
    current = cls.__dict__.get(GRANTED_READ)
    if getattr(current, _MARK, False):
        return True
    if not _is_mephistos(current):
        logger.warning("mephisto-quals: LocalMephistoDB.%s is not Mephisto's own (%r): left in place", GRANTED_READ,
                       current)
        return False
    if _original is None:
        _original = current
    setattr(cls, GRANTED_READ, granted_qualifications)
    return True


def in_effect(db: Any) -> bool:
    """Whether ``db``'s grant reads go through :func:`granted_qualifications`."""
    return bool(getattr(getattr(type(db), GRANTED_READ, None), _MARK, False))
