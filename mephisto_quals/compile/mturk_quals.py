"""MTurk's system qualifications: the table of presets (name, live and sandbox ids, kind, fee).

Split from compile/mturk.py, which builds and checks the requirements that use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

__all__ = ["SystemQual", "SYSTEM_QUALS", "LOCALE_ID", "MAX_REQUIREMENTS", "MASTERS_LIVE_ID", "MASTERS_SANDBOX_ID"]

#: MTurk accepts at most this many QualificationRequirements on one HIT.
MAX_REQUIREMENTS = 10
LOCALE_ID = "00000000000000000071"
MASTERS_LIVE_ID = "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"
MASTERS_SANDBOX_ID = "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"


@dataclass(frozen=True)
class SystemQual:
    """An MTurk system qualification a preset name stands for."""

    name: str
    live_id: str
    sandbox_id: str
    kind: str  # percent | count | locale | masters | adult
    title: str
    legacy: bool = False
    fee_note: Optional[str] = None

    def type_id(self, sandbox: bool) -> str:
        return self.sandbox_id if sandbox else self.live_id


def _same(name: str, type_id: str, kind: str, title: str, **kw: Any) -> SystemQual:
    return SystemQual(name, type_id, type_id, kind, title, **kw)


SYSTEM_QUALS: Dict[str, SystemQual] = {
    q.name: q
    for q in (
        _same("approval_rate", "000000000000000000L0", "percent", "HIT approval rate (%)"),
        _same("approved_hits", "00000000000000000040", "count", "Number of HITs approved"),
        _same("locale", LOCALE_ID, "locale", "Location"),
        SystemQual(
            "masters",
            MASTERS_LIVE_ID,
            MASTERS_SANDBOX_ID,
            "masters",
            "Masters",
            fee_note="Masters add 5% to MTurk's commission",
        ),
        _same("adult", "00000000000000000060", "adult", "Adult content"),
        _same("abandonment_rate", "00000000000000000070", "percent", "HIT abandonment rate (%)", legacy=True),
        _same("return_rate", "000000000000000000E0", "percent", "HIT return rate (%)", legacy=True),
        _same("rejection_rate", "000000000000000000S0", "percent", "HIT rejection rate (%)", legacy=True),
        _same("submission_rate", "00000000000000000000", "percent", "HIT submission rate (%)", legacy=True),
    )
}
