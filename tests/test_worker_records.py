"""A worker record made by another process between Mephisto's find and insert does not lose the arrival.

Mephisto registers an arriving worker with ``find_workers(name)`` then ``new_worker(name)``; a
bulk import in another process may create the record in between (tests/test_live_run.py saw an
allowlisted worker get no answer that way). With the plugin's ``_new_worker`` in place, the
insert that finds the name taken returns the existing record of the same provider.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterator

import pytest

from mephisto_quals.integration import worker_records


def _exists_error() -> type:
    return worker_records._already_exists()  # noqa: SLF001 - the same class Mephisto raises


@pytest.fixture
def installed() -> Iterator[None]:
    """The plugin's _new_worker in LocalMephistoDB's place for the test, Mephisto's restored after."""
    from mephisto.abstractions.databases.local_database import LocalMephistoDB

    before = LocalMephistoDB.__dict__["_new_worker"]
    assert worker_records.install_worker_records()
    assert worker_records.install_worker_records()  # idempotent
    yield
    LocalMephistoDB._new_worker = before  # type: ignore[method-assign]


def made_by_another_process(db: Any, name: str, provider: str) -> int:
    """Insert a worker record on a connection of its own, as another process would."""
    conn = sqlite3.connect(db.db_path)
    try:
        with conn:
            cursor = conn.execute("INSERT INTO workers (worker_id, worker_name, provider_type) VALUES "
                                  "((SELECT COALESCE(MAX(worker_id), 0) + 1 FROM workers), ?, ?)", (name, provider))
        return int(cursor.lastrowid or 0)
    finally:
        conn.close()


def test_mephistos_own_insert_raises_when_the_name_was_taken_meanwhile(db: Any) -> None:
    made_by_another_process(db, "zoe_sandbox", "mock")
    with pytest.raises(_exists_error()):
        worker_records.original_new_worker()(db, worker_name="zoe_sandbox", provider_type="mock")


def test_with_the_plugin_the_existing_record_is_returned(db: Any, installed: None) -> None:
    theirs = made_by_another_process(db, "zoe_sandbox", "mock")
    assert db.new_worker("zoe_sandbox", "mock") == str(theirs)
    assert [w.db_id for w in db.find_workers(worker_name="zoe_sandbox")] == [str(theirs)]
    fresh = db.new_worker("yan_sandbox", "mock")  # a new name is inserted by Mephisto's own code
    assert [w.db_id for w in db.find_workers(worker_name="yan_sandbox")] == [fresh]


def test_another_providers_worker_of_that_name_still_raises(db: Any, installed: None) -> None:
    made_by_another_process(db, "A1B2C3", "mturk")
    with pytest.raises(_exists_error()):
        db.new_worker("A1B2C3", "mturk_sandbox")
