"""mephisto-quals: qualification control for Mephisto tasks, configured from Hydra YAML.

Public names load lazily, so ``import mephisto_quals`` (and the CLI's ``--help``) does not
import Mephisto, which writes ``~/.mephisto`` on import. Task scripts get the
``<type>_quals`` blueprints through the Hydra plugin; a Python script that loads runs of
those types calls :func:`register_stock_blueprints` (or uses any name below) first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

__version__ = "0.1.0"

_EXPORTS: Dict[str, str] = {
    "QUALS_BLUEPRINTS": "mephisto_quals.blueprints",
    "register_stock_blueprints": "mephisto_quals.blueprints",
    "with_quals": "mephisto_quals.blueprints",
    "MTurkQualsConfig": "mephisto_quals.config",
    "QualsArgs": "mephisto_quals.config",
    "QualsConfig": "mephisto_quals.config",
    "explain": "mephisto_quals.eligibility",
    "forecast": "mephisto_quals.eligibility",
    "Problem": "mephisto_quals.errors",
    "QualsConfigError": "mephisto_quals.errors",
    "QualsError": "mephisto_quals.errors",
    "RequirementResult": "mephisto_quals.gate",
    "check_worker": "mephisto_quals.gate",
    "BulkReport": "mephisto_quals.grants",
    "UnknownQualificationError": "mephisto_quals.grants",
    "WorkerOutcome": "mephisto_quals.grants",
    "grant": "mephisto_quals.grants",
    "prune": "mephisto_quals.grants",
    "reset_onboarding": "mephisto_quals.grants",
    "revoke": "mephisto_quals.grants",
    "set_values": "mephisto_quals.grants",
    "QualsRequired": "mephisto_quals.mixin",
    "ensure_qualifications": "mephisto_quals.mixin",
    "SYSTEM_QUALS": "mephisto_quals.mturk",
    "decide": "mephisto_quals.mturk_requests",
    "list_requests": "mephisto_quals.mturk_requests",
    "apply_sync": "mephisto_quals.mturk_sync",
    "grant_on_mturk": "mephisto_quals.mturk_sync",
    "plan_sync": "mephisto_quals.mturk_sync",
    "revoke_on_mturk": "mephisto_quals.mturk_sync",
    "ensure_types": "mephisto_quals.mturk_types",
    "load_types": "mephisto_quals.mturk_types",
    "QualsPlan": "mephisto_quals.plan",
    "plan_for_run": "mephisto_quals.plan",
    "plan_from_quals": "mephisto_quals.plan",
    "prolific_requirements": "mephisto_quals.prolific_lists",
    "history": "mephisto_quals.queries",
    "holders": "mephisto_quals.queries",
    "list_qualifications": "mephisto_quals.queries",
    "Requirement": "mephisto_quals.requirements",
    "apply_review": "mephisto_quals.review",
    "load_rules": "mephisto_quals.review",
    "plan_review": "mephisto_quals.review",
    "QualsSharedState": "mephisto_quals.shared_state",
}

__all__ = [
    "BulkReport",
    "MTurkQualsConfig",
    "Problem",
    "QUALS_BLUEPRINTS",
    "QualsArgs",
    "QualsConfig",
    "QualsConfigError",
    "QualsError",
    "QualsPlan",
    "QualsRequired",
    "QualsSharedState",
    "Requirement",
    "RequirementResult",
    "SYSTEM_QUALS",
    "UnknownQualificationError",
    "WorkerOutcome",
    "apply_review",
    "apply_sync",
    "check_worker",
    "decide",
    "ensure_qualifications",
    "ensure_types",
    "explain",
    "forecast",
    "grant",
    "grant_on_mturk",
    "history",
    "holders",
    "list_qualifications",
    "list_requests",
    "load_rules",
    "load_types",
    "plan_for_run",
    "plan_from_quals",
    "plan_review",
    "plan_sync",
    "prolific_requirements",
    "prune",
    "register_stock_blueprints",
    "reset_onboarding",
    "revoke",
    "revoke_on_mturk",
    "set_values",
    "with_quals",
]

if TYPE_CHECKING:
    from mephisto_quals.blueprints import QUALS_BLUEPRINTS, register_stock_blueprints, with_quals
    from mephisto_quals.config import MTurkQualsConfig, QualsArgs, QualsConfig
    from mephisto_quals.eligibility import explain, forecast
    from mephisto_quals.errors import Problem, QualsConfigError, QualsError
    from mephisto_quals.gate import RequirementResult, check_worker
    from mephisto_quals.grants import BulkReport, UnknownQualificationError, WorkerOutcome, grant, prune, reset_onboarding, revoke, set_values
    from mephisto_quals.mixin import QualsRequired, ensure_qualifications
    from mephisto_quals.mturk import SYSTEM_QUALS
    from mephisto_quals.mturk_requests import decide, list_requests
    from mephisto_quals.mturk_sync import apply_sync, grant_on_mturk, plan_sync, revoke_on_mturk
    from mephisto_quals.mturk_types import ensure_types, load_types
    from mephisto_quals.plan import QualsPlan, plan_for_run, plan_from_quals
    from mephisto_quals.prolific_lists import prolific_requirements
    from mephisto_quals.queries import history, holders, list_qualifications
    from mephisto_quals.requirements import Requirement
    from mephisto_quals.review import apply_review, load_rules, plan_review
    from mephisto_quals.shared_state import QualsSharedState



def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mephisto_quals' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS))
