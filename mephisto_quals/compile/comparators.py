"""Comparator names: readable aliases mapped to Mephisto's, and the values each accepts."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from mephisto_quals.errors import Problem

__all__ = [
    "EXISTS",
    "NOT_EXIST",
    "LIST_COMPARATORS",
    "NUMERIC_COMPARATORS",
    "VALUE_COMPARATORS",
    "ALIASES",
    "normalize_comparator",
    "check_value",
    "describe",
    "VALUE_MIN",
    "VALUE_MAX",
    "VALUE_RANGE",
]

# Mephisto's comparator names (mephisto.data_model.qualification), which are also MTurk's.
GREATER = "GreaterThan"
GREATER_EQUAL = "GreaterThanOrEqualTo"
LESS = "LessThan"
LESS_EQUAL = "LessThanOrEqualTo"
EQUAL = "EqualTo"
NOT_EQUAL = "NotEqualTo"
EXISTS = "Exists"
NOT_EXIST = "DoesNotExist"
IN = "In"
NOT_IN = "NotIn"

NUMERIC_COMPARATORS = (GREATER, GREATER_EQUAL, LESS, LESS_EQUAL)
SCALAR_COMPARATORS = NUMERIC_COMPARATORS + (EQUAL, NOT_EQUAL)
LIST_COMPARATORS = (IN, NOT_IN)
VALUE_COMPARATORS = SCALAR_COMPARATORS + LIST_COMPARATORS

_SYMBOLS: Dict[str, str] = {
    GREATER: ">",
    GREATER_EQUAL: ">=",
    LESS: "<",
    LESS_EQUAL: "<=",
    EQUAL: "==",
    NOT_EQUAL: "!=",
    EXISTS: "exists",
    NOT_EXIST: "not exists",
    IN: "in",
    NOT_IN: "not in",
}

_ALIAS_GROUPS: Dict[str, Tuple[str, ...]] = {
    GREATER: (">", "gt", "greater", "greater_than"),
    GREATER_EQUAL: (">=", "=>", "gte", "ge", "at_least", "greater_than_or_equal_to"),
    LESS: ("<", "lt", "less", "less_than"),
    LESS_EQUAL: ("<=", "=<", "lte", "le", "at_most", "less_than_or_equal_to"),
    EQUAL: ("==", "=", "eq", "equal", "equals", "equal_to", "is"),
    NOT_EQUAL: ("!=", "<>", "ne", "not_equal", "not_equal_to"),
    EXISTS: ("exists", "exist", "has", "holds"),
    NOT_EXIST: ("not exists", "not_exists", "!exists", "does_not_exist", "doesnotexist",
                "not exist", "lacks", "absent"),
    IN: ("in", "one_of", "any_of"),
    NOT_IN: ("not in", "not_in", "notin", "none_of"),
}

ALIASES: Dict[str, str] = {}
for _canonical, _aliases in _ALIAS_GROUPS.items():
    ALIASES[_canonical.lower()] = _canonical
    for _alias in _aliases:
        ALIASES[_alias] = _canonical


def describe(comparator: str) -> str:
    """Readable symbol for a Mephisto comparator, e.g. ``>=`` for GreaterThanOrEqualTo."""
    return _SYMBOLS.get(comparator, comparator)


def _valid_list(allowed: Optional[Tuple[str, ...]] = None) -> str:
    names = allowed if allowed is not None else tuple(_ALIAS_GROUPS)
    return ", ".join(f"{_SYMBOLS[c]} ({c})" for c in names)


def normalize_comparator(
    raw: Any, path: str, allowed: Optional[Tuple[str, ...]] = None
) -> Tuple[Optional[str], List[Problem]]:
    """Map an alias such as ``>=`` or ``GreaterThanOrEqualTo`` to Mephisto's name.

    Returns the canonical name, or None with a problem naming the valid choices.
    """
    key = " ".join(str(raw).strip().lower().split()) if isinstance(raw, str) else None
    canonical = ALIASES.get(key) if key is not None else None
    if canonical is None:
        return None, [Problem(path, raw, f"use one of {_valid_list(allowed)}")]
    if allowed is not None and canonical not in allowed:
        return None, [Problem(path, raw, f"use one of {_valid_list(allowed)} here")]
    return canonical, []


#: Qualification values are SQLite INTEGERs: signed 64-bit.
VALUE_MIN = -(2**63)
VALUE_MAX = 2**63 - 1
VALUE_RANGE = f"an integer from {VALUE_MIN} to {VALUE_MAX} (SQLite's 64-bit INTEGER)"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_range(value: int) -> bool:
    return VALUE_MIN <= value <= VALUE_MAX


def check_value(
    comparator: str, value: Any, path: str, max_list: Optional[int] = None
) -> Tuple[Any, List[Problem]]:
    """Check a requirement value against its comparator, returning the value Mephisto stores.

    Qualification values in Mephisto are integers: scalar comparators take one int,
    ``in``/``not in`` a non-empty list of ints, ``exists``/``not exists`` no value at all.
    """
    symbol = describe(comparator)
    if comparator in (EXISTS, NOT_EXIST):
        if value is not None:
            return None, [Problem(path, value, f"'{symbol}' takes no value; remove it")]
        return None, []
    if comparator in SCALAR_COMPARATORS:
        if not _is_int(value):
            return None, [Problem(path, value, f"'{symbol}' needs one integer value")]
        if not _in_range(value):
            return None, [Problem(path, value, f"'{symbol}' needs {VALUE_RANGE}")]
        return value, []
    # In / NotIn
    items = list(value) if isinstance(value, (list, tuple)) else None
    if not items:
        return None, [Problem(path, value, f"'{symbol}' needs a non-empty list of integers")]
    bad = [v for v in items if not _is_int(v)]
    if bad:
        return None, [Problem(path, value, f"'{symbol}' needs a list of integers; {bad!r} are not")]
    out_of_range = [v for v in items if not _in_range(v)]
    if out_of_range:
        return None, [Problem(path, value, f"'{symbol}' needs values that are each {VALUE_RANGE}; "
                                           f"{out_of_range!r} are not")]
    if max_list is not None and len(items) > max_list:
        return None, [
            Problem(path, value, f"'{symbol}' takes at most {max_list} values, got {len(items)}")
        ]
    return items, []
