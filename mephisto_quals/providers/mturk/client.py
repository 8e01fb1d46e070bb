"""Boto3 MTurk clients for a Mephisto requester: sandbox unless asked, retried, injectable.

A requester is found in the Mephisto DB (``mturk`` = live, ``mturk_sandbox`` = sandbox, the
latter stored as ``<name>_sandbox``). Its client is made the way Mephisto makes it (a boto3
session on the AWS profile named after the requester, ``us-east-1``, the sandbox endpoint
for the sandbox) plus botocore's ``standard`` retry mode, so a real client retries
ThrottlingException and 5xx answers with backoff by itself.

Botocore's retry handler sits in the HTTP layer, which ``botocore.stub.Stubber`` bypasses
(checked: a stubbed ThrottlingException is raised at once, the queued success is left
pending). So every call also goes through :class:`MTurkCalls`, a small retry loop of our
own for throttling and service errors with exponential backoff: it is what runs under test,
and with a real client it only sees the errors botocore already gave up on.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from mephisto_quals.errors import QualsError
from mephisto_quals.store import Session
from mephisto_quals.store import runs as run_store

__all__ = [
    "pages",
    "SANDBOX_ENDPOINT",
    "REGION",
    "MAX_RESULTS",
    "RETRY_CONFIG",
    "RETRYABLE_CODES",
    "MTurkError",
    "RequesterNotFound",
    "LiveRequesterRefused",
    "RequesterInfo",
    "Retry",
    "MTurkCalls",
    "find_requester",
    "check_live",
    "client_for",
    "client_for_requester",
    "calls_for_requester",
    "as_calls",
    "client_is_sandbox",
    "mturk_qualification_name",
    "mturk_worker_id",
    "is_mturk_worker_id",
    "find_qualification_type",
    "error_code",
    "error_text",
    "is_retryable",
]

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
REGION = "us-east-1"
#: MTurk's page size limit for the List* calls.
MAX_RESULTS = 100
#: botocore's own retries for real clients (Mephisto's clients use legacy mode, 10 attempts).
RETRY_CONFIG: Dict[str, Any] = {"mode": "standard", "max_attempts": 10}
#: Error codes worth another try: throttling and service-side failures (as botocore's
#: standard mode classifies them, plus MTurk's ServiceFault).
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceFault",
        "InternalError",
        "InternalFailure",
    }
)
_WORKER_ID = re.compile(r"^A[A-Z0-9]{1,63}$")
_PROVIDERS = {"mturk": False, "mturk_sandbox": True}  # provider type -> sandbox


class MTurkError(QualsError):
    """An MTurk set-up problem mephisto-quals explains (missing profile, wrong client, ...)."""


class RequesterNotFound(MTurkError, LookupError):
    """No MTurk requester by that name in the Mephisto DB."""


class LiveRequesterRefused(MTurkError, PermissionError):
    """A live MTurk requester was named without ``live_ok=True`` (``--live``)."""


@dataclass(frozen=True)
class RequesterInfo:
    """An MTurk requester as Mephisto stores it."""

    requester_id: int
    name: str  # as stored: sandbox requesters end in _sandbox
    provider_type: str  # mturk | mturk_sandbox
    sandbox_twin: Optional[str] = None  # for a live requester: its sandbox namesake, if any

    @property
    def sandbox(self) -> bool:
        return _PROVIDERS[self.provider_type]

    @property
    def profile(self) -> str:
        """The AWS profile Mephisto uses for this requester (the name without ``_sandbox``)."""
        return self.name[: -len("_sandbox")] if self.sandbox and self.name.endswith("_sandbox") else self.name

    @property
    def label(self) -> str:
        return f"{'sandbox' if self.sandbox else 'LIVE'} MTurk requester '{self.name}'"


def find_requester(db: Any, requester_name: str) -> RequesterInfo:
    """The MTurk requester called ``requester_name`` (``alice`` also finds ``alice_sandbox``).

    An exact name wins, so ``alice`` is the live requester when both exist.
    """
    with Session.open(db, readonly=True) as s:
        rows = run_store.requesters(s.conn, names=(requester_name, f"{requester_name}_sandbox"))
        known = [r["requester_name"] for r in run_store.requesters(s.conn, provider_types=("mturk", "mturk_sandbox"))]
    by_name = {r["requester_name"]: r for r in rows}
    row = by_name.get(requester_name) or by_name.get(f"{requester_name}_sandbox")
    if row is None:
        raise RequesterNotFound(
            f"no MTurk requester {requester_name!r} in the Mephisto database; "
            + (
                f"MTurk requesters there: {', '.join(known)}"
                if known
                else "register one with 'mephisto register mturk_sandbox name=... access_key_id=... "
                "secret_access_key=...'"
            )
        )
    if row["provider_type"] not in _PROVIDERS:
        raise RequesterNotFound(
            f"requester {row['requester_name']!r} is a {row['provider_type']} requester, not an MTurk one"
        )
    twin = by_name.get(f"{requester_name}_sandbox") if row["provider_type"] == "mturk" else None
    return RequesterInfo(
        int(row["requester_id"]),
        row["requester_name"],
        row["provider_type"],
        twin["requester_name"] if twin is not None else None,
    )


def client_is_sandbox(client: Any) -> bool:
    """Whether a boto3 MTurk client talks to the sandbox (Mephisto's own test)."""
    return client.meta.endpoint_url == SANDBOX_ENDPOINT


def _refuse_live(info: RequesterInfo) -> LiveRequesterRefused:
    hint = f"; the sandbox requester is '{info.sandbox_twin}'" if info.sandbox_twin else ""
    return LiveRequesterRefused(
        f"{info.label} works on real workers and real qualifications; pass --live (live_ok=True) to use it{hint}"
    )


def client_for(db: Any, requester_name: str, live_ok: bool = False, client: Any = None) -> Tuple[Any, bool]:
    """(boto3 MTurk client, is_sandbox) for a Mephisto requester; sandbox unless ``live_ok``.

    ``client`` injects a ready client (a stubbed one in tests); it must talk to the same
    side (sandbox or live) as the requester, so a test or a script cannot cross them.
    """
    info = find_requester(db, requester_name)
    return client_for_requester(info, live_ok, client), info.sandbox


def check_live(info: RequesterInfo, live_ok: bool) -> None:
    """Refuse a live requester unless ``live_ok``: the sandbox is the default everywhere."""
    if not info.sandbox and not live_ok:
        raise _refuse_live(info)


def client_for_requester(info: RequesterInfo, live_ok: bool = False, client: Any = None) -> Any:
    """:func:`client_for` for a requester already found; refuses a live one unless ``live_ok``."""
    check_live(info, live_ok)
    if client is not None:
        if client_is_sandbox(client) != info.sandbox:
            side = "the sandbox" if client_is_sandbox(client) else "live MTurk"
            raise MTurkError(f"the client given talks to {side}, but {info.label} is not on that side")
        return client
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.Session(profile_name=info.profile, region_name=REGION)
    except ProfileNotFound:
        kind = "mturk_sandbox" if info.sandbox else "mturk"
        raise MTurkError(
            f"no AWS profile {info.profile!r} for {info.label} (Mephisto keeps a requester's keys under an AWS "
            f"profile named after it); register them with "
            f"'mephisto register {kind} name={info.profile} access_key_id=... secret_access_key=...'"
        ) from None
    kwargs: Dict[str, Any] = {"endpoint_url": SANDBOX_ENDPOINT} if info.sandbox else {}
    return session.client("mturk", region_name=REGION, config=Config(retries=dict(RETRY_CONFIG)), **kwargs)


def mturk_qualification_name(name: str, sandbox: bool) -> str:
    """The MTurk qualification type name Mephisto uses for a local qualification (``_sandbox`` in the sandbox)."""
    return f"{name}_sandbox" if sandbox else name


def mturk_worker_id(worker_name: str) -> str:
    """The MTurk worker id behind a Mephisto worker name (sandbox names end in ``_sandbox``)."""
    return worker_name.removesuffix("_sandbox")


def is_mturk_worker_id(worker_id: str) -> bool:
    return bool(_WORKER_ID.match(worker_id))


# --- calls, with our own retry loop ------------------------------------------------------------


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or type(error).__name__)


