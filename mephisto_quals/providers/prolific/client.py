"""A small Prolific API client of our own (``requests``), the same on every Mephisto line.

Mephisto's Prolific client exists only on its git line (1.2+) and reads its base URL at
import time, so mephisto-quals talks to Prolific itself:

* **Where.** Base URL from the argument, else ``$PROLIFIC_BASE_URL``, else
  :data:`DEFAULT_BASE_URL`. **Real money:** Prolific has no sandbox, so a base URL that is
  not loopback (``localhost``, ``127.x``, ``::1``) needs ``live_ok=True`` (CLI ``--live``);
  without it :func:`check_live` refuses before any request, naming the host and the flag.
* **Who.** API token from the argument, else ``$PROLIFIC_API_KEY``, else Mephisto's
  ``~/.prolific/credentials`` (JSON ``{requester name: key}``; the one entry if there is one
  and no requester is named). Sent as ``Authorization: Token <key>``.
* **Pages.** List endpoints answer ``{"results": [...], "_links": {"next": {"href": URL}}}``
  (or ``"next": URL``); :meth:`ProlificClient.pages` follows ``next`` until there is none.
* **Retries.** 429 and 5xx (and a dropped connection) are retried up to
  ``Retry.attempts`` times, waiting ``Retry-After`` when the answer has one (capped at
  ``Retry.max_delay``), else an exponential backoff; ``Retry.sleep`` is injectable so tests
  record the waits. Other 4xx answers raise :class:`~mephisto_quals.errors.ProlificRefused`
  at once, with Prolific's JSON error in the message.
* **Counts.** ``reads`` / ``writes`` count requests that succeeded, ``retries`` the attempts
  that were retried, so callers (sync, the bench) can report the calls they made.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import urljoin, urlsplit

from mephisto_quals.errors import ProlificError, ProlificInputError, ProlificLiveRefused, ProlificRefused
from mephisto_quals.store.workers import PROLIFIC_ID_RULE, is_prolific_participant_id

__all__ = [
    "DEFAULT_BASE_URL",
    "BASE_URL_ENV",
    "API_KEY_ENV",
    "CREDENTIALS_PATH",
    "Retry",
    "ProlificClient",
    "base_url_from",
    "is_loopback_url",
    "check_live",
    "find_api_key",
    "check_participant_ids",
]

DEFAULT_BASE_URL = "https://api.prolific.com/api/v1/"
BASE_URL_ENV = "PROLIFIC_BASE_URL"
API_KEY_ENV = "PROLIFIC_API_KEY"
#: Mephisto's Prolific credentials file (``prolific_utils.setup_credentials``), relative to HOME.
CREDENTIALS_PATH = Path(".prolific") / "credentials"
RETRYABLE = {429, 500, 502, 503, 504}
#: A list endpoint is followed for at most this many pages (a server that loops is an error, not a hang).
MAX_PAGES = 100_000
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def base_url_from(base_url: Optional[str] = None) -> str:
    """The base URL to use (argument, ``$PROLIFIC_BASE_URL``, default), always ending in ``/``."""
    url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (a stand-in), where no real money is at stake."""
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def check_live(base_url: str, live_ok: bool) -> None:
    """Refuse the real Prolific (any non-loopback URL) unless ``live_ok``; raises before any request."""
    if live_ok or is_loopback_url(base_url):
        return
    host = urlsplit(base_url).hostname or base_url
    raise ProlificLiveRefused(
        f"{host} is the LIVE Prolific (real participants, real money; Prolific has no sandbox): "
        "add --live (live_ok=True in Python) to use it"
    )


def find_api_key(api_key: Optional[str] = None, requester: Optional[str] = None, home: Optional[Path] = None) -> str:
    """The API token: argument, ``$PROLIFIC_API_KEY``, else Mephisto's ``~/.prolific/credentials``."""
    if api_key:
        return api_key
    if os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV]
    path = (home or Path.home()) / CREDENTIALS_PATH
    try:
        keys = json.loads(path.read_text())
    except FileNotFoundError:
        keys = {}
    except (OSError, ValueError) as e:
        raise ProlificInputError(f"{path}: not a readable JSON file of requester name -> API key ({e})") from None
    if not isinstance(keys, dict):
        raise ProlificInputError(f"{path}: expected a JSON object of requester name -> API key")
    if requester is not None and requester in keys:
        return str(keys[requester])
    if requester is None and len(keys) == 1:
        return str(next(iter(keys.values())))
    known = f" (it has: {', '.join(sorted(keys))})" if keys else ""
    who = f" for requester '{requester}'" if requester else ""
    raise ProlificInputError(f"no Prolific API key{who}: pass api_key, set ${API_KEY_ENV}, or add it to {path}{known}")


