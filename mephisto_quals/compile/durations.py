"""Durations written the way people write them (``7d``, ``12h``, ``90m``, ``permanent``)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Optional, Union

__all__ = ["parse_duration", "parse_instant", "format_instant", "check_expiry", "PERMANENT", "LATEST_EXPIRY",
           "EXPIRY_RANGE"]

PERMANENT = "permanent"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The latest expiry a grant may have (9999-12-31T23:59:59Z): every later instant breaks date formatting.
LATEST_EXPIRY = 253402300799.0
EXPIRY_RANGE = "an expiry must be in the future and no later than 9999-12-31T23:59:59+00:00"
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: Union[str, int, float, None], field: str = "duration") -> Optional[float]:
    """Seconds for ``30m``/``12h``/``7d``/``2w`` (or a number of seconds); None for ``permanent``.

    Raises ValueError naming the field, the value and the valid forms.
    """
    if text is None or (isinstance(text, str) and text.strip().lower() == PERMANENT):
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _PATTERN.match(str(text).lower())
        if not match:
            raise ValueError(
                f"{field}: {text!r} is not a duration; write a number and a unit "
                "(s, m, h, d, w), e.g. 30m, 12h, 7d, or 'permanent'"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"{field}: {text!r} is not a finite duration")
    if seconds <= 0:
        raise ValueError(f"{field}: {text!r} must be longer than zero (or 'permanent')")
    return seconds


def parse_instant(text: Union[str, float, int, datetime], field: str = "expires_at") -> float:
    """Unix seconds for an ISO-8601 time (``2026-12-31`` or ``2026-12-31T18:00:00+01:00``).

    A time without a zone is taken as UTC, as Mephisto stores its own timestamps.
    """
    if isinstance(text, datetime):
        moment = text
    elif isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text):
            raise ValueError(f"{field}: {text!r} is not a date/time")
        return float(text)
    else:
        try:
            moment = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{field}: {text!r} is not a date/time; use ISO-8601 such as 2026-12-31 or "
                "2026-12-31T18:00:00+00:00"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def check_expiry(moment: Optional[float], field: str = "expires_at", given: object = None) -> Optional[float]:
    """``moment`` (unix seconds; None = permanent) if it is a storable expiry, else ValueError
    naming the field and the value: nothing past :data:`LATEST_EXPIRY` can be stored, so no
    read can later fail to show a date."""
    if moment is None:
        return None
    shown = given if given is not None else moment
    if isinstance(moment, bool) or not isinstance(moment, (int, float)) or not math.isfinite(moment):
        raise ValueError(f"{field}: {shown!r} is not valid; {EXPIRY_RANGE}")
    if moment > LATEST_EXPIRY:
        raise ValueError(f"{field}: {shown!r} is too far ahead; {EXPIRY_RANGE}")
    return float(moment)


def format_instant(seconds: Optional[float]) -> str:
    """ISO-8601 UTC text for unix seconds; empty for None (permanent)."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=0).isoformat()
