"""The one data layer: every read and write of a Mephisto database goes through here.

- :mod:`~mephisto_quals.store.session`: a connection and its transactions (read-only or writing).
- :mod:`~mephisto_quals.store.schema`: our own tables, their version and migrations.
- :mod:`~mephisto_quals.store.mephisto`: what differs between Mephisto lines in the database.
- :mod:`~mephisto_quals.store.grants`: grant rows, expiry meta and the live-grant rule.
- :mod:`~mephisto_quals.store.qualifications`, :mod:`~mephisto_quals.store.workers`,
  :mod:`~mephisto_quals.store.runs`, :mod:`~mephisto_quals.store.audit`: one table family each.
"""

from mephisto_quals.store.session import DatabaseLike, Session, chunks, database_path, session_for

__all__ = ["Session", "DatabaseLike", "chunks", "database_path", "session_for"]
