"""mephisto-quals: qualification control for Mephisto tasks, configured from Hydra YAML.

Importing the package registers the ``<type>_quals`` blueprints (``static_task_quals``,
``mock_quals``, ...) with Mephisto; task scripts get them through the Hydra plugin without
importing anything.
"""

from mephisto_quals.blueprints import QUALS_BLUEPRINTS, register_stock_blueprints, with_quals
from mephisto_quals.config import MTurkQualsConfig, QualsArgs, QualsConfig
from mephisto_quals.errors import Problem, QualsConfigError, QualsError
from mephisto_quals.gate import RequirementResult, check_worker
from mephisto_quals.mixin import QualsRequired, ensure_qualifications
from mephisto_quals.mturk import SYSTEM_QUALS
from mephisto_quals.plan import QualsPlan, plan_for_run, plan_from_quals
from mephisto_quals.requirements import Requirement
from mephisto_quals.shared_state import QualsSharedState

__version__ = "0.1.0"

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
