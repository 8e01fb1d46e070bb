"""One launch's qualification plan: the task config compiled into requirement values.

``plan_for_run`` is pure (no database, no network): the mixin calls it to validate before
anything is created, and again to apply the same plan when the blueprint is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.config import CONFIG_PATH, QualsConfig
from mephisto_quals.compile.durations import parse_duration
from mephisto_quals.compile.mturk import (
    build_mturk_requirements,
    count_problems,
    is_mturk_provider,
    is_sandbox_provider,
)
from mephisto_quals.compile.prolific import build_prolific_filters
from mephisto_quals.compile.requirements import Requirement, compile_local, failed_name, find_conflicts
from mephisto_quals.errors import Problem, QualsConfigError

#: Key on a qualification dict that asks the gate to clear a failed onboarding after a delay.
RETAKE_KEY = "mephisto_quals_retake"
#: Key the mixin sets (to True) on every qualification dict it puts on a run's shared state:
#: a run whose list carries one is gated by mephisto-quals, any other run by Mephisto itself.
GATE_KEY = "mephisto_quals"

__all__ = [
    "QualsPlan",
    "plan_for_run",
    "plan_from_quals",
    "mephisto_appended",
    "gate_requirements",
    "config_value",
    "RETAKE_KEY",
    "GATE_KEY",
]


@dataclass
class QualsPlan:
    """Everything the config asks for, as plain values ready for Mephisto and the providers."""

    local: List[Requirement] = field(default_factory=list)
    mturk: List[Dict[str, Any]] = field(default_factory=list)
    prolific: List[Dict[str, Any]] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    #: (onboarding qualification, seconds) when a failed onboarding may be retaken.
    retake: Optional[Tuple[str, float]] = None

    def local_dicts(self) -> List[Dict[str, Any]]:
        """Mephisto qualification dicts, in gate order (a retake marker first, when set)."""
        dicts = [r.to_mephisto_dict() for r in self.local]
        if self.retake is not None:
            onboarding, seconds = self.retake
            marker = Requirement(
                failed_name(onboarding), cmp.NOT_EXIST, None, "", "", local_only=True
            ).to_mephisto_dict()
            marker[RETAKE_KEY] = {"onboarding": onboarding, "after": seconds}
            dicts.insert(0, marker)
        return dicts

    def qualification_names(self) -> List[str]:
        """Local qualification names, each once, that must exist in the DB before launch."""
        return list(dict.fromkeys(r.qualification for r in self.local))

    def allowlist_names(self) -> List[str]:
        """Names a worker must hold (nobody holding one means nobody can work)."""
        return list(dict.fromkeys(r.qualification for r in self.local if r.comparator == cmp.EXISTS))


def _container(node: Any, path: str) -> Tuple[Dict[str, Any], List[Problem]]:
    """The ``quals`` node as plain Python, with interpolations resolved."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if node is None:
        return {}, []
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return dataclasses.asdict(node), []
    if isinstance(node, DictConfig):
        try:
            return OmegaConf.to_container(node, resolve=True, throw_on_missing=True), []  # type: ignore[return-value]
        except OmegaConfBaseException as e:
            return {}, [_unreadable(node, e, path)]
    if isinstance(node, Mapping):
        return dict(node), []
    return {}, [Problem(path, node, "give a mapping with the fields of QualsConfig")]


def _unreadable(node: Any, error: Exception, path: str) -> Problem:
    """The field of ``node`` that could not be resolved, named from ``path`` whatever the root.

    An onboarding preset used without ``onboarding_from`` is the usual cause: its
    ``${...onboarding_from}`` cannot fill a list of names with None, so say what to set.
    """
    key = str(getattr(error, "full_key", None) or "")
    try:
        base = node._get_full_key(None) or ""  # where the node sits in its own config tree
    except Exception:
        base = ""
    rel = key[len(base) :].lstrip(".") if base and key.startswith(base) else key
    field_path = f"{path}.{rel}" if rel else path
    message = getattr(error, "msg", None) or str(error)
    if "onboarding_from" in message and config_value(node, "onboarding_from") is None:
        return Problem(
            f"{path}.onboarding_from",
            None,
            f"set {path}.onboarding_from=NAME: the passed_onboarding and never_failed_onboarding "
            f"presets fill {field_path} from it",
        )
    return Problem(field_path, "???", f"could not read the value: {message}")


def mephisto_appended(blueprint_args: Mapping[str, Any]) -> List[Tuple[Dict[str, Any], str]]:
    """The requirements Mephisto's Operator appends itself after the blueprint is built.

    Each comes with the config path that causes it, for error messages.
    """
    out = []
    for key, name in (
        ("block_qualification", config_value(blueprint_args, "block_qualification")),
        ("onboarding_qualification", config_value(blueprint_args, "onboarding_qualification")),
    ):
        if name:
            qual = failed_name(name) if key == "onboarding_qualification" else name
            out.append(
                (
                    {
                        "qualification_name": qual,
                        "comparator": cmp.NOT_EXIST,
                        "value": None,
                        "applicable_providers": None,
                    },
                    f"mephisto.blueprint.{key}",
                )
            )
    return out


