"""MTurk qualification types declared in YAML, created or updated idempotently.

A file such as::

    qualification_types:
      - name: careful_reader
        description: Passed our careful-reading test
        keywords: [reading, test]
        auto_granted: true            # or auto_granted_value: 1
      - name: screening_test
        description: Screening test
        test: {question_form: screening.xml, answer_key: answers.xml, duration: 20m, retake_delay: 7d}

is read with :func:`load_types` (every problem reported at once, each naming its path such
as ``qualification_types[1].test.duration``) and applied with :func:`ensure_types`.

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

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mephisto_quals.compile.durations import parse_duration
from mephisto_quals.errors import Problem, QualsConfigError
from mephisto_quals.compile.requirements import check_name

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

ROOT_KEY = "qualification_types"
#: MTurk's limit on the Test and AnswerKey documents (CreateQualificationType docs).
MAX_XML_BYTES = 65535
#: Fields MTurk cannot change after creation, and what to do instead.
UNCHANGEABLE = {
    "Name": "a different name is a different type",
    "Keywords": "MTurk cannot change keywords after creation; dispose of the type and create it again to change them",
}

_TYPE_KEYS = {"name", "description", "keywords", "status", "auto_granted", "auto_granted_value", "test", "retry_delay"}
_TEST_KEYS = {"question_form", "answer_key", "duration", "retake_delay"}
_STATUSES = {"active": "Active", "inactive": "Inactive"}


@dataclass(frozen=True)
class TestSpec:
    """A qualification test: QuestionForm and optional AnswerKey XML, and a time limit."""

    question_form: str
    duration: int
    answer_key: Optional[str] = None
    question_form_path: Optional[str] = None
    answer_key_path: Optional[str] = None


@dataclass(frozen=True)
class QualTypeSpec:
    """One declared qualification type, validated.

    ``status`` is None when the YAML does not set it: new types are created Active and an
    existing type's status is left alone.
    """

    name: str
    description: str
    keywords: Optional[Tuple[str, ...]] = None
    status: Optional[str] = None
    auto_granted: bool = False
    auto_granted_value: Optional[int] = None
    test: Optional[TestSpec] = None
    retry_delay: Optional[int] = None
    path: str = ""

    def keywords_text(self) -> Optional[str]:
        return ", ".join(self.keywords) if self.keywords else None

    def create_params(self, name: str) -> Dict[str, Any]:
        """CreateQualificationType parameters for this spec under the MTurk name ``name``."""
        params: Dict[str, Any] = {"Name": name, "Description": self.description, "QualificationTypeStatus": self.status or "Active"}
        if self.keywords:
            params["Keywords"] = self.keywords_text()
        if self.test is not None:
            params["Test"] = self.test.question_form
            params["TestDurationInSeconds"] = self.test.duration
            if self.test.answer_key is not None:
                params["AnswerKey"] = self.test.answer_key
        if self.retry_delay is not None:
            params["RetryDelayInSeconds"] = self.retry_delay
        if self.auto_granted:
            params["AutoGranted"] = True
            if self.auto_granted_value is not None:
                params["AutoGrantedValue"] = self.auto_granted_value
        return params


# --- loading and validation -------------------------------------------------------------------

def load_types(path: Union[str, Path]) -> List[QualTypeSpec]:
    """Read and validate a qualification-types YAML file; raise QualsConfigError listing every problem.

    Test files are resolved relative to the YAML file's folder.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise QualsConfigError([Problem(str(path), str(path), f"give a readable YAML file ({e.__class__.__name__}: {e})")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown place"
        reason = getattr(e, "problem", None) or str(e)
        raise QualsConfigError([Problem(str(path), where, f"the file is not valid YAML: {reason}")]) from None
    return parse_types(data, base_dir=path.parent)


