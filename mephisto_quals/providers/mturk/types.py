"""MTurk qualification types declared in YAML, created or updated idempotently.

The YAML file is read and validated by :mod:`mephisto_quals.providers.mturk.type_specs`
(:func:`load_types`, :func:`parse_types`, re-exported here) and applied with :func:`ensure_types`.

Names follow Mephisto's convention: on the sandbox a type is called ``<name>_sandbox``,
which is exactly the MTurk type Mephisto's MTurk provider looks up for a local
qualification ``<name>``, so a task's ``allowlists: [careful_reader]`` uses the type
declared here.

What MTurk cannot change after creation (from the UpdateQualificationType and
CreateQualificationType documentation in botocore's MTurk model):

- **Name** and **Keywords** cannot be modified. A name change is simply a new type; a
  keywords difference is reported as a warning and left as it is.
- **Retries cannot be disabled** once a type has a RetryDelayInSeconds: removing
  ``retry_delay`` / ``test.retake_delay`` from the YAML is an error (dispose of the type and
  create a new one). Enabling retries later, or changing the delay, *is* allowed.
- **A test cannot be removed** from a type that has one, and a type with a test cannot be
  made auto-granted: both are errors.
- Changing a test's duration or answer key means sending the whole test again (MTurk's
  rule); that happens automatically, and the answer key is always sent with it (a test
  sent without one loses its key).

A type with an error is not written at all; fix the YAML (or dispose of the type on MTurk)
and run again.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mephisto_quals.providers.mturk.type_specs import QualTypeSpec, TestSpec, load_types, parse_types

__all__ = [
    "TestSpec",
    "QualTypeSpec",
    "TypeResult",
    "load_types",
    "parse_types",
    "ensure_types",
    "UNCHANGEABLE",
    "looks_like_type_id",
    "plan_update",
]

#: Fields MTurk cannot change after creation, and what to do instead.
UNCHANGEABLE = {
    "Name": "a different name is a different type",
    "Keywords": "MTurk cannot change keywords after creation; dispose of the type and create it again to change them",
}


@dataclass
class TypeResult:
    """What :func:`ensure_types` did (or would do) for one declared type.

    ``action`` is created, updated, unchanged, conflict (the YAML asks for something MTurk
    cannot change: nothing written for this type) or failed (MTurk refused the call).
    ``changed`` names the MTurk fields that differ (and were sent, unless a dry run).
    """

    name: str
    mturk_name: str
    action: str
    type_id: Optional[str] = None
    changed: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        verb = {
            "created": "would create" if self.dry_run else "created",
            "updated": "would update" if self.dry_run else "updated",
        }.get(self.action, self.action)
        text = f"{self.mturk_name}: {verb}"
        if self.type_id:
            text += f" ({self.type_id})"
        if self.changed and self.action != "created":
            text += f" [{', '.join(self.changed)}]"
        return text


def _canonical(xml: Optional[str]) -> Optional[str]:
    """XML text compared by content, not by formatting."""
    if xml is None:
        return None
    try:
        return ET.canonicalize(xml, strip_text=True)
    except ET.ParseError:
        return xml.strip()


def _split_keywords(text: Optional[str]) -> List[str]:
    return [w.strip() for w in (text or "").split(",") if w.strip()]


def plan_update(
    spec: QualTypeSpec, existing: Mapping[str, Any]
) -> Tuple[Dict[str, Any], List[str], List[str], List[str]]:
    """(UpdateQualificationType params beyond the id, fields that differ, errors, warnings)."""
    params: Dict[str, Any] = {}
    changed: List[str] = []
    errors: List[str] = []
    warnings: List[str] = []
    where = spec.path or spec.name
    if (existing.get("Description") or "").strip() != spec.description:
        params["Description"] = spec.description
        changed.append("Description")
    if spec.status is not None and existing.get("QualificationTypeStatus") != spec.status:
        params["QualificationTypeStatus"] = spec.status
        changed.append("QualificationTypeStatus")
    if spec.keywords is not None and _split_keywords(existing.get("Keywords")) != list(spec.keywords):
        warnings.append(
            f"{where}.keywords: MTurk has {existing.get('Keywords')!r}, the YAML {spec.keywords_text()!r}; "
            f"{UNCHANGEABLE['Keywords']} (left as it is)"
        )
    has_test = bool(existing.get("Test"))
    if spec.test is None:
        if has_test:
            errors.append(
                f"{where}.test: the type on MTurk has a test and MTurk cannot remove a test; "
                "dispose of the type and create it again, or keep the test in the YAML"
            )
    else:
        test_fields = []
        if _canonical(existing.get("Test")) != _canonical(spec.test.question_form):
            test_fields.append("Test")
        if existing.get("TestDurationInSeconds") != spec.test.duration:
            test_fields.append("TestDurationInSeconds")
        if _canonical(existing.get("AnswerKey")) != _canonical(spec.test.answer_key):
            test_fields.append("AnswerKey")
        if test_fields:
            # MTurk updates a test only as a whole: Test and duration always, and the key
            # (a test sent without one loses its answer key).
            params["Test"] = spec.test.question_form
            params["TestDurationInSeconds"] = spec.test.duration
            if spec.test.answer_key is not None:
                params["AnswerKey"] = spec.test.answer_key
            changed += test_fields
    if spec.auto_granted and has_test:
        errors.append(
            f"{where}.auto_granted: the type on MTurk has a test, and MTurk cannot make such a type auto-granted"
        )
    old_retry = existing.get("RetryDelayInSeconds")
    if spec.retry_delay is None and old_retry is not None:
        errors.append(
            f"{where}: the type on MTurk allows retakes after {old_retry}s and MTurk cannot disable retries; "
            "set the delay in the YAML, or dispose of the type and create it again"
        )
    elif spec.retry_delay is not None and spec.retry_delay != old_retry:
        params["RetryDelayInSeconds"] = spec.retry_delay
        changed.append("RetryDelayInSeconds")
    old_auto = bool(existing.get("AutoGranted"))
    if spec.auto_granted != old_auto:
        params["AutoGranted"] = spec.auto_granted
        changed.append("AutoGranted")
    if spec.auto_granted:
        wanted = 1 if spec.auto_granted_value is None else spec.auto_granted_value
        if existing.get("AutoGrantedValue", 1) != wanted:  # MTurk's default value is 1
            params["AutoGranted"] = True
            params["AutoGrantedValue"] = wanted
            changed.append("AutoGrantedValue")
    return params, changed, errors, warnings


def ensure_types(
    client: Any, specs: Sequence[QualTypeSpec], sandbox: bool, dry_run: bool = False, retry: Any = None
) -> List[TypeResult]:
    """Create missing types and update what differs, idempotently: a second run writes nothing.

    ``client`` is a boto3 MTurk client (or a :class:`~mephisto_quals.providers.mturk.client.MTurkCalls`,
    whose ``writes`` then counts what was sent); ``sandbox`` names the types with Mephisto's
    ``_sandbox`` suffix. Existing types are found by exact name among the caller's own types
    (every page of ListQualificationTypes). Only differing fields are sent; differences MTurk
    cannot apply are reported in ``errors`` (the type is then left untouched) or
    ``warnings``. A dry run makes only the read calls. Throttling is retried with backoff.
    """
    from botocore.exceptions import ClientError

    from mephisto_quals.providers.mturk.client import (
        as_calls,
        error_text,
        find_qualification_type,
        mturk_qualification_name,
    )

    calls = as_calls(client, retry)
    results: List[TypeResult] = []
    for spec in specs:
        name = mturk_qualification_name(spec.name, sandbox)
        result = TypeResult(spec.name, name, "unchanged", dry_run=dry_run)
        results.append(result)
        try:
            existing = find_qualification_type(calls, name)
            if existing is None:
                params = spec.create_params(name)
                result.action = "created"
                result.changed = sorted(params)
                if not dry_run:
                    response = calls.write("create_qualification_type", **params)
                    result.type_id = response["QualificationType"]["QualificationTypeId"]
                continue
            result.type_id = existing.get("QualificationTypeId")
            params, changed, errors, warnings = plan_update(spec, existing)
            result.changed, result.errors, result.warnings = changed, errors, warnings
            if errors:
                result.action = "conflict"
                continue
            if params:
                result.action = "updated"
                if not dry_run:
                    calls.write("update_qualification_type", QualificationTypeId=result.type_id, **params)
        except ClientError as e:
            result.action = "failed"
            result.errors.append(f"{spec.path or spec.name}: MTurk refused: {error_text(e)}")
    return results


_TYPE_ID = re.compile(r"^[A-Z0-9]{20,64}$")


def looks_like_type_id(text: str) -> bool:
    """MTurk type ids are 20 (system) or 30 (custom) capitals and digits; names rarely are."""
    return bool(_TYPE_ID.match(text))
