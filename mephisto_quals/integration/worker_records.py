"""Worker registration that survives a worker record made meanwhile by another process.

Why. Mephisto's worker pool registers an arriving worker in two steps: ``find_workers(name)``,
then, when none is found, ``new_worker(name, provider)``. Between them another process may
create the record: a bulk ``import`` or ``grant`` that names workers Mephisto has not seen yet
(so the grant gates them when they arrive) does exactly that. Mephisto's insert then fails on
``UNIQUE (worker_name)``, ``new_worker`` raises ``EntryAlreadyExistsException``, and the
arriving worker gets no answer at all (seen in ``tests/test_live_run.py``: an allowlisted
worker arriving while the list was imported).

What. :func:`new_worker_or_existing` takes ``LocalMephistoDB._new_worker``'s place: Mephisto's
own insert, and when it reports the name taken, the existing worker's id if that worker has
the same provider type (the record is the one Mephisto would have made: name and provider).
Anything else (another provider's worker of that name, an empty name) raises as before.

Scope. :func:`install_worker_records` is called by the mixin when a ``_quals`` run starts, as
the gate is; it replaces the method on ``LocalMephistoDB`` for that process, once, and only
Mephisto's own function. Nothing in the database changes.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Type

__all__ = ["new_worker_or_existing", "install_worker_records", "original_new_worker"]

logger = logging.getLogger("mephisto_quals")

_METHOD = "_new_worker"
_MARK = "__mephisto_quals_worker_records__"
_original: Optional[Callable[..., str]] = None


def _already_exists() -> Type[BaseException]:
    """Mephisto's EntryAlreadyExistsException (it moved to ``mephisto.utils.db`` in 1.4)."""
    try:
        from mephisto.utils.db import EntryAlreadyExistsException
    except ImportError:
        from mephisto.abstractions.database import EntryAlreadyExistsException
    return EntryAlreadyExistsException


def new_worker_or_existing(self: Any, worker_name: str, provider_type: str) -> str:
    """Mephisto's ``_new_worker``; when the name was taken meanwhile by a worker of the same
    provider, that worker's id instead of ``EntryAlreadyExistsException``."""
    try:
        return original_new_worker()(self, worker_name=worker_name, provider_type=provider_type)
    except _already_exists():
        found = [w for w in self.find_workers(worker_name=worker_name) if w.provider_type == provider_type]
        if len(found) != 1:
            raise
        logger.info("mephisto-quals: worker %s was registered meanwhile by another process; using that record",
                    worker_name)
        return str(found[0].db_id)


setattr(new_worker_or_existing, _MARK, True)


def _local_db_class() -> Any:
    from mephisto.abstractions.databases.local_database import LocalMephistoDB

    return LocalMephistoDB


def original_new_worker() -> Callable[..., str]:
    """Mephisto's own ``LocalMephistoDB._new_worker``."""
    if _original is not None:
        return _original
    return _local_db_class().__dict__[_METHOD]


def install_worker_records() -> bool:
    """Put :func:`new_worker_or_existing` in ``LocalMephistoDB._new_worker``'s place (idempotent);
    returns whether it is in place. A function that is neither Mephisto's nor ours is left alone."""
    global _original
    cls = _local_db_class()
    current = cls.__dict__.get(_METHOD)
    if getattr(current, _MARK, False):
        return True
    if not str(getattr(current, "__module__", "")).startswith("mephisto."):  # 1.5.2 wraps it (mephisto.utils.db)
        logger.warning("mephisto-quals: LocalMephistoDB.%s is not Mephisto's own (%r): left in place", _METHOD, current)
        return False
    if _original is None:
        _original = current
    setattr(cls, _METHOD, new_worker_or_existing)
    return True
