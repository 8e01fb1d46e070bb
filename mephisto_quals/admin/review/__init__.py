"""Review-driven grants: rules in YAML turn a task run's review outcomes into qualifications.

After units are reviewed in Mephisto (``Agent.approve_work`` / ``reject_work`` /
``soft_reject_work``, e.g. through ``mephisto review`` or ``examine_utils``), rules such as::

    rules:
      - when: approved
        grant: trusted_annotators
      - when: rejected
        score: {qualification: annotator_score, add: -5}
      - when: rejected
        revoke: trusted_annotators

are planned against the units of a task's runs (:func:`plan_review`) and applied through the
grants API (:func:`apply_review`), so rows, audit (``source="review"``) and transactions are
exactly those of :func:`mephisto_quals.admin.grants.set_values` / :func:`~mephisto_quals.admin.grants.revoke`.

How rules combine, per qualification and worker:

* ``score`` rules add up: the sum of ``add`` over every matching rule and every reviewed unit
  of the worker is applied to their current (live) value, or to ``initial`` (default 0) when
  they hold none. A qualification is either a score or granted/revoked: mixing ``score``
  with ``grant``/``revoke`` for one qualification is a config error.
* ``grant`` / ``revoke`` rules that disagree for the same worker and qualification (say
  approved -> grant X and rejected -> revoke X, for a worker with both kinds of units)
  resolve by **file order: the later rule wins**. Put the revoke after the grant (as above)
  and a single rejected unit takes the qualification away. Each such case is listed in
  :attr:`ReviewPlan.conflicts`.

Each reviewed unit counts once per qualification. :func:`apply_review` makes every change
of a plan and records the (unit, qualification) pairs it counted in
``mephisto_quals_review_applied``, all in one write transaction; later plans and applies
skip those pairs (``ReviewPlan.already_applied``), so applying a plan twice, or reviewing the
same run again later, changes nothing (no score is added twice, and a grant's ``expires_in``
counts from the first apply). The apply re-reads the record and the current values inside
its transaction, so two applies running at once (say of two runs raising the same worker's
score) take turns and both count, and a crash leaves nothing half-applied.

Modules: :mod:`.rules` (the YAML rules), :mod:`.plan` (what they would do),
:mod:`.apply` (doing it).
"""

from mephisto_quals.admin.review.apply import SOURCE, apply_review
from mephisto_quals.admin.review.plan import (
    Contribution,
    ReviewChange,
    ReviewConflict,
    ReviewPlan,
    UnknownRunError,
    plan_review,
)
from mephisto_quals.admin.review.rules import REVIEW_STATUSES, ReviewRule, load_rules
from mephisto_quals.store.review_applied import TABLE as APPLIED_TABLE

__all__ = [
    "ReviewRule",
    "ReviewChange",
    "ReviewConflict",
    "ReviewPlan",
    "Contribution",
    "UnknownRunError",
    "REVIEW_STATUSES",
    "APPLIED_TABLE",
    "SOURCE",
    "load_rules",
    "plan_review",
    "apply_review",
]
