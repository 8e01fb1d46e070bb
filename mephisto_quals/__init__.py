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
    "Problem": "mephisto_quals.errors",
    "QualsConfigError": "mephisto_quals.errors",
    "QualsError": "mephisto_quals.errors",
    "RequirementResult": "mephisto_quals.gate",
    "check_worker": "mephisto_quals.gate",
    "QualsRequired": "mephisto_quals.mixin",
    "ensure_qualifications": "mephisto_quals.mixin",
    "SYSTEM_QUALS": "mephisto_quals.mturk",
    "QualsPlan": "mephisto_quals.plan",
    "plan_for_run": "mephisto_quals.plan",
    "plan_from_quals": "mephisto_quals.plan",
    "Requirement": "mephisto_quals.requirements",
    "QualsSharedState": "mephisto_quals.shared_state",
}

__all__ = [
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
    "check_worker",
    "ensure_qualifications",
    "plan_for_run",
    "plan_from_quals",
    "register_stock_blueprints",
    "with_quals",
]

if TYPE_CHECKING:
    from mephisto_quals.blueprints import QUALS_BLUEPRINTS, register_stock_blueprints, with_quals
    from mephisto_quals.config import MTurkQualsConfig, QualsArgs, QualsConfig
    from mephisto_quals.errors import Problem, QualsConfigError, QualsError
    from mephisto_quals.gate import RequirementResult, check_worker
    from mephisto_quals.mixin import QualsRequired, ensure_qualifications
    from mephisto_quals.mturk import SYSTEM_QUALS
    from mephisto_quals.plan import QualsPlan, plan_for_run, plan_from_quals
    from mephisto_quals.requirements import Requirement
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