def error_text(error: Exception) -> str:
    """``Code: message`` of an MTurk error, for reports."""
    response = getattr(error, "response", None) or {}
    message = response.get("Error", {}).get("Message") or ""
    return f"{error_code(error)}: {message}" if message else error_code(error)


def is_retryable(error: Exception) -> bool:
    """Throttling and service-side errors are retried; a RequestError about the input is not."""
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(error) in RETRYABLE_CODES or (isinstance(status, int) and (status >= 500 or status == 429))


@dataclass
class Retry:
    """Exponential backoff for throttling / service errors: attempt n waits base * 2**(n-1), capped, jittered."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    jitter: bool = True
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        full = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(full / 2, full) if self.jitter else full


@dataclass
class MTurkCalls:
    """A client plus the retry loop, counting what was sent (reads, writes, retries)."""

    client: Any
    retry: Retry = field(default_factory=Retry)
    reads: int = 0
    writes: int = 0
    retries: int = 0
    waited: List[float] = field(default_factory=list)

    def read(self, operation: str, **params: Any) -> Dict[str, Any]:
        self.reads += 1
        return self._call(operation, params)

    def write(self, operation: str, **params: Any) -> Dict[str, Any]:
        self.writes += 1
        return self._call(operation, params)

    def _call(self, operation: str, params: Dict[str, Any]) -> Dict[str, Any]:
        from botocore.exceptions import ClientError

        method = getattr(self.client, operation)
        attempt = 1
        while True:
            try:
                return method(**params)
            except ClientError as e:
                if not is_retryable(e) or attempt >= self.retry.max_attempts:
                    if attempt > 1:
                        e.response.setdefault("Error", {})["Message"] = (
                            f"{e.response.get('Error', {}).get('Message') or ''} (after {attempt} attempts)".strip()
                        )
                    raise
                wait = self.retry.delay(attempt)
                self.waited.append(wait)
                self.retries += 1
                self.retry.sleep(wait)
                attempt += 1


def as_calls(client_or_calls: Union[Any, MTurkCalls], retry: Optional[Retry] = None) -> MTurkCalls:
    """``client_or_calls`` as :class:`MTurkCalls` (a boto3 client is wrapped with backoff ``retry``)."""
    if isinstance(client_or_calls, MTurkCalls):
        return client_or_calls
    return MTurkCalls(client_or_calls, retry or Retry())


def calls_for_requester(
    info: RequesterInfo, live_ok: bool = False, client: Any = None, retry: Optional[Retry] = None
) -> MTurkCalls:
    """:func:`client_for_requester` wrapped in :class:`MTurkCalls` (backoff ``retry``, counted calls)."""
    return MTurkCalls(client_for_requester(info, live_ok, client), retry or Retry())


def pages(calls: MTurkCalls, operation: str, key: str, **params: Any) -> Iterator[Dict[str, Any]]:
    """Every item of a paged List* call (MaxResults 100), following NextToken to the end."""
    token: Optional[str] = None
    seen = set()
    while True:
        page_params = dict(params, MaxResults=MAX_RESULTS)
        if token:
            page_params["NextToken"] = token
        response = calls.read(operation, **page_params)
        yield from response.get(key) or []
        token = response.get("NextToken")
        if not token or token in seen:
            return
        seen.add(token)


def find_qualification_type(
    client: Union[Any, MTurkCalls], name: str, retry: Optional[Retry] = None
) -> Optional[Dict[str, Any]]:
    """The caller's own MTurk qualification type named exactly ``name``, or None.

    MTurk's Query is a substring search over names and descriptions, so every page is read
    and only an exact name counts; an Active type is preferred over an Inactive one.
    """
    calls = as_calls(client, retry)
    found = [
        q
        for q in pages(
            calls,
            "list_qualification_types",
            "QualificationTypes",
            Query=name,
            MustBeRequestable=False,
            MustBeOwnedByCaller=True,
        )
        if q.get("Name") == name
    ]
    found.sort(key=lambda q: q.get("QualificationTypeStatus") != "Active")
    return found[0] if found else None
