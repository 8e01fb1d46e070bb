"""A Prolific stand-in for tests: a loopback HTTP server speaking the parts of Prolific's API we use.

Shapes follow Prolific's API reference (docs.prolific.com/api-reference): lists answer
``{"results": [...], "_links": {"self": {"href"}, "next": {"href" or null}, ...}, "meta":
{"count": n}}`` (``limit`` / ``offset`` query parameters, :attr:`StandIn.page_size` per page);
errors answer ``{"error": {"status", "error_code", "title", "detail"}}``. Served under
``/api/v1/`` so Mephisto 1.5.2's own client can use it through ``PROLIFIC_BASE_URL``.

Endpoints: ``users/me/``; ``workspaces/`` (GET, POST ``{title}``);
``workspaces/{id}/projects/`` (GET, POST ``{title}``); ``participant-groups/`` (GET
``?workspace_id=|project_id=`` (also ``filter[workspace_id]``), POST ``{name, workspace_id or
project_id, description?, participant_ids?}``); ``participant-groups/{id}/`` (GET, PATCH,
DELETE); ``participant-groups/{id}/participants/`` (GET paged, POST / DELETE
``{participant_ids: [...]}``); ``studies/`` (POST), ``studies/{id}/`` (GET, PATCH),
``studies/{id}/transition/`` (POST ``{action}``); ``filters/`` (GET, :data:`FILTERS`).

What it rejects with 400 (as Prolific's docs say it would): participant ids that are not 24
hex characters, an empty or missing ``participant_ids``, a missing required field, an unknown
filter id, a filter with neither ``selected_values`` nor ``selected_range``, a group filter
naming a group that does not exist, ids listed in ``unknown_participants``. A missing or wrong ``Authorization: Token <key>`` is 401.

Faults, decided before a request is applied (so a failed write changed nothing, as a 429 does):

* ``fail_rate`` (0..1, seeded ``random``) answers one of ``fail_statuses`` (429 with
  ``Retry-After: retry_after``, or 503) to that share of requests;
* ``script``: a list of ``(status, headers)`` answered to the next requests, in order;
* ``crash_after_writes``: after that many applied writes every further request gets 503
  forever (with ``Retry-After``), to stand for the network dying mid-apply;
* ``after_write(n, call)``: called once the n-th write is applied, before it is answered
  (a test kills its client process there: the write happened, the client never heard).

Every request is logged in :attr:`StandIn.calls` as a :class:`Call` (method, path, query,
body, status). The server runs in a daemon thread, stops at :meth:`StandIn.stop` and by
itself after ``max_seconds``.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlencode, urlsplit

API_PREFIX = "/api/v1/"
PARTICIPANT_ID = re.compile(r"^[0-9a-f]{24}$")
WRITE_METHODS = {"POST", "PATCH", "DELETE"}

#: A small catalogue in the shape ``GET /api/v1/filters/`` answers.
FILTERS: List[Dict[str, Any]] = [
    {"filter_id": "participant_group_allowlist", "title": "Participant group allowlist", "type": "select",
     "data_type": "ParticipantGroupID"},
    {"filter_id": "participant_group_blocklist", "title": "Participant group blocklist", "type": "select",
     "data_type": "ParticipantGroupID"},
    {"filter_id": "custom_allowlist", "title": "Custom allowlist", "type": "select", "data_type": "ParticipantID"},
    {"filter_id": "custom_blocklist", "title": "Custom blocklist", "type": "select", "data_type": "ParticipantID"},
    {"filter_id": "approval_rate", "title": "Approval Rate", "type": "range", "data_type": "integer",
     "min": 0, "max": 100},
    {"filter_id": "approval_numbers", "title": "Approval Numbers", "type": "range", "data_type": "integer",
     "min": 0, "max": 100000},
    {"filter_id": "age", "title": "Age", "type": "range", "data_type": "integer", "min": 18, "max": 100},
    {"filter_id": "current-country-of-residence", "title": "Current Country of Residence", "type": "select",
     "data_type": "ChoiceID", "choices": {"0": "United Kingdom", "1": "United States", "2": "Ireland",
                                          "3": "Germany", "4": "Canada"}},
    {"filter_id": "fluent-languages", "title": "Fluent languages", "type": "select", "data_type": "ChoiceID",
     "choices": {"0": "English", "1": "French", "2": "German", "3": "Spanish"}},
]
STUDY_REQUIRED = ("name", "description", "external_study_url", "estimated_completion_time", "reward",
                  "total_available_places")
TRANSITIONS = {"PUBLISH": "ACTIVE", "PAUSE": "PAUSED", "START": "ACTIVE", "STOP": "AWAITING REVIEW"}


@dataclass
class Call:
    """One request the stand-in received, and what it answered."""

    method: str
    path: str  # below /api/v1/, e.g. "participant-groups/abc/participants/"
    query: Dict[str, str]
    body: Any
    status: int = 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def write(self) -> bool:
        return self.method in WRITE_METHODS


class Reject(Exception):
    """An answer other than success: status, and the JSON error's title and detail."""

    def __init__(self, status: int, title: str, detail: Any = None):
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail


