"""mephisto-quals: qualification control for Mephisto tasks, configured from Hydra YAML.

Public names load lazily, so ``import mephisto_quals`` (and the CLI's ``--help``) does not
import Mephisto, which writes ``~/.mephisto`` on import. Task scripts get the
``<type>_quals`` blueprints through the Hydra plugin; a Python script that loads runs of
those types calls :func:`register_stock_blueprints` (or uses any name below) first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

__version__ = "0.2.0"

_EXPORTS: Dict[str, str] = {
    "QUALS_BLUEPRINTS": "mephisto_quals.integration.blueprints",
    "register_stock_blueprints": "mephisto_quals.integration.blueprints",
    "with_quals": "mephisto_quals.integration.blueprints",
    "MTurkQualsConfig": "mephisto_quals.compile.config",
    "QualsArgs": "mephisto_quals.compile.config",
    "QualsConfig": "mephisto_quals.compile.config",
    "explain": "mephisto_quals.admin.eligibility",
    "forecast": "mephisto_quals.admin.eligibility",
    "Problem": "mephisto_quals.errors",
    "QualsConfigError": "mephisto_quals.errors",
    "QualsError": "mephisto_quals.errors",
    "RequirementResult": "mephisto_quals.integration.gate",
    "check_worker": "mephisto_quals.integration.gate",
    "BulkReport": "mephisto_quals.admin.grants",
    "UnknownQualificationError": "mephisto_quals.admin.grants",
    "WorkerOutcome": "mephisto_quals.admin.grants",
    "grant": "mephisto_quals.admin.grants",
    "prune": "mephisto_quals.admin.grants",
    "reset_onboarding": "mephisto_quals.admin.grants",
    "revoke": "mephisto_quals.admin.grants",
    "set_values": "mephisto_quals.admin.grants",
    "QualsRequired": "mephisto_quals.integration.mixin",
    "ensure_qualifications": "mephisto_quals.integration.mixin",
    "SYSTEM_QUALS": "mephisto_quals.compile.mturk",
    "decide": "mephisto_quals.providers.mturk.requests",
    "list_requests": "mephisto_quals.providers.mturk.requests",
    "apply_sync": "mephisto_quals.providers.mturk.sync",
    "grant_on_mturk": "mephisto_quals.providers.mturk.direct",
    "plan_sync": "mephisto_quals.providers.mturk.sync",
    "revoke_on_mturk": "mephisto_quals.providers.mturk.direct",
    "ensure_types": "mephisto_quals.providers.mturk.types",
    "load_types": "mephisto_quals.providers.mturk.types",
    "QualsPlan": "mephisto_quals.compile.plan",
    "plan_for_run": "mephisto_quals.compile.plan",
    "plan_from_quals": "mephisto_quals.compile.plan",
    "prolific_requirements": "mephisto_quals.providers.prolific.lists",
    "history": "mephisto_quals.admin.queries",
    "holders": "mephisto_quals.admin.queries",
    "list_qualifications": "mephisto_quals.admin.queries",
    "Requirement": "mephisto_quals.compile.requirements",
    "apply_review": "mephisto_quals.admin.review",
    "load_rules": "mephisto_quals.admin.review",
    "plan_review": "mephisto_quals.admin.review",
    "QualsSharedState": "mephisto_quals.integration.shared_state",
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
    from mephisto_quals.admin.eligibility import explain, forecast
    from mephisto_quals.admin.grants import (
        BulkReport,
        UnknownQualificationError,
        WorkerOutcome,
        grant,
        prune,
        reset_onboarding,
        revoke,
        set_values,
    )
    from mephisto_quals.admin.queries import history, holders, list_qualifications
    from mephisto_quals.admin.review import apply_review, load_rules, plan_review
    from mephisto_quals.compile.config import MTurkQualsConfig, QualsArgs, QualsConfig
    from mephisto_quals.compile.mturk import SYSTEM_QUALS
    from mephisto_quals.compile.plan import QualsPlan, plan_for_run, plan_from_quals
    from mephisto_quals.compile.requirements import Requirement
    from mephisto_quals.errors import Problem, QualsConfigError, QualsError
    from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS, register_stock_blueprints, with_quals
    from mephisto_quals.integration.gate import RequirementResult, check_worker
    from mephisto_quals.integration.mixin import QualsRequired, ensure_qualifications
    from mephisto_quals.integration.shared_state import QualsSharedState
    from mephisto_quals.providers.mturk.direct import grant_on_mturk, revoke_on_mturk
    from mephisto_quals.providers.mturk.requests import decide, list_requests
    from mephisto_quals.providers.mturk.sync import apply_sync, plan_sync
    from mephisto_quals.providers.mturk.types import ensure_types, load_types
    from mephisto_quals.providers.prolific.lists import prolific_requirements


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mephisto_quals' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS))
