"""What process A watches for: "database is locked" in logs, thread exceptions and the run's
LocalMephistoDB calls, and the time each of Mephisto's writes took."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from typing import Any, Callable, Iterator, List, Tuple

LOCKED = ("database is locked", "database table is locked")
#: Mephisto's database methods that write (timed on the run's LocalMephistoDB instance).
_WRITE_PREFIXES = ("new_", "update_", "grant_", "revoke_", "make_", "delete_", "clear_")


class _LockWatch(logging.Handler):
    """Records every log record (any logger) that mentions a locked database."""

    def __init__(self, sink: List[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        except Exception:  # a record that cannot format is not ours to report
            return
        if any(s in text for s in LOCKED):
            self.sink.append(f"log {record.name}: {text.strip().splitlines()[-1]}")


@contextlib.contextmanager
def capture_locks(sink: List[str]) -> Iterator[None]:
    """Watch logging and uncaught thread exceptions for "database is locked" while inside."""
    handler = _LockWatch(sink)
    root = logging.getLogger()
    root.addHandler(handler)
    original_hook = threading.excepthook

    def hook(args: Any) -> None:
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        if any(s in text for s in LOCKED):
            sink.append(f"thread {getattr(args.thread, 'name', '?')}: {args.exc_value}")
        original_hook(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = original_hook
        root.removeHandler(handler)


def watch_db(db: Any, writes: List[Tuple[str, float]], locked: List[str]) -> None:
    """Wrap the instance's public methods with a watcher that calls straight through: it times
    each write and records any "database is locked" a call raises (Mephisto 1.5.2 swallows some
    of them without a log line), then re-raises it."""
    for name in dir(db):
        if name.startswith("_") or not name.startswith(_WRITE_PREFIXES + ("find_", "get_")):
            continue
        method = getattr(db, name, None)
        if not callable(method):
            continue

        def watched(*args: Any, _method: Callable[..., Any] = method, _name: str = name, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            except Exception as e:
                if any(s in str(e) for s in LOCKED):
                    locked.append(f"Mephisto's {_name} raised: {e}")
                raise
            finally:
                if _name.startswith(_WRITE_PREFIXES):
                    writes.append((_name, time.perf_counter() - started))

        setattr(db, name, watched)
