"""MTurk qualification types declared in YAML: reading and validating the file.

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
as ``qualification_types[1].test.duration``) into :class:`QualTypeSpec` values, which
:func:`mephisto_quals.providers.mturk.types.ensure_types` applies to MTurk.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from mephisto_quals.compile.durations import parse_duration
from mephisto_quals.compile.requirements import check_name
from mephisto_quals.errors import Problem, QualsConfigError

__all__ = [
    "TestSpec",
    "QualTypeSpec",
    "load_types",
    "parse_types",
    "ROOT_KEY",
    "MAX_XML_BYTES",
]

ROOT_KEY = "qualification_types"
#: MTurk's limit on the Test and AnswerKey documents (CreateQualificationType docs).
MAX_XML_BYTES = 65535

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
        params: Dict[str, Any] = {"Name": name, "Description": self.description,
                                  "QualificationTypeStatus": self.status or "Active"}
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
    from mephisto_quals.compile.config import read_yaml_file

    path = Path(path)
    data = read_yaml_file(path)  # unreadable, not UTF-8 or bad YAML: one problem naming the file (and line)
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
        raise QualsConfigError(
            problems + [Problem(ROOT_KEY, items, "give a non-empty list of {name, description, ...}")])
    specs: List[QualTypeSpec] = []
    seen: Dict[str, str] = {}
    for i, item in enumerate(items):
        item_path = f"{ROOT_KEY}[{i}]"
        spec, found = _parse_one(item, item_path, base)
        problems += found
        if spec is not None:
            if spec.name in seen:
                problems.append(Problem(f"{item_path}.name", spec.name,
                                        f"names must be unique; {seen[spec.name]} has it too"))
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
            return None, [Problem(path, value,
                                  "keywords are separated by commas on MTurk; a keyword cannot contain one")]
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
    name: Any = item.get("name")  # a str once check_name found no problem
    found = check_name(name, f"{path}.name")
    if not found and name.endswith("_sandbox"):
        found = [Problem(f"{path}.name", name, "leave out '_sandbox': it is added on the sandbox, as Mephisto does")]
    if not found and "," in name:
        found = [Problem(f"{path}.name", name,
                         "MTurk type names cannot be found by search when they contain commas; remove them")]
    problems += found
    description: Any = item.get("description")
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
            problems.append(Problem(f"{path}.auto_granted_value", auto_value,
                                    "only used with auto_granted: true; remove one of them"))
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
        return None, None, [Problem(path, raw,
                                    "give {question_form, duration} and optionally answer_key, retake_delay")]
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

