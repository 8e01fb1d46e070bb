"""Launching a ``_quals`` run on Mephisto's ``prolific`` provider, gated at the source.

Mephisto 1.5.2's provider (``ProlificProvider.setup_resources_for_task_run``) turns local
requirements into a throwaway participant group "PG <timestamp>" of the participants it already
knows (none qualify: no group, the study opens to everyone) and sends requirements in the
deprecated eligibility-requirement form. For OUR runs only, this module replaces that:

1. **Before launch** (:func:`prepare_launch`, called by the mixin's ``init_mixin_config``, so
   before the server is deployed and the study created): every list of the run gets its
   participant group in the provider's workspace (:mod:`~mephisto_quals.providers.prolific.groups`),
   planned and synced from the local holders (only the difference is sent). Allowlists
   (``allowlists`` and ``exists`` requirements) feed ``participant_group_allowlist``; blocklists,
   ``block_qualifications``, ``block_onboarding_failed``, ``not exists`` requirements, Mephisto's
   ``block_qualification`` and the onboarding's ``-failed`` list (unless a retake delay lets failed
   workers back) feed ``participant_group_blocklist``. An allowlist whose group would be empty
   refuses the launch (:class:`ProlificLaunchRefused`) before anything is written to Prolific.
   The requirement filters of ``quals.prolific`` are checked against Prolific's ``GET filters/``
   (unknown ids refused, select labels mapped to choice ids).
2. **At launch** (:func:`install`, idempotent, wraps names Mephisto looks up at call time; no
   installed file is edited): ``ProlificProvider.setup_resources_for_task_run`` marks the run as
   ours while it runs; meanwhile ``ProlificProvider._get_qualified_workers`` returns ``[]`` (no
   "PG ..." group: our groups gate at the source) and ``prolific_utils.create_study`` sends the
   study with ``filters`` and an empty ``eligibility_requirements`` (entries Mephisto added itself,
   e.g. its blocked workers' ``CustomBlacklistEligibilityRequirement``, are converted to filters).
   Runs that are not ours go through Mephisto's functions untouched.

The local gate stays as the second line. Several allowlists become one allowlist filter with
all their groups (Prolific lists the study to members of any); the local gate still requires
each. Launching on the ``prolific`` provider is taken as consent to call the Prolific the
provider calls (its ``BASE_URL``), live or not, so the live rule's ``live_ok`` is set here.
Mephisto 1.1.1 has no Prolific provider: nothing here runs there.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.config import CONFIG_PATH
from mephisto_quals.compile.plan import QualsPlan, config_value, mephisto_appended
from mephisto_quals.compile.prolific import build_prolific_filters, from_state_entries, legacy_to_filter
from mephisto_quals.errors import Problem, QualsConfigError

if TYPE_CHECKING:
    from mephisto_quals.providers.prolific.client import ProlificClient
    from mephisto_quals.providers.prolific.groups import GroupRef

__all__ = ["PROVIDER", "ProlificLaunchRefused", "LaunchSpec", "launch_lists", "is_prolific_run", "provider_available",
           "prepare_launch", "prolific_entries", "install", "current_launch", "legacy_filters"]

logger = logging.getLogger("mephisto_quals")

PROVIDER = "prolific"
PROVIDER_MODULE = "mephisto.abstractions.providers.prolific.prolific_provider"
UTILS_MODULE = "mephisto.abstractions.providers.prolific.prolific_utils"
BASE_MODULE = "mephisto.abstractions.providers.prolific.api.base_api_resource"
#: Attribute of the shared state holding this launch's :class:`LaunchSpec`.
LAUNCH_ATTR = "mephisto_quals_prolific_launch"
_MARK = "__mephisto_quals_prolific__"
_current: contextvars.ContextVar[Optional[LaunchSpec]] = contextvars.ContextVar("mephisto_quals_prolific",
                                                                                   default=None)


class ProlificLaunchRefused(QualsConfigError):
    """A ``_quals`` run that must not open on Prolific (an allowlist nobody on Prolific holds, a filter
    Prolific does not list). Raised before the study is created."""


@dataclass
class LaunchSpec:
    """What a run's study gets on Prolific: the group filters, the requirement filters, and the groups."""

    task_run_id: str
    workspace: str
    workspace_id: str
    filters: List[Dict[str, Any]] = field(default_factory=list)
    allow: List[GroupRef] = field(default_factory=list)
    block: List[GroupRef] = field(default_factory=list)
    synced: Dict[str, str] = field(default_factory=dict)  # qualification -> sync report summary


