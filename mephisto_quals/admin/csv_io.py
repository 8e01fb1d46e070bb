"""Grant CSV files: read and check a whole file for ``import``, write holders for ``export``.

The format is ``worker,worker_id,provider,value,expires_at,reason`` (a header line first;
only ``worker`` or ``worker_id`` is required). What :func:`write_holders` writes,
:func:`read_grant_csv` reads back, into this or another Mephisto database: ``worker`` is the
provider's worker name, without Mephisto's ``_sandbox`` suffix. No click here: the CLI and
scripts share it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Tuple

from mephisto_quals.compile.comparators import VALUE_MAX, VALUE_MIN, VALUE_RANGE
from mephisto_quals.compile.durations import check_expiry, parse_instant
from mephisto_quals.errors import InputError
from mephisto_quals.store.workers import KNOWN_PROVIDERS, SANDBOX_PROVIDERS, mephisto_worker_name, parse_refs

__all__ = [
    "CSV_COLUMNS", "CsvRow", "GrantCsv", "read_grant_csv", "provider_name", "write_holders",
    "SHOWN_PROBLEMS",
]

#: The columns a grant CSV may have, in the order export writes them.
CSV_COLUMNS = ("worker", "worker_id", "provider", "value", "expires_at", "reason")


@dataclass
class CsvRow:
    """One checked line: the worker as given (with its provider, None for a Mephisto id) and the grant."""

    line: int
    worker: str
    provider: Optional[str]
    value: int
    expires_at: Optional[float]
    reason: Optional[str]


def provider_name(worker_name: str, provider: Optional[str]) -> str:
    """The name the provider knows (Mephisto adds ``_sandbox`` for sandbox providers)."""
    if provider in SANDBOX_PROVIDERS and worker_name.endswith("_sandbox"):
        return worker_name[: -len("_sandbox")]
    return worker_name


def _header(rows: Iterable[List[str]], reader: Any) -> List[str]:
    """The first non-blank line as lower-case column names; InputError if it is not a valid header."""
    header: Optional[List[str]] = None
    for cells in rows:
        if any(c.strip() for c in cells):
            header = [c.strip().lstrip("\ufeff").lower() for c in cells]
            break
    if header is None:
        raise InputError("the CSV is empty; its first line must be a header such as: worker,value,expires_at,reason")
    unknown = [c for c in header if c not in CSV_COLUMNS]
    dupes = sorted({c for c in header if header.count(c) > 1})
    no_worker = not ({"worker", "worker_id"} & set(header))
    if unknown or dupes or no_worker:
        why = []
        if unknown:
            why.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
        if dupes:
            why.append(f"repeated column(s) {', '.join(dupes)}")
        if no_worker:
            why.append("no 'worker' or 'worker_id' column")
        optional = ", ".join(c for c in CSV_COLUMNS if c not in ("worker", "worker_id"))
        raise InputError(
            f"line {reader.line_num}: bad CSV header ({'; '.join(why)}); the first line must be a header with a "
            f"'worker' or 'worker_id' column and optionally {optional}"
        )
    return header


def _row(
    cell: Dict[str, str], line: int, provider: Optional[str], reason: Optional[str], now: float, bad: List[str]
) -> CsvRow:
    """One line's row; what is wrong with it goes to ``bad``."""
    row_provider = cell.get("provider") or None
    if row_provider is not None and row_provider not in KNOWN_PROVIDERS:
        bad.append(f"provider {row_provider!r} is not one of {', '.join(sorted(KNOWN_PROVIDERS))}")
    elif row_provider and provider and row_provider != provider:
        bad.append(f"provider {row_provider!r} differs from --provider {provider}")
    row_provider = row_provider or provider
    name, worker_id = cell.get("worker", ""), cell.get("worker_id", "")
    ref_provider: Optional[str] = None
    if name and row_provider:
        given, ref_provider = name, row_provider  # a provider worker name: portable across databases
    elif worker_id:
        given = worker_id  # a Mephisto worker id
    elif name:
        given = name
    else:
        given = ""
        bad.append("empty worker id")
    if given and (ref_provider is None or ref_provider in KNOWN_PROVIDERS):
        _, refused = parse_refs([given], ref_provider)
        if refused:
            bad.append(f"worker {given!r}: {next(iter(refused.values()))}")
    value_text = cell.get("value", "")
    value = 1
    if value_text:
        try:
            value = int(value_text)
        except ValueError:
            bad.append(f"value {value_text!r} is not an integer")
        else:
            if not VALUE_MIN <= value <= VALUE_MAX:
                bad.append(f"value {value_text!r} is out of range; a qualification value is {VALUE_RANGE}")
    expires: Optional[float] = None
    if cell.get("expires_at"):
        try:
            moment = check_expiry(parse_instant(cell["expires_at"], "expires_at"), "expires_at", cell["expires_at"])
        except (ValueError, OverflowError) as e:
            bad.append(str(e))
        else:
            expires = moment
            if moment is not None and moment <= now:
                bad.append(f"expires_at {cell['expires_at']!r} is in the past")
    return CsvRow(line, given, ref_provider, value, expires, cell.get("reason") or reason)


