"""The workers of one run, by category (whose expected verdict flips at which command), and the
order they arrive in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mephisto_quals.devtools.live_load.records import ALLOW, BLOCK, LoadConfig

#: Category -> the step at which its members' expected verdict flips (None: never), and their
#: verdict before it.
CATEGORIES: Dict[str, Tuple[Optional[str], bool]] = {
    "stable": (None, True),  # allowlisted throughout
    "outsider": (None, False),  # never allowlisted
    "blocked": (None, False),  # allowlisted and blocklisted throughout
    "imported": ("import", False),  # in the CSV: admitted once the import commits
    "revoked": ("revoke", True),  # pre-granted, in the revoke file
    "rejected": ("review", True),  # allowlisted, rejected in the earlier run: blocklisted by review
    "approved": ("review", False),  # approved in the earlier run: allowlisted by review
}
#: The order arrivals cycle through the categories (flipping ones more often).
CYCLE = ("imported", "revoked", "stable", "rejected", "imported", "outsider", "revoked", "approved", "blocked")


def _names(prefix: str, n: int) -> List[str]:
    return [f"{prefix}{i:06d}" for i in range(n)]


@dataclass
class Population:
    stable: List[str]
    outsider: List[str]
    blocked: List[str]
    imported: List[str]
    revoked: List[str]
    rejected: List[str]
    approved: List[str]

    @classmethod
    def of(cls, config: LoadConfig) -> Population:
        half = config.earlier_workers // 2
        return cls(_names("st", config.stable), _names("out", config.stable), _names("bl", 50),
                   _names("imp", config.grants), _names("rv", config.revokes), _names("rj", half),
                   _names("ap", config.earlier_workers - half))

    def expected_counts(self, steps: Sequence[str]) -> Dict[str, int]:
        allow = len(self.stable) + len(self.blocked) + len(self.rejected) + len(self.revoked)
        block = len(self.blocked)
        if "import" in steps:
            allow += len(self.imported)
        if "revoke" in steps:
            allow -= len(self.revoked)
        if "review" in steps:
            allow += len(self.approved)
            block += len(self.rejected)
        if "hold" in steps:
            allow += 1  # the control's one grant
        return {ALLOW: allow, BLOCK: block}


def _interleave(names: Sequence[str]) -> Iterator[str]:
    """Head, tail, second, second to last, ...: both ends of a list that commits in order."""
    lo, hi = 0, len(names) - 1
    while lo <= hi:
        yield names[lo]
        if hi != lo:
            yield names[hi]
        lo, hi = lo + 1, hi - 1


def arrival_plan(pop: Population) -> Iterator[Tuple[str, str]]:
    """(category, worker) for each arrival, cycling through the categories until all run out."""
    sources = {c: _interleave(getattr(pop, c)) for c in CATEGORIES}
    while sources:
        for category in CYCLE:
            if category not in sources:
                continue
            name = next(sources[category], None)
            if name is None:
                del sources[category]
                continue
            yield category, name