def provider_available() -> bool:
    """Whether this Mephisto has the Prolific provider (1.2+; not 1.1.1)."""
    return importlib.util.find_spec("mephisto.abstractions.providers.prolific") is not None


def is_prolific_run(args: Any) -> bool:
    """Whether a run config launches on the ``prolific`` provider."""
    provider = args.get("provider") if hasattr(args, "get") else None
    return provider is not None and config_value(provider, "_provider_type") == PROVIDER


Named = List[Tuple[str, str]]


def launch_lists(plan: QualsPlan, blueprint_args: Mapping[str, Any]) -> Tuple[Named, Named]:
    """(allowlists, blocklists) of a run as (qualification, config path), each name once.

    An ``exists`` requirement that is not a guard is an allowlist; every ``not exists`` one a
    blocklist; then Mephisto's own appends. The task's onboarding ``-failed`` list is left to the
    local gate when a retake delay is set (a failed worker may come back).
    """
    allow: Dict[str, str] = {}
    block: Dict[str, str] = {}
    for r in plan.local:
        if r.local_only:
            continue
        if r.comparator == cmp.EXISTS:
            allow.setdefault(r.qualification, r.source)
        elif r.comparator == cmp.NOT_EXIST:
            block.setdefault(r.qualification, r.source)
    retake_failed = f"{plan.retake[0]}-failed" if plan.retake else None
    for q, src in mephisto_appended(blueprint_args):
        if q["qualification_name"] != retake_failed:
            block.setdefault(q["qualification_name"], src)
    return list(allow.items()), list(block.items())


def _base_url() -> str:
    """The Prolific Mephisto's own client calls (its module's ``BASE_URL``, read now)."""
    return str(importlib.import_module(BASE_MODULE).BASE_URL)


def _client(requester_name: str) -> ProlificClient:
    """Our client on Mephisto's Prolific, with the requester's key from ``~/.prolific/credentials``."""
    from mephisto_quals.providers.prolific.client import CREDENTIALS_PATH, ProlificClient, find_api_key

    key: Optional[str] = None
    path = Path.home() / CREDENTIALS_PATH
    try:
        key = json.loads(path.read_text()).get(requester_name)
    except (OSError, ValueError, AttributeError):
        key = None
    return ProlificClient.connect(_base_url(), find_api_key(key, requester_name), live_ok=True)


Filters = List[Dict[str, Any]]


def _resolve(filters: Filters, catalogue: List[Dict[str, Any]]) -> Tuple[Filters, List[Problem]]:
    """Check each filter's id against Prolific's list and map select labels to choice ids."""
    by_id = {f.get("filter_id"): f for f in catalogue}
    out, problems = [], []
    for i, f in enumerate(filters):
        path = f"{CONFIG_PATH}.prolific[{i}]"
        known = by_id.get(f["filter_id"])
        if known is None:
            problems.append(Problem(path, f["filter_id"], f"Prolific lists no such filter (GET filters/ has "
                                    f"{len(by_id)}: {', '.join(sorted(map(str, by_id))[:20])})"))
            continue
        choices = known.get("choices")
        if "selected_values" in f and isinstance(choices, dict) and choices:
            labels = {str(label).casefold(): cid for cid, label in choices.items()}
            mapped: List[str] = []
            bad: List[str] = []
            for v in f["selected_values"]:
                cid = v if v in choices else labels.get(v.casefold())
                (mapped if cid is not None else bad).append(cid if cid is not None else v)
            if bad:
                shown = ", ".join(f"{cid} ({label})" for cid, label in list(choices.items())[:30])
                problems.append(Problem(f"{path}.values", bad, f"not a choice of {f['filter_id']}; choices: {shown}"))
                continue
            f = {**f, "selected_values": list(dict.fromkeys(mapped))}
        out.append(f)
    return out, problems


