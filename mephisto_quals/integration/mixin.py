"""The blueprint mixin: validates the ``quals`` node early and puts its requirements in place."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, List

from mephisto.abstractions.blueprint import BlueprintMixin

from mephisto_quals.compile.config import QualsArgs
from mephisto_quals.compile.plan import QualsPlan, mephisto_appended, plan_for_run
from mephisto_quals.integration.gate import install_gate
from mephisto_quals.integration.granted_reads import install_granted_reads
from mephisto_quals.integration.shared_state import QualsSharedState, apply_plan, user_entries
from mephisto_quals.integration.worker_records import install_worker_records
from mephisto_quals.store.mephisto import find_granted

if TYPE_CHECKING:
    from mephisto.abstractions.blueprint import SharedTaskState
    from mephisto.abstractions.database import MephistoDB
    from mephisto.data_model.task_run import TaskRun
    from omegaconf import DictConfig

__all__ = ["QualsRequired", "ensure_qualifications", "holder_count"]

logger = logging.getLogger("mephisto_quals")


def ensure_qualifications(db: MephistoDB, names: List[str]) -> Dict[str, str]:
    """Create each named qualification that is missing; return name -> qualification id.

    Mephisto 1.1.1 skips a requirement whose qualification does not exist, which would let
    everyone past an allowlist, so every name a task refers to must exist before launch.
    """
    from mephisto.utils.qualifications import find_or_create_qualification

    return {name: find_or_create_qualification(db, name) for name in names}


def holder_count(db: MephistoDB, qualification_id: str) -> int:
    """How many workers hold a qualification (any value)."""
    return len(find_granted(db, qualification_id=qualification_id))


def _plan(args: DictConfig, shared_state: SharedTaskState) -> QualsPlan:
    quals, mturk, _ = user_entries(shared_state)
    return plan_for_run(args, existing_qualifications=quals, existing_mturk=mturk)


class QualsRequired(BlueprintMixin):
    """Adds onboarding gates, allow/block lists, value and provider requirements to a blueprint.

    Compose it with ``mephisto_quals.with_quals(MyBlueprint)``, or use the registered
    ``<type>_quals`` blueprints (``static_task_quals``, ``mock_quals``, ...).
    """

    ArgsMixin = QualsArgs
    SharedStateMixin = QualsSharedState

    def init_mixin_config(
        self, task_run: TaskRun, args: DictConfig, shared_state: SharedTaskState
    ) -> None:
        """Create the qualifications, warn about empty allowlists, apply the plan once, and
        install the gate (which only takes over lists that carry this plan's marked dicts) and
        the index-friendly grant reads (same answers as Mephisto's, see ``granted_reads``)."""
        plan = _plan(args, shared_state)
        from mephisto_quals.store import Session

        Session.open(task_run.db).close()  # our tables (grant expiry, audit) exist before the gate reads them
        ids = ensure_qualifications(task_run.db, plan.qualification_names())
        for warning in plan.warnings:
            logger.warning(warning)
        from mephisto_quals.admin.eligibility import cost_notes

        for note in cost_notes(plan):
            logger.warning("mephisto-quals: cost: %s", note)
        for name in plan.allowlist_names():
            if holder_count(task_run.db, ids[name]) == 0:
                logger.warning(
                    "mephisto-quals: nobody holds '%s', which this task requires: no worker can "
                    "work on it until someone is granted '%s'",
                    name,
                    name,
                )
        from mephisto_quals.integration.prolific_launch import prolific_entries

        apply_plan(
            shared_state,
            plan.local_dicts(),
            plan.mturk,
            prolific_entries(task_run, args, shared_state, plan),
            [q for q, _ in mephisto_appended(args.blueprint)],
        )
        self.quals_plan = plan
        install_gate()
        install_granted_reads()
        install_worker_records()
        logger.info(
            "mephisto-quals: %d local requirement(s), %d MTurk, %d Prolific",
            len(plan.local),
            len(plan.mturk),
            len(plan.prolific),
        )

    @classmethod
    def assert_mixin_args(cls, args: DictConfig, shared_state: SharedTaskState) -> None:
        """Validate the whole ``quals`` node; raises QualsConfigError before anything launches."""
        _plan(args, shared_state)

    @classmethod
    def get_mixin_qualifications(
        cls, args: DictConfig, shared_state: SharedTaskState
    ) -> List[Dict[str, Any]]:
        """The local requirements as Mephisto qualification dicts (unused by Mephisto 1.1.1)."""
        return _plan(args, shared_state).local_dicts()
