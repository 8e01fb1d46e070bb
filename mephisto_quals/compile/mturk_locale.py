"""MTurk Locale values: parse ``US`` / ``US-NY`` and check them against ISO 3166 (via pycountry).

Split from compile/mturk.py so that module stays small; both the ``locale`` preset and raw
QualificationRequirement dicts use these checks.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from mephisto_quals.errors import Problem

__all__ = ["MAX_LOCALE_VALUES", "locale_problems", "parse_locale"]

#: MTurk accepts at most this many LocaleValues with In / NotIn.
MAX_LOCALE_VALUES = 30


def locale_problems(loc: Mapping[str, Any], path: str) -> List[Problem]:
    """Problems of one MTurk Locale mapping: Country must be ISO 3166-1 alpha-2, Subdivision ISO 3166-2."""
    import pycountry

    country = loc.get("Country")
    known = (
        isinstance(country, str)
        and len(country) == 2
        and country.isupper()
        and pycountry.countries.get(alpha_2=country)
    )
    if not known:
        return [Problem(f"{path}.Country", country, "use an ISO 3166-1 alpha-2 country code such as US, GB or IN")]
    sub = loc.get("Subdivision")
    # pycountry matches codes case-insensitively; MTurk wants the code as ISO writes it (NY).
    if sub is not None and (
        not isinstance(sub, str) or sub != sub.upper() or pycountry.subdivisions.get(code=f"{country}-{sub}") is None
    ):
        return [Problem(f"{path}.Subdivision", sub, f"use an ISO 3166-2 subdivision of {country}, e.g. NY for US-NY")]
    return []


def parse_locale(value: Any, path: str) -> Tuple[Optional[Dict[str, str]], List[Problem]]:
    """``US`` or ``US-NY`` (or a {Country, Subdivision} mapping) to an MTurk Locale."""
    if isinstance(value, Mapping):
        loc = {k: value[k] for k in value}
    elif isinstance(value, str):
        country, _, sub = value.strip().partition("-")
        loc = {"Country": country}
        if sub:
            loc["Subdivision"] = sub
    else:
        return None, [Problem(path, value, "use a country code such as US or a subdivision such as US-NY")]
    found = locale_problems(loc, path)
    if found and isinstance(value, str):
        hint = "use an ISO 3166-1 alpha-2 country code (US, GB, IN) or an ISO 3166-2 subdivision (US-NY)"
        found = [Problem(path, value, hint)]
    return (None if found else loc), found
