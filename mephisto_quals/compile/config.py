"""Structured (Hydra) configs for the ``mephisto.blueprint.quals`` node, with help text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

__all__ = ["MTurkQualsConfig", "QualsConfig", "QualsArgs", "CONFIG_PATH", "read_yaml_file"]

#: Where the node sits in a Mephisto task config; errors name fields from here.
CONFIG_PATH = "mephisto.blueprint.quals"


@dataclass
class MTurkQualsConfig:
    """Requirements passed through to MTurk as ``mturk_specific_qualifications``."""

    system: Dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": (
                "MTurk system qualifications by preset name: approval_rate, approved_hits, "
                "locale, masters, adult (and legacy abandonment_rate, return_rate, "
                "rejection_rate, submission_rate). Each is {comparator, value} "
                "(masters/adult: true); null turns a preset off."
            )
        },
    )
    raw: List[Any] = field(
        default_factory=list,
        metadata={
            "help": (
                "Raw MTurk QualificationRequirement dicts (QualificationTypeId, Comparator, "
                "IntegerValues / LocaleValues, ActionsGuarded), checked against the MTurk API model."
            )
        },
    )
    actions_guarded: str = field(
        default="DiscoverPreviewAndAccept",
        metadata={
            "help": (
                "What a worker without the qualification cannot do: Accept, PreviewAndAccept "
                "or DiscoverPreviewAndAccept (default, hides the HIT). A preset's own "
                "actions_guarded wins."
            )
        },
    )


@dataclass
class QualsConfig:
    """Every qualification rule of one task; each field works alone or with the others."""

    require_onboarding_passed: List[str] = field(
        default_factory=list,
        metadata={
            "help": (
                "Onboarding qualification names the worker must have passed, in this or "
                "any other task (Mephisto records a pass as value 1)."
            )
        },
    )
    block_onboarding_failed: List[str] = field(
        default_factory=list,
        metadata={
            "help": (
                "Onboarding qualification names the worker must not have failed "
                "(Mephisto's '<name>-failed' list used as a block list)."
            )
        },
    )
    allowlists: List[str] = field(
        default_factory=list,
        metadata={"help": "Qualification names the worker must hold (any value)."},
    )
    blocklists: List[str] = field(
        default_factory=list,
        metadata={"help": "Qualification names the worker must not hold."},
    )
    block_qualifications: List[str] = field(
        default_factory=list,
        metadata={
            "help": (
                "Soft-block qualifications for this task or a group of tasks, in addition "
                "to Mephisto's single block_qualification."
            )
        },
    )
    requirements: List[Any] = field(
        default_factory=list,
        metadata={
            "help": (
                "Value requirements {qualification, comparator, value}. Comparators: "
                ">, >=, <, <=, ==, !=, in, not in, exists, not exists (or Mephisto's names). "
                "A worker without the qualification fails every value comparison."
            )
        },
    )
    mturk: MTurkQualsConfig = field(
        default_factory=MTurkQualsConfig,
        metadata={"help": "MTurk system qualifications and raw requirements."},
    )
    prolific: List[Any] = field(
        default_factory=list,
        metadata={
            "help": (
                "Prolific filters: {filter: approval_rate|approval_numbers|age, min, max} or "
                "{filter: current-country-of-residence|fluent-languages|..., values: [...]}, or "
                "{filter_id: ID, ...} for another Prolific filter. The deprecated "
                "{name: ...EligibilityRequirement} form is converted, with a warning."
            )
        },
    )
    onboarding_retake_delay: Optional[str] = field(
        default=None,
        metadata={
            "help": (
                "After this long (e.g. 7d, 12h) a worker who failed this task's onboarding may "
                "take it again, like an MTurk qualification test's retake delay. Unset: a failed "
                "onboarding is final (Mephisto's behaviour)."
            )
        },
    )
    onboarding_from: Optional[str] = field(
        default=None,
        metadata={
            "help": (
                "Onboarding qualification name that the passed_onboarding and "
                "never_failed_onboarding presets refer to."
            )
        },
    )


@dataclass
class QualsArgs:
    """Args mixin: adds the ``quals`` node to a blueprint's args."""

    quals: QualsConfig = field(
        default_factory=QualsConfig,
        metadata={
            "help": (
                "Qualification control from mephisto-quals: onboarding gates, allow/block "
                "lists, value requirements, MTurk and Prolific requirements."
            ),
            "default": "{} (no requirements)",
            "type": "QualsConfig",
        },
    )


def read_yaml_file(path: Union[str, Path]) -> Any:
    """The YAML document in a file; a missing, unreadable, non-UTF-8 or malformed file raises
    QualsConfigError naming the file and (for bad YAML) the line and column."""
    import yaml

    from mephisto_quals.errors import Problem, QualsConfigError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise QualsConfigError([Problem(str(path), f"byte {e.start}", f"the file is not UTF-8 text ({e.reason}); "
                                                                     "save it as UTF-8")]) from None
    except OSError as e:
        why = f"give a readable YAML file ({e.strerror or e})"
        raise QualsConfigError([Problem(str(path), str(path), why)]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
        reason = getattr(e, "problem", None) or str(e)
        raise QualsConfigError([Problem(str(path), where, f"the file is not valid YAML: {reason}")]) from None