def _cells(reader: Any, name: str) -> Iterator[List[str]]:
    """The reader's rows; undecodable bytes, a NUL or an oversized field become an InputError naming
    the file and the line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as e:
            raise InputError(
                f"{name}: not UTF-8 text after line {reader.line_num} ({e.reason}); save the CSV as UTF-8"
            ) from None
        except csv.Error as e:
            raise InputError(f"{name}: line {reader.line_num}: not a readable CSV line ({e})") from None


#: At most this many bad lines are listed in the error (the count is always exact).
SHOWN_PROBLEMS = 200


class GrantCsv:
    """A grant CSV read line by line: iterating yields each good row (memory stays flat in the
    file's size) and keeps what is wrong with the bad ones; :meth:`refuse` then raises one
    InputError for the whole file. A consumer that writes nothing until the end
    (``grants.grant_rows`` with ``all_or_nothing`` and ``precheck``) imports nothing from a bad file.

    Repeats of a worker are left to the consumer (the grants stage keeps the last, and ``import``
    refuses a repeat that differs); :func:`read_grant_csv` sorts them out itself.
    """

    def __init__(self, handle: Iterable[str], provider: Optional[str], reason: Optional[str], now: float,
                 name: Optional[str] = None) -> None:
        self.handle, self.provider, self.reason, self.now = handle, provider, reason, now
        self.name = name or str(getattr(handle, "name", "the CSV"))
        self.problems: List[Tuple[int, str]] = []
        self.bad_lines = 0
        self.good = 0

    def __iter__(self) -> Iterator[CsvRow]:
        reader = csv.reader(self.handle)
        cells_of = _cells(reader, self.name)
        try:
            header = _header(cells_of, reader)
        except InputError as e:
            raise e if str(e).startswith(f"{self.name}: ") else InputError(f"{self.name}: {e}") from None
        for cells in cells_of:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            bad: List[str] = []
            row = None
            if len(cells) > len(header):
                bad.append(f"{len(cells)} fields but the header has {len(header)}")
            else:
                cell = {col: (cells[i].strip() if i < len(cells) else "") for i, col in enumerate(header)}
                row = _row(cell, line, self.provider, self.reason, self.now, bad)
            if bad:
                self.add_problem(line, "; ".join(bad))
            elif row is not None:
                self.good += 1
                yield row

    def add_problem(self, line: int, why: str) -> None:
        self.bad_lines += 1
        if len(self.problems) < SHOWN_PROBLEMS:
            self.problems.append((line, why))

    def refuse(self) -> None:
        """Raise InputError listing the bad lines (the first SHOWN_PROBLEMS, in line order) if
        there are any, or if the file had no rows; else nothing."""
        if self.bad_lines:
            shown = sorted(self.problems)
            more = f"\n  ... and {self.bad_lines - len(shown)} more" if self.bad_lines > len(shown) else ""
            raise InputError(f"{self.name}: {self.bad_lines} bad line(s); nothing was imported:\n"
                             + "\n".join(f"  line {n}: {why}" for n, why in shown) + more)
        if not self.good:
            raise InputError(f"{self.name}: the CSV has a header but no rows")


def read_grant_csv(
    handle: Iterable[str], provider: Optional[str], reason: Optional[str], now: float, name: Optional[str] = None
) -> List[CsvRow]:
    """Parse and check a whole grant CSV; raise InputError listing every bad line (then nothing is imported).

    ``provider`` applies to rows without a provider cell, ``reason`` to rows with an empty
    reason. An exact repeat of a worker's row is dropped; a different one is an error.
    ``name`` (default: the handle's) names the file in messages. (For files too big to hold,
    :class:`GrantCsv`.)
    """
    checked = GrantCsv(handle, provider, reason, now, name)
    rows: List[CsvRow] = []
    seen: Dict[Tuple[Optional[str], str], CsvRow] = {}
    for row in checked:
        key = (
            row.provider,
            mephisto_worker_name(row.worker, row.provider) if row.provider else str(int(row.worker)),
        )
        first = seen.setdefault(key, row)
        if first is row:
            rows.append(row)
        elif (first.value, first.expires_at, first.reason) != (row.value, row.expires_at, row.reason):
            checked.add_problem(row.line, f"worker {row.worker!r}: also on line {first.line} with a different "
                                          "value, expiry or reason")
    checked.refuse()
    return rows


def write_holders(handle: IO[str], holders: Iterable[Any]) -> int:
    """Write holders (from ``queries.holders``) as a grant CSV with a header; returns the row count."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n = 0
    for h in holders:
        writer.writerow(
            [
                provider_name(h.worker_name, h.provider_type),
                h.worker_id,
                h.provider_type or "",
                "" if h.value is None else h.value,
                h.expires,
                h.reason or "",
            ]
        )
        n += 1
    return n