def check_participant_ids(ids: List[str], field_name: str = "participant id") -> List[str]:
    """The ids stripped, in order without repeats; raises naming every bad one and the 24-hex rule."""
    cleaned = list(dict.fromkeys(str(i).strip() for i in ids))
    bad = [i for i in cleaned if not is_prolific_participant_id(i)]
    if bad:
        shown = ", ".join(repr(b) for b in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise ProlificInputError(f"{field_name}: {shown}: {PROLIFIC_ID_RULE}; nothing was sent to Prolific")
    return cleaned


@dataclass
class Retry:
    """How often and how long to retry a 429 / 5xx answer (``sleep`` is injectable for tests)."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: Optional[str]) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): Retry-After if given, else backoff."""
        wait = parse_retry_after(retry_after)
        if wait is None:
            wait = self.base_delay * (2 ** (attempt - 1))
        return max(0.0, min(wait, self.max_delay))


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """A ``Retry-After`` header in seconds (a number or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


@dataclass
class ProlificClient:
    """Calls to one Prolific API (real or a stand-in), with retries and call counts."""

    base_url: str
    api_key: str = field(repr=False)
    retry: Retry = field(default_factory=Retry)
    timeout: float = 30.0
    reads: int = 0
    writes: int = 0
    retries: int = 0
    http: Any = None  # a requests.Session; created on first use

    @classmethod
    def connect(
        cls,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        live_ok: bool = False,
        requester: Optional[str] = None,
        retry: Optional[Retry] = None,
    ) -> ProlificClient:
        """A client for ``base_url`` (see :func:`base_url_from`); refuses the live Prolific unless ``live_ok``.

        The live check runs first, so a refused call never looks for a key or opens a connection.
        """
        url = base_url_from(base_url)
        check_live(url, live_ok)
        return cls(url, find_api_key(api_key, requester), retry or Retry())

    # --- transport ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """An absolute URL for an API path (``participant-groups/``) or a full ``next`` link."""
        return path if "://" in path else urljoin(self.base_url, path.lstrip("/"))

    def request(self, method: str, path: str, params: Optional[Dict[str, Any]] = None, body: Any = None) -> Any:
        """One call, retried on 429/5xx; the decoded JSON answer (None for an empty one)."""
        import requests

        if self.http is None:
            self.http = requests.Session()
        url = self.url(path)
        headers = {"Authorization": f"Token {self.api_key}", "Accept": "application/json"}
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                response = self.http.request(
                    method, url, params=params, json=body, headers=headers, timeout=self.timeout
                )
            except requests.ConnectionError as e:
                if last:
                    raise ProlificError(f"could not reach Prolific at {url} ({e})") from e
                self.retries += 1
                self.retry.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code in RETRYABLE and not last:
                self.retries += 1
                self.retry.sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
                continue
            if response.status_code >= 400:
                raise ProlificRefused(
                    f"Prolific {method} {urlsplit(url).path}: HTTP {response.status_code} {_error_text(response)}",
                    response.status_code,
                    _json(response),
                )
            if method == "GET":
                self.reads += 1
            else:
                self.writes += 1
            return _json(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, body=body)

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path, body=body)

    def pages(self, path: str, **params: Any) -> Iterator[Dict[str, Any]]:
        """Every result of a list endpoint, following ``_links.next`` (or ``next``) page by page."""
        url: Optional[str] = path
        seen = set()
        for _ in range(MAX_PAGES):
            if url is None:
                return
            page = self.get(url, **params) if url == path else self.get(url)
            if not isinstance(page, dict):
                kind = type(page).__name__
                raise ProlificError(f"Prolific {path}: expected a JSON object with 'results', got {kind}")
            yield from page.get("results") or []
            url = _next_link(page)
            if url in seen:
                raise ProlificError(f"Prolific {path}: the next page link repeats ({url})")
            if url:
                seen.add(url)
        raise ProlificError(f"Prolific {path}: more than {MAX_PAGES} pages")

    # --- resources (the endpoints mephisto-quals uses) ---------------------------------------

    def me(self) -> Dict[str, Any]:
        return self.get("users/me/")

    def workspaces(self) -> List[Dict[str, Any]]:
        return list(self.pages("workspaces/"))

    def find_or_create_workspace(self, title: str) -> Dict[str, Any]:
        """The workspace titled ``title`` (Prolific names workspaces by ``title``), created if missing."""
        for w in self.workspaces():
            if w.get("title") == title:
                return w
        return self.post("workspaces/", {"title": title})

    def projects(self, workspace_id: str) -> List[Dict[str, Any]]:
        return list(self.pages(f"workspaces/{workspace_id}/projects/"))

    def find_or_create_project(self, workspace_id: str, title: str) -> Dict[str, Any]:
        for p in self.projects(workspace_id):
            if p.get("title") == title:
                return p
        return self.post(f"workspaces/{workspace_id}/projects/", {"title": title})

    def participant_groups(self, workspace_id: str) -> List[Dict[str, Any]]:
        """The workspace's groups. The reference documents ``filter[workspace_id]``, older clients
        (Mephisto 1.5.2) send ``workspace_id``/``project_id``: both are sent."""
        query = {"workspace_id": workspace_id, "filter[workspace_id]": workspace_id}
        return list(self.pages("participant-groups/", **query))

    def participant_group(self, group_id: str) -> Optional[Dict[str, Any]]:
        """The group, or None when Prolific has no (live) group with this id."""
        try:
            group = self.get(f"participant-groups/{group_id}/")
        except ProlificRefused as e:
            if e.status == 404:
                return None
            raise
        return None if group.get("is_deleted") else group

    def create_participant_group(self, workspace_id: str, name: str, description: str = "") -> Dict[str, Any]:
        body = {"workspace_id": workspace_id, "name": name, "description": description}
        return self.post("participant-groups/", body)

    def delete_participant_group(self, group_id: str) -> None:
        self.delete(f"participant-groups/{group_id}/")

    def group_members(self, group_id: str) -> List[str]:
        """Participant ids in the group (every page)."""
        return [r["participant_id"] for r in self.pages(f"participant-groups/{group_id}/participants/")]

    def add_to_group(self, group_id: str, participant_ids: List[str]) -> Any:
        return self.post(f"participant-groups/{group_id}/participants/", {"participant_ids": participant_ids})

    def remove_from_group(self, group_id: str, participant_ids: List[str]) -> Any:
        return self.delete(f"participant-groups/{group_id}/participants/", {"participant_ids": participant_ids})

    def change_members(self, group_id: str, action: str, ids: List[str]) -> Dict[str, Optional[str]]:
        """Add (``action`` "add") or remove a batch: participant -> None (done) or Prolific's error.

        A batch Prolific refuses (400/404) is sent again one participant at a time, so one bad
        id fails alone; other errors (retries used up) raise.
        """
        send = self.add_to_group if action == "add" else self.remove_from_group
        try:
            send(group_id, ids)
            return {p: None for p in ids}
        except ProlificRefused as e:
            if e.status not in (400, 404):
                raise
            if len(ids) == 1:
                return {ids[0]: str(e)}
        results: Dict[str, Optional[str]] = {}
        for p in ids:
            results.update(self.change_members(group_id, action, [p]))
        return results

    def filters(self) -> List[Dict[str, Any]]:
        """Prolific's filter catalogue (``GET filters/``): ids, types, choices or ranges."""
        return list(self.pages("filters/"))

    def create_study(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        return self.post("studies/", payload)

    def study(self, study_id: str) -> Dict[str, Any]:
        return self.get(f"studies/{study_id}/")

    def update_study(self, study_id: str, changes: Dict[str, Any]) -> Dict[str, Any]:
        return self.patch(f"studies/{study_id}/", changes)

    def transition_study(self, study_id: str, action: str) -> Dict[str, Any]:
        """``action`` is PUBLISH, PAUSE, START or STOP."""
        return self.post(f"studies/{study_id}/transition/", {"action": action})


def _json(response: Any) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return {"text": response.text[:500]}


def _error_text(response: Any) -> str:
    body = _json(response)
    if isinstance(body, dict) and "error" in body:
        body = body["error"]
    return json.dumps(body)[:500] if body is not None else ""


def _next_link(page: Dict[str, Any]) -> Optional[str]:
    links = page.get("_links") or {}
    nxt = links.get("next") if isinstance(links, dict) else None
    if isinstance(nxt, dict):
        nxt = nxt.get("href")
    if nxt is None:
        nxt = page.get("next")
    return nxt or None