def parse_types(data: Any, base_dir: Union[str, Path, None] = None) -> List[QualTypeSpec]:
    """Validate already-loaded YAML data (a mapping with ``qualification_types``)."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if not isinstance(data, Mapping) or ROOT_KEY not in data:
        raise QualsConfigError([Problem(ROOT_KEY, data, f"give a mapping with a '{ROOT_KEY}' list")])
    problems: List[Problem] = []
    unknown = sorted(set(map(str, data)) - {ROOT_KEY})
    if unknown:
        problems.append(Problem("<top level>", unknown, f"unknown keys; the file holds only '{ROOT_KEY}'"))
    items = data[ROOT_KEY]
    if not isinstance(items, (list, tuple)) or not items:
        raise QualsConfigError(problems + [Problem(ROOT_KEY, items, "give a non-empty list of {name, description, ...}")])
    specs: List[QualTypeSpec] = []
    seen: Dict[str, str] = {}
    for i, item in enumerate(items):
        item_path = f"{ROOT_KEY}[{i}]"
        spec, found = _parse_one(item, item_path, base)
        problems += found
        if spec is not None:
            if spec.name in seen:
                problems.append(Problem(f"{item_path}.name", spec.name, f"names must be unique; {seen[spec.name]} has it too"))
            seen.setdefault(spec.name, item_path)
            specs.append(spec)
    if problems:
        raise QualsConfigError(problems)
    return specs


def _seconds(value: Any, path: str, *, required: bool) -> Tuple[Optional[int], List[Problem]]:
    if value is None:
        return None, ([Problem(path, value, "give a duration such as 20m, 1h or 7d")] if required else [])
    try:
        seconds = parse_duration(value, path)
    except ValueError:
        return None, [Problem(path, value, "write a number and a unit (s, m, h, d, w), e.g. 20m, 12h, 7d")]
    if seconds is None:
        return None, [Problem(path, value, "give a finite duration such as 20m or 7d ('permanent' means nothing here)")]
    if seconds != int(seconds):
        return None, [Problem(path, value, "MTurk takes whole seconds")]
    return int(seconds), []


def _read_xml(value: Any, path: str, base: Path, root: str) -> Tuple[Optional[str], Optional[str], List[Problem]]:
    """(text, resolved path) of an XML file whose root element is ``root``."""
    if not isinstance(value, str) or not value.strip():
        return None, None, [Problem(path, value, f"give the path of a {root} XML file (relative to the YAML file)")]
    file = Path(os.path.expanduser(value))
    if not file.is_absolute():
        file = base / file
    try:
        raw = file.read_bytes()
    except OSError as e:
        why = "does not exist" if isinstance(e, FileNotFoundError) else f"cannot be read ({e.strerror or e})"
        return None, None, [Problem(path, value, f"give a readable {root} XML file; {file} {why}")]
    if len(raw) > MAX_XML_BYTES:
        return None, None, [Problem(path, value, f"MTurk takes at most {MAX_XML_BYTES} bytes; {file} has {len(raw)}")]
    try:
        text = raw.decode("utf-8")
        element = ET.fromstring(text)
    except (UnicodeDecodeError, ET.ParseError) as e:
        return None, None, [Problem(path, value, f"give well-formed UTF-8 XML; {file}: {e}")]
    local = element.tag.rsplit("}", 1)[-1]
    if local != root:
        return None, None, [Problem(path, value, f"the root element must be <{root}>, not <{local}> ({file})")]
    return text, str(file), []


def _keywords(value: Any, path: str) -> Tuple[Optional[Tuple[str, ...]], List[Problem]]:
    if value is None:
        return None, []
    if isinstance(value, str):
        words = [w.strip() for w in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value):
        if any("," in w for w in value):
            return None, [Problem(path, value, "keywords are separated by commas on MTurk; a keyword cannot contain one")]
        words = [w.strip() for w in value]
    else:
        return None, [Problem(path, value, "give a list of words, e.g. [reading, test], or one comma-separated string")]
    if not all(words):
        return None, [Problem(path, value, "keywords must not be empty")]
    return tuple(words), []


def _parse_one(item: Any, path: str, base: Path) -> Tuple[Optional[QualTypeSpec], List[Problem]]:
    if not isinstance(item, Mapping):
        return None, [Problem(path, item, "give a mapping with name and description")]
    problems: List[Problem] = []
    unknown = sorted(set(map(str, item)) - _TYPE_KEYS)
    if unknown:
        problems.append(Problem(path, unknown, f"unknown keys; use {', '.join(sorted(_TYPE_KEYS))}"))
    name = item.get("name")
    found = check_name(name, f"{path}.name")
    if not found and name.endswith("_sandbox"):
        found = [Problem(f"{path}.name", name, "leave out '_sandbox': it is added on the sandbox, as Mephisto does")]
    if not found and "," in name:
        found = [Problem(f"{path}.name", name, "MTurk type names cannot be found by search when they contain commas; remove them")]
    problems += found
    description = item.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append(Problem(f"{path}.description", description, "MTurk needs a non-empty description"))
    keywords, found = _keywords(item.get("keywords"), f"{path}.keywords")
    problems += found
    status = item.get("status")
    if status is not None:
        if not isinstance(status, str) or status.lower() not in _STATUSES:
            problems.append(Problem(f"{path}.status", status, "use Active or Inactive"))
            status = None
        else:
            status = _STATUSES[status.lower()]
    auto = item.get("auto_granted")
    auto_value = item.get("auto_granted_value")
    if auto is not None and not isinstance(auto, bool):
        problems.append(Problem(f"{path}.auto_granted", auto, "use true or false"))
        auto = None
    if auto_value is not None:
        if not isinstance(auto_value, int) or isinstance(auto_value, bool):
            problems.append(Problem(f"{path}.auto_granted_value", auto_value, "qualification values are integers"))
            auto_value = None
        elif auto is False:
            problems.append(Problem(f"{path}.auto_granted_value", auto_value, "only used with auto_granted: true; remove one of them"))
        else:
            auto = True
    retry, found = _seconds(item.get("retry_delay"), f"{path}.retry_delay", required=False)
    problems += found
    test: Optional[TestSpec] = None
    raw_test = item.get("test")
    if raw_test is not None:
        test, retake, found = _parse_test(raw_test, f"{path}.test", base)
        problems += found
        if retake is not None:
            if item.get("retry_delay") is not None:
                problems.append(Problem(f"{path}.test.retake_delay", raw_test.get("retake_delay"),
                                        f"give the delay once: here or as {path}.retry_delay"))
            retry = retake
        if auto:
            problems.append(Problem(f"{path}.auto_granted", item.get("auto_granted", auto_value),
                                    "MTurk does not auto-grant a type with a test; remove auto_granted or the test"))
    if problems:
        return None, problems
    return QualTypeSpec(name, description.strip(), keywords, status, bool(auto), auto_value, test, retry, path), []


def _parse_test(raw: Any, path: str, base: Path) -> Tuple[Optional[TestSpec], Optional[int], List[Problem]]:
    if not isinstance(raw, Mapping):
        return None, None, [Problem(path, raw, "give {question_form, duration} and optionally answer_key, retake_delay")]
    problems: List[Problem] = []
    unknown = sorted(set(map(str, raw)) - _TEST_KEYS)
    if unknown:
        problems.append(Problem(path, unknown, f"unknown keys; use {', '.join(sorted(_TEST_KEYS))}"))
    form, form_path, found = _read_xml(raw.get("question_form"), f"{path}.question_form", base, "QuestionForm")
    problems += found
    key = key_path = None
    if raw.get("answer_key") is not None:
        key, key_path, found = _read_xml(raw.get("answer_key"), f"{path}.answer_key", base, "AnswerKey")
        problems += found
    duration, found = _seconds(raw.get("duration"), f"{path}.duration", required=True)
    problems += found
    retake, found = _seconds(raw.get("retake_delay"), f"{path}.retake_delay", required=False)
    problems += found
    if problems:
        return None, None, problems
    return TestSpec(form, duration, key, form_path, key_path), retake, []  # type: ignore[arg-type]


# --- applying to MTurk --------------------------------------------------------------------------

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
        verb = {"created": "would create" if self.dry_run else "created",
                "updated": "would update" if self.dry_run else "updated"}.get(self.action, self.action)
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


def plan_update(spec: QualTypeSpec, existing: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[str], List[str], List[str]]:
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
            errors.append(f"{where}.test: the type on MTurk has a test and MTurk cannot remove a test; "
                          "dispose of the type and create it again, or keep the test in the YAML")
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
        errors.append(f"{where}.auto_granted: the type on MTurk has a test, and MTurk cannot make such a type auto-granted")
    old_retry = existing.get("RetryDelayInSeconds")
    if spec.retry_delay is None and old_retry is not None:
        errors.append(f"{where}: the type on MTurk allows retakes after {old_retry}s and MTurk cannot disable retries; "
                      "set the delay in the YAML, or dispose of the type and create it again")
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

    from mephisto_quals.providers.mturk.client import as_calls, error_text, find_qualification_type, mturk_qualification_name

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
