"""The one way every ``mephisto-quals`` command finds the Mephisto database.

In order: ``--db PATH``; else ``$MEPHISTO_QUALS_DB``; else ``database.db`` in the
``core.main_data_directory`` of Mephisto's config (``~/.mephisto/config.yml``). It never
prompts (Mephisto's own lookup would ask for a data directory and hang a script), and a
path that is not a file is an :class:`~mephisto_quals.errors.InputError` (exit 2) naming it.

Tests may inject a database (a path or a LocalMephistoDB) and a ready MTurk client through
click's context object, ``obj={"db": ..., "mturk_client": ...}``; ``--db`` still wins.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import click

from mephisto_quals.errors import InputError

__all__ = ["DB_ENVVAR", "resolve_db", "open_database", "context_value"]

#: Environment variable naming the database when --db is not given.
DB_ENVVAR = "MEPHISTO_QUALS_DB"


def context_value(key: str) -> Any:
    """``key`` of the root click context's object (a dict or an object), or None."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _injected() -> Any:
    return context_value("db")


def _checked(path: str, origin: str) -> str:
    if not os.path.isfile(path):
        raise InputError(f"{origin}: no such file (give the path of a Mephisto database.db)")
    return path


def resolve_db(db: Optional[str]) -> str:
    """The database file's path: --db, else an injected one, else $MEPHISTO_QUALS_DB, else Mephisto's config."""
    if db:
        return _checked(os.path.expanduser(db), f"--db {db}")
    injected = _injected()
    if injected is not None:
        from mephisto_quals.store.session import database_path

        return _checked(database_path(injected), "the injected database")
    from_env = os.environ.get(DB_ENVVAR)
    if from_env:
        return _checked(os.path.expanduser(from_env), f"${DB_ENVVAR}={from_env}")
    from mephisto.operations.config_handler import DEFAULT_CONFIG_FILE, get_config_arg

    data_dir = get_config_arg("core", "main_data_directory")
    if not data_dir:
        raise InputError(
            f"no Mephisto data directory is configured ({DEFAULT_CONFIG_FILE} has no core.main_data_directory): "
            f"pass --db PATH/TO/database.db, set ${DB_ENVVAR}, or run 'mephisto config core.main_data_directory DIR'"
        )
    path = os.path.join(os.path.expanduser(str(data_dir)), "database.db")
    if not os.path.isfile(path):
        raise InputError(
            f"no Mephisto database at {path} (core.main_data_directory in {DEFAULT_CONFIG_FILE}); "
            f"pass --db PATH/TO/database.db or set ${DB_ENVVAR}"
        )
    return path


def open_database(db: Optional[str]) -> Any:
    """A LocalMephistoDB on :func:`resolve_db`'s file (or the injected database object itself).

    For commands that need Mephisto's own database object, e.g. to record MTurk type
    mappings in Mephisto's MTurk datastore.
    """
    injected = _injected()
    if not db and injected is not None and not isinstance(injected, (str, os.PathLike)):
        return injected
    path = resolve_db(db)
    from mephisto.abstractions.databases.local_database import LocalMephistoDB

    return LocalMephistoDB(database_path=path)