def prepare_launch(task_run: Any, args: Any, shared_state: Any, plan: QualsPlan) -> Optional[LaunchSpec]:
    """Ensure and sync the run's groups, check its filters; the spec is put on the shared state.

    Returns None (and only logs) where this Mephisto has no Prolific provider. Raises
    :class:`ProlificLaunchRefused` before any write to Prolific when an allowlist's group would
    be empty or a filter is not one Prolific lists.
    """
    setattr(shared_state, LAUNCH_ATTR, None)
    if not provider_available():
        return None
    from mephisto.utils.qualifications import find_or_create_qualification

    from mephisto_quals.providers.prolific.groups import ensure_group
    from mephisto_quals.providers.prolific.sync import apply_sync, plan_sync

    install()
    db = task_run.db
    allow, block = launch_lists(plan, args.blueprint)
    for name, _ in allow + block:  # Mephisto's own appends may not exist yet; a list is read below
        find_or_create_qualification(db, name)
    client = _client(task_run.get_requester().requester_name)
    title = config_value(args.provider, "prolific_workspace_name") or "My Workspace"
    workspace = client.find_or_create_workspace(title)
    plans = {name: plan_sync(db, name, workspace=title, client=client, live_ok=True) for name, _ in allow + block}
    problems = []
    for name, src in allow:
        p = plans[name]
        if p.local_holders - len(p.skipped) == 0:
            problems.append(Problem(src, name, f"no Prolific participant holds '{name}', so its participant group "
                                    "would be empty and the study would have nobody to admit; grant it first "
                                    f"(mephisto-quals grant {name} PARTICIPANT_ID --provider prolific)"))
    filters, found = _resolve(list(plan.prolific), client.filters())
    problems += found
    nothing = not (allow or block or filters or plan.local or getattr(shared_state, "qualifications", None)
                   or config_value(args.provider, "prolific_eligibility_requirements"))
    if nothing:  # Mephisto's provider refuses this too, but only after the server is deployed
        problems.append(Problem(CONFIG_PATH, {}, "a Prolific run needs at least one requirement (Mephisto's "
                                "provider refuses an ungated study): add a list or a filter, e.g. "
                                "+quals=prolific_experienced"))
    if problems:
        raise ProlificLaunchRefused(problems)
    spec = LaunchSpec(str(task_run.db_id), title, workspace["id"])
    allow_names = {name for name, _ in allow}
    for name, _ in allow + block:
        report = apply_sync(db, plans[name], client=client, live_ok=True)
        ref = plans[name].group
        if not ref.exists:
            ensure_group(db, client, ref)  # an empty blocklist's group: grants reach it live later
        spec.synced[name] = report.summary()
        (spec.allow if name in allow_names else spec.block).append(ref)
    if spec.allow:
        spec.filters.append({"filter_id": "participant_group_allowlist",
                             "selected_values": [g.group_id for g in spec.allow]})
    if spec.block:
        spec.filters.append({"filter_id": "participant_group_blocklist",
                             "selected_values": [g.group_id for g in spec.block]})
    spec.filters += filters
    setattr(shared_state, LAUNCH_ATTR, spec)
    logger.info("mephisto-quals: Prolific study filters: %s", json.dumps(spec.filters))
    return spec


def current_launch() -> Optional[LaunchSpec]:
    """The spec of the ``_quals`` run whose provider set-up is running in this context, if any."""
    return _current.get()