def gate_requirements(plan: QualsPlan, blueprint_args: Mapping[str, Any]) -> List[Requirement]:
    """Everything Mephisto's gate checks for a launch: the plan's requirements, then its own.

    Mephisto appends ``block_qualification`` and the onboarding's failed list after ours.
    """
    why = {
        "mephisto.blueprint.block_qualification": "soft-blocked by block_qualification '{}'",
        "mephisto.blueprint.onboarding_qualification": "failed this task's onboarding ('{}')",
    }
    own = [
        Requirement(q["qualification_name"], q["comparator"], None, src, why[src].format(q["qualification_name"]))
        for q, src in mephisto_appended(blueprint_args)
    ]
    return list(plan.local) + own


def config_value(node: Any, key: str) -> Any:
    """Read a possibly missing ('???') config value as None."""
    try:
        value = node.get(key, None)
    except Exception:  # omegaconf MissingMandatoryValue on '???'
        return None
    return None if value == "???" else value


def plan_from_quals(
    quals: Any,
    provider_type: Optional[str] = None,
    blueprint_args: Optional[Mapping[str, Any]] = None,
    existing_qualifications: Sequence[Mapping[str, Any]] = (),
    existing_mturk: Sequence[Mapping[str, Any]] = (),
    path: str = CONFIG_PATH,
) -> QualsPlan:
    """Compile a ``quals`` node (DictConfig, dict or :class:`QualsConfig`) into a plan.

    Raises :class:`QualsConfigError` listing every problem; nothing is touched on failure.
    """
    cfg, problems = _container(quals if quals is not None else QualsConfig(), path)
    known = {f.name for f in dataclasses.fields(QualsConfig)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        problems.append(Problem(path, unknown, f"unknown fields; valid fields are {', '.join(sorted(known))}"))
    local, p = compile_local(cfg, path)
    problems += p
    appended = mephisto_appended(blueprint_args or {})
    problems += find_conflicts(local, [(q["qualification_name"], src) for q, src in appended])

    sandbox = is_sandbox_provider(provider_type) if is_mturk_provider(provider_type) else None
    mturk_cfg = cfg.get("mturk") or {}
    if not isinstance(mturk_cfg, Mapping):
        problems.append(Problem(f"{path}.mturk", mturk_cfg, "give a mapping with system, raw, actions_guarded"))
        mturk_cfg = {}
    mturk, p, warnings = build_mturk_requirements(mturk_cfg, f"{path}.mturk", sandbox)
    problems += p
    if is_mturk_provider(provider_type):
        for r in local:
            if r.comparator in cmp.LIST_COMPARATORS and isinstance(r.value, tuple) and len(r.value) > 15:
                too_many = "MTurk takes at most 15 values with in / not in"
                problems.append(Problem(f"{r.source}.value", list(r.value), too_many))
        to_mturk = [q for q in existing_qualifications if _for_mturk(q)]
        to_mturk += [r.to_mephisto_dict() for r in local if not r.local_only]
        to_mturk += [q for q, _ in appended]
        problems += count_problems(_distinct(to_mturk), [*existing_mturk, *mturk], bool(sandbox), f"{path}.mturk")
    prolific, p, prolific_warnings = build_prolific_filters(cfg.get("prolific"), f"{path}.prolific")
    problems += p
    warnings += prolific_warnings
    retake, p = _retake(cfg.get("onboarding_retake_delay"), blueprint_args or {}, path)
    problems += p
    if problems:
        raise QualsConfigError(problems)
    return QualsPlan(local=local, mturk=mturk, prolific=prolific, warnings=warnings, retake=retake)


def _retake(
    delay: Any, blueprint_args: Mapping[str, Any], path: str
) -> Tuple[Optional[Tuple[str, float]], List[Problem]]:
    """The task's onboarding and retake delay in seconds, when a delay is configured."""
    if delay is None:
        return None, []
    field_path = f"{path}.onboarding_retake_delay"
    try:
        seconds = parse_duration(delay, field_path)
    except ValueError:
        return None, [Problem(field_path, delay, "write a duration such as 30m, 12h, 7d or 2w")]
    if seconds is None:
        return None, []
    onboarding = config_value(blueprint_args, "onboarding_qualification")
    if not onboarding:
        return None, [
            Problem(field_path, delay, "a retake delay needs mephisto.blueprint.onboarding_qualification set")
        ]
    return (onboarding, seconds), []


def _for_mturk(q: Mapping[str, Any]) -> bool:
    providers = q.get("applicable_providers")
    return providers is None or any(str(p).startswith("mturk") for p in providers)


def _distinct(dicts: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    seen, out = set(), []
    for q in dicts:
        key = (q["qualification_name"], q["comparator"], repr(q.get("value")))
        if key not in seen:
            seen.add(key)
            out.append(q)
    return out


def plan_for_run(
    args: Any,
    existing_qualifications: Sequence[Mapping[str, Any]] = (),
    existing_mturk: Sequence[Mapping[str, Any]] = (),
) -> QualsPlan:
    """Plan for a full Mephisto run config (``args.blueprint.quals`` and the provider type)."""
    blueprint = args.blueprint
    provider = args.get("provider") if hasattr(args, "get") else None
    provider_type = config_value(provider, "_provider_type") if provider is not None else None
    return plan_from_quals(
        config_value(blueprint, "quals"),
        provider_type=provider_type,
        blueprint_args=blueprint,
        existing_qualifications=existing_qualifications,
        existing_mturk=existing_mturk,
    )