@dataclass
class StandIn:
    """The server's state, configuration and log (see the module docstring)."""

    api_key: str = "test-prolific-key"
    page_size: int = 100
    fail_rate: float = 0.0
    fail_statuses: Tuple[int, ...] = (429, 503)
    retry_after: str = "0"
    seed: int = 7
    script: List[Tuple[int, Dict[str, str]]] = field(default_factory=list)
    crash_after_writes: Optional[int] = None
    unknown_participants: set = field(default_factory=set)  # well-formed ids Prolific says it does not know (400)
    after_write: Optional[Callable[[int, Call], None]] = None  # called with (writes applied, call), before answering
    max_seconds: float = 600.0
    calls: List[Call] = field(default_factory=list)
    workspaces: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    projects: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    groups: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    members: Dict[str, Dict[str, str]] = field(default_factory=dict)  # group id -> participant -> datetime_created
    studies: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ids = count(1)
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._applied_writes = 0
        self._server: Optional[ThreadingHTTPServer] = None
        self._timer: Optional[threading.Timer] = None

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> StandIn:
        """Serve on 127.0.0.1 at a free port, in a daemon thread."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                standin._serve(self)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(self.max_seconds, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{API_PREFIX}"

    # --- helpers for tests --------------------------------------------------------------------

    def new_id(self) -> str:
        """A fresh 24-hex id (the form of every Prolific id)."""
        return f"{next(self._ids):024x}"

    def add_workspace(self, title: str = "My Workspace") -> str:
        wid = self.new_id()
        self.workspaces[wid] = {"id": wid, "title": title, "description": "", "owner": "researcher",
                                "users": [], "projects": [], "wallet": "wallet"}
        return wid

    def add_group(self, workspace_id: str, name: str, participants: Any = ()) -> str:
        gid = self.new_id()
        self.groups[gid] = {"id": gid, "name": name, "workspace_id": workspace_id, "project_id": None,
                            "organisation_id": None, "description": "", "is_deleted": False, "feeder_studies": []}
        self.members[gid] = {p: _now() for p in participants}
        return gid

    def group_named(self, name: str) -> Optional[str]:
        for gid, g in self.groups.items():
            if g["name"] == name and not g["is_deleted"]:
                return gid
        return None

    def writes(self, path_part: str = "", ok: bool = True) -> List[Call]:
        """Write calls (successful ones by default) whose path contains ``path_part``."""
        return [c for c in self.calls if c.write and path_part in c.path and (c.ok or not ok)]

    def reads(self, path_part: str = "", ok: bool = True) -> List[Call]:
        return [c for c in self.calls if not c.write and path_part in c.path and (c.ok or not ok)]

    # --- serving ------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        call = Call(handler.command, parts.path[len(API_PREFIX):] if parts.path.startswith(API_PREFIX) else parts.path,
                    {k: v[-1] for k, v in parse_qs(parts.query).items()}, None)
        headers: Dict[str, str] = {}
        try:
            try:
                call.body = json.loads(raw) if raw else None
            except ValueError:
                raise Reject(400, "Request body is not JSON") from None
            with self._lock:
                self.calls.append(call)
                fault = self._fault(call)
                if fault is not None:
                    status, headers = fault
                    raise Reject(status, "Too Many Requests" if status == 429 else "Service Unavailable")
                if handler.headers.get("Authorization") != f"Token {self.api_key}":
                    raise Reject(401, "Authentication credentials were not provided or are invalid")
                if not parts.path.startswith(API_PREFIX):
                    raise Reject(404, "Not found")
                status, answer = self._route(call)
                if call.write and status < 300:
                    self._applied_writes += 1
                    if self.after_write is not None:
                        self.after_write(self._applied_writes, call)
        except Reject as e:
            status = e.status
            answer = {"error": {"status": e.status, "error_code": e.status * 1000, "title": e.title,
                                "detail": e.detail if e.detail is not None else e.title}}
        call.status = status
        body = b"" if answer is None else json.dumps(answer).encode()
        try:
            handler.send_response(status)
            for k, v in headers.items():
                handler.send_header(k, v)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client died (a test killed it)
            pass

    def _fault(self, call: Call) -> Optional[Tuple[int, Dict[str, str]]]:
        if self.crash_after_writes is not None and self._applied_writes >= self.crash_after_writes:
            return 503, {"Retry-After": self.retry_after}
        if self.script:
            return self.script.pop(0)
        if self.fail_rate and self._random.random() < self.fail_rate:
            status = self._random.choice(self.fail_statuses)
            return status, ({"Retry-After": self.retry_after} if status == 429 else {})
        return None

    def _route(self, call: Call) -> Tuple[int, Any]:
        p = [s for s in call.path.split("/") if s]
        m, body = call.method, call.body if isinstance(call.body, dict) else {}
        if p == ["users", "me"] and m == "GET":
            return 200, {"id": "0" * 23 + "1", "name": "Test Researcher", "email": "r@example.org",
                         "available_balance": 100000, "balance": 100000, "currency_code": "GBP"}
        if p == ["workspaces"]:
            if m == "GET":
                return 200, self._page(call, list(self.workspaces.values()))
            if m == "POST":
                title = _required(body, "title")
                return 201, self.workspaces[self.add_workspace(title)]
        if len(p) == 2 and p[0] == "workspaces" and m == "GET":
            return 200, self._get(self.workspaces, p[1], "workspace")
        if len(p) == 3 and p[0] == "workspaces" and p[2] == "projects":
            self._get(self.workspaces, p[1], "workspace")
            if m == "GET":
                return 200, self._page(call, [x for x in self.projects.values() if x["workspace"] == p[1]])
            if m == "POST":
                pid = self.new_id()
                self.projects[pid] = {"id": pid, "title": _required(body, "title"), "description": "",
                                      "workspace": p[1], "owner": "researcher", "users": []}
                return 201, self.projects[pid]
        if p and p[0] == "participant-groups":
            return self._groups(call, p[1:], m, body)
        if p and p[0] == "studies":
            return self._studies(p[1:], m, body)
        if p == ["filters"] and m == "GET":
            return 200, self._page(call, FILTERS)
        raise Reject(404 if m == "GET" else 405, f"{m} {call.path} is not served by the stand-in")

    def _groups(self, call: Call, p: List[str], m: str, body: Dict[str, Any]) -> Tuple[int, Any]:
        if not p:
            if m == "GET":
                q = call.query
                ws = q.get("workspace_id") or q.get("filter[workspace_id]")
                project = q.get("project_id") or q.get("filter[project_id]")
                if not (ws or project):
                    raise Reject(400, "Request validation failed", {"workspace_id": ["workspace_id or project_id is required"]})
                found = [self._group_view(g) for g in self.groups.values() if not g["is_deleted"]
                         and ((ws and g["workspace_id"] == ws) or (project and g["project_id"] == project))]
                return 200, self._page(call, found)
            if m == "POST":
                name = _required(body, "name")
                ws, project = body.get("workspace_id"), body.get("project_id")
                if project:
                    ws = self._get(self.projects, project, "project")["workspace"]
                elif not ws and not body.get("organisation_id"):
                    raise Reject(400, "Request validation failed",
                                 {"workspace_id": ["Either a workspace or organisation ID must be specified."]})
                if ws:
                    self._get(self.workspaces, ws, "workspace")
                initial = _participant_ids(body, required=False)
                gid = self.add_group(ws, name, initial)
                self.groups[gid].update(project_id=project, description=body.get("description") or "")
                return 201, self._group_view(self.groups[gid])
        gid = p[0]
        group = self._get(self.groups, gid, "participant group")
        if group["is_deleted"]:
            raise Reject(404, f"participant group {gid} not found")
        if len(p) == 1:
            if m == "GET":
                return 200, self._group_view(group)
            if m == "PATCH":
                group.update({k: v for k, v in body.items() if k in ("name", "description")})
                return 200, self._group_view(group)
            if m == "DELETE":
                group["is_deleted"] = True
                return 204, None
        if len(p) == 2 and p[1] == "participants":
            members = self.members[gid]
            if m == "GET":
                rows = [{"participant_id": pid, "datetime_created": at} for pid, at in members.items()]
                return 200, self._page(call, rows)
            ids = _participant_ids(body, required=True, unknown=self.unknown_participants)
            if m == "POST":
                for pid in ids:
                    members.setdefault(pid, _now())
            elif m == "DELETE":
                for pid in ids:
                    members.pop(pid, None)
            else:
                raise Reject(405, f"{m} not allowed")
            return 200, {"results": [{"participant_id": pid, "datetime_created": at} for pid, at in members.items()]}
        raise Reject(404, "Not found")

    def _group_view(self, g: Dict[str, Any]) -> Dict[str, Any]:
        return {**g, "participant_count": len(self.members[g["id"]])}

    def _studies(self, p: List[str], m: str, body: Dict[str, Any]) -> Tuple[int, Any]:
        if not p and m == "POST":
            missing = [f for f in STUDY_REQUIRED if body.get(f) in (None, "")]
            if not body.get("completion_codes") and not body.get("completion_code"):
                missing.append("completion_codes")
            if missing:
                raise Reject(400, "Request validation failed", {f: ["This field is required."] for f in missing})
            self._check_filters(body.get("filters") or [])
            sid = self.new_id()
            self.studies[sid] = {**body, "id": sid, "status": "UNPUBLISHED", "filters": body.get("filters") or []}
            return 201, self.studies[sid]
        if not p:
            raise Reject(405, f"{m} studies/ not served")
        study = self._get(self.studies, p[0], "study")
        if len(p) == 1 and m == "GET":
            return 200, study
        if len(p) == 1 and m == "PATCH":
            if "filters" in body:
                self._check_filters(body["filters"] or [])
            study.update({k: v for k, v in body.items() if k not in ("id", "status")})
            return 200, study
        if len(p) == 2 and p[1] == "transition" and m == "POST":
            action = _required(body, "action")
            if action not in TRANSITIONS:
                raise Reject(400, "Request validation failed", {"action": [f"{action!r} is not a valid choice."]})
            study["status"] = TRANSITIONS[action]
            return 200, study
        raise Reject(404, "Not found")

    def _check_filters(self, filters: Any) -> None:
        known = {f["filter_id"]: f for f in FILTERS}
        if not isinstance(filters, list):
            raise Reject(400, "Request validation failed", {"filters": ["Expected a list."]})
        for i, f in enumerate(filters):
            fid = f.get("filter_id") if isinstance(f, dict) else None
            if fid not in known:
                raise Reject(400, "Request validation failed", {"filters": [f"[{i}] unknown filter_id {fid!r}"]})
            values, bounds = f.get("selected_values"), f.get("selected_range")
            if (values is None) == (bounds is None):
                raise Reject(400, "Request validation failed",
                             {"filters": [f"[{i}] {fid}: give selected_values or selected_range"]})
            kind = known[fid]["type"]
            if (kind == "select") != (values is not None):
                raise Reject(400, "Request validation failed",
                             {"filters": [f"[{i}] {fid} is a {kind} filter"]})
            if fid.startswith("participant_group_"):
                for gid in values:
                    if gid not in self.groups or self.groups[gid]["is_deleted"]:
                        raise Reject(400, "Request validation failed",
                                     {"filters": [f"[{i}] {fid}: no participant group {gid!r}"]})
            if bounds is not None and not isinstance(bounds, dict):
                raise Reject(400, "Request validation failed", {"filters": [f"[{i}] {fid}: selected_range is an object"]})

    def _page(self, call: Call, rows: List[Any]) -> Dict[str, Any]:
        try:
            limit = int(call.query.get("limit") or self.page_size)
            offset = int(call.query.get("offset") or 0)
        except ValueError:
            raise Reject(400, "Request validation failed", {"limit": ["A valid integer is required."]}) from None
        base = self.base_url + call.path

        def link(at: Optional[int]) -> Optional[Dict[str, str]]:
            if at is None:
                return {"href": None}
            query = {k: v for k, v in call.query.items() if k not in ("limit", "offset")}
            return {"href": f"{base}?{urlencode({**query, 'limit': limit, 'offset': at})}"}

        nxt = offset + limit if offset + limit < len(rows) else None
        prev = max(0, offset - limit) if offset > 0 else None
        return {"results": rows[offset:offset + limit], "meta": {"count": len(rows)},
                "_links": {"self": link(offset), "next": link(nxt), "previous": link(prev)}}

    @staticmethod
    def _get(table: Dict[str, Dict[str, Any]], key: str, kind: str) -> Dict[str, Any]:
        if key not in table:
            raise Reject(404, f"{kind} {key} not found")
        return table[key]


def _required(body: Dict[str, Any], name: str) -> Any:
    if body.get(name) in (None, ""):
        raise Reject(400, "Request validation failed", {name: ["This field is required."]})
    return body[name]


def _participant_ids(body: Dict[str, Any], required: bool, unknown: Any = ()) -> List[str]:
    ids = body.get("participant_ids")
    if ids is None and not required:
        return []
    if not isinstance(ids, list) or not ids:
        raise Reject(400, "Request validation failed", {"participant_ids": ["A non-empty list is required."]})
    bad = [i for i in ids if not (isinstance(i, str) and PARTICIPANT_ID.match(i))] + [i for i in ids if i in unknown]
    if bad:
        raise Reject(400, "Request validation failed",
                     {"participant_ids": [f"{b!r} is not a valid participant id" for b in bad[:10]]})
    return ids


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