def legacy_filters(entries: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Eligibility-requirement entries Mephisto put in the list (its blocked workers, a user's own) as filters."""
    converted = []
    for e in entries:
        item, problems = legacy_to_filter(dict(e), "prolific_specific_qualifications")
        if item is None:
            logger.warning("mephisto-quals: left out of the Prolific study (no filter form): %s (%s)", dict(e),
                           "; ".join(map(str, problems)))
            continue
        payloads, _, _ = build_prolific_filters([item], "prolific_specific_qualifications")
        converted += payloads
    return converted


def _merge(filters: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One filter per id: select values united, a repeated range keeps the first."""
    out: Dict[str, Dict[str, Any]] = {}
    for f in filters:
        seen = out.get(f["filter_id"])
        if seen is None:
            out[f["filter_id"]] = dict(f)
        elif "selected_values" in f and "selected_values" in seen:
            seen["selected_values"] = list(dict.fromkeys(seen["selected_values"] + f["selected_values"]))
    return list(out.values())


class _StudiesWithFilters:
    """Stand-in for a Mephisto client's ``Studies``: ``create`` also sends ``filters``."""

    def __init__(self, studies: Any, filters: List[Dict[str, Any]]) -> None:
        self._studies, self._filters = studies, filters

    def create(self, **data: Any) -> Any:
        data["filters"] = self._filters
        data["eligibility_requirements"] = []
        return self._studies.create(**data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._studies, name)


class _ClientWithFilters:
    """A Mephisto ProlificClient whose study creation carries our filters; all else delegated."""

    def __init__(self, client: Any, filters: List[Dict[str, Any]]) -> None:
        self._client = client
        self.Studies = _StudiesWithFilters(client.Studies, filters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _wrap_setup(original: Callable[..., Any]) -> Callable[..., Any]:
    def setup_resources_for_task_run(self: Any, task_run: Any, args: Any, shared_state: Any, server_url: str) -> Any:
        spec = getattr(shared_state, LAUNCH_ATTR, None)
        if not isinstance(spec, LaunchSpec) or spec.task_run_id != str(task_run.db_id):
            return original(self, task_run, args, shared_state, server_url)
        token = _current.set(spec)
        try:
            return original(self, task_run, args, shared_state, server_url)
        finally:
            _current.reset(token)

    return setup_resources_for_task_run


def _wrap_qualified(original: Callable[..., Any]) -> Callable[..., Any]:
    def _get_qualified_workers(self: Any, qualifications: Any, blocked: Any) -> Any:
        if _current.get() is not None:
            return []  # our groups gate at the source: no throwaway "PG <timestamp>" group
        return original(self, qualifications, blocked)

    return _get_qualified_workers


def _wrap_create(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_study(client: Any, task_run_config: Any, prolific_project_id: str,
                     eligibility_requirements: Optional[List[Dict[str, Any]]] = None, *args: Any, **kwargs: Any) -> Any:
        spec = _current.get()
        if spec is None:
            return original(client, task_run_config, prolific_project_id, eligibility_requirements, *args, **kwargs)
        _, others = from_state_entries(list(eligibility_requirements or []))  # ours are spec.filters already
        filters = _merge(spec.filters + legacy_filters(others))
        return original(_ClientWithFilters(client, filters), task_run_config, prolific_project_id, [], *args, **kwargs)

    return create_study


def _patch(owner: Any, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    current = getattr(owner, name)
    if getattr(current, _MARK, False):
        return
    wrapped = wrap(current)
    setattr(wrapped, _MARK, True)
    setattr(owner, name, wrapped)


def install() -> bool:
    """Wrap Mephisto's Prolific provider for ``_quals`` runs (idempotent); False where it does not exist."""
    if not provider_available():
        return False
    provider_module = importlib.import_module(PROVIDER_MODULE)
    utils = importlib.import_module(UTILS_MODULE)
    cls = provider_module.ProlificProvider
    _patch(cls, "setup_resources_for_task_run", _wrap_setup)
    _patch(cls, "_get_qualified_workers", _wrap_qualified)
    _patch(utils, "create_study", _wrap_create)
    return True


def prolific_entries(task_run: Any, args: Any, shared_state: Any, plan: QualsPlan) -> List[Dict[str, Any]]:
    """What the mixin puts in ``prolific_specific_qualifications``: on a ``prolific`` run the study's
    filters after :func:`prepare_launch` (groups synced), elsewhere the requirement filters as checked."""
    from mephisto_quals.compile.prolific import to_state_entries

    if not is_prolific_run(args):
        if plan.prolific:
            logger.info("mephisto-quals: %d Prolific filter(s) checked, not sent: this run's provider is not "
                        "prolific", len(plan.prolific))
        return to_state_entries(plan.prolific)
    spec = prepare_launch(task_run, args, shared_state, plan)
    if spec is None:
        logger.warning("mephisto-quals: this Mephisto has no Prolific provider (1.2+): quals.prolific checked, "
                       "not launched")
        return to_state_entries(plan.prolific)
    return to_state_entries(spec.filters)
