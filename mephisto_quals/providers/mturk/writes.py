"""MTurk writes shared by the sync (:mod:`.sync`) and the direct grants (:mod:`.direct`).

One grant or revoke (:func:`send`, which checks a refused revoke with GetQualificationScore),
the creation of a missing qualification type (:func:`create_type`), and Mephisto's own MTurk
datastore mapping of qualification names to type ids (:func:`record_mapping`,
:func:`mapping_warning`), so that Mephisto's ``Worker.grant_qualification`` grants the same type.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from mephisto_quals.providers.mturk.client import (
    MTurkCalls,
    MTurkError,
    RequesterInfo,
    error_text,
    find_qualification_type,
    is_retryable,
)

__all__ = [
    "EXISTS_MESSAGE",
    "create_type",
    "held_on_mturk",
    "send",
    "qualification_mapping",
    "mapping_warning",
    "record_mapping",
]

EXISTS_MESSAGE = "You have already created a QualificationType with this name."


def mapping_warning(db: Any, info: RequesterInfo, mturk_name: str, type_id: Optional[str]) -> Optional[str]:
    """Mephisto's own MTurk datastore maps qualification names to type ids; say if it disagrees."""
    mapping = qualification_mapping(db, info, mturk_name)
    if mapping is None or type_id is None or mapping["mturk_qualification_id"] == type_id:
        return None
    return (
        f"Mephisto's MTurk datastore maps '{mturk_name}' to {mapping['mturk_qualification_id']} "
        f"(requester {mapping['requester_id']}), not {type_id}: Mephisto's own Worker.grant_qualification "
        "grants that other type"
    )


def qualification_mapping(db: Any, info: RequesterInfo, mturk_name: str) -> Optional[Any]:
    """Mephisto's datastore row for ``mturk_name`` (None without one, or when the datastore fails)."""
    if not hasattr(db, "get_datastore_for_provider"):
        return None
    try:
        return db.get_datastore_for_provider(info.provider_type).get_qualification_mapping(mturk_name)
    except Exception:  # the datastore is a convenience; never fail a sync on it
        return None


def record_mapping(db: Any, info: RequesterInfo, mturk_name: str, type_id: str) -> None:
    """Tell Mephisto's MTurk datastore which type we use, so its own grants go to the same one."""
    if not hasattr(db, "get_datastore_for_provider") or qualification_mapping(db, info, mturk_name) is not None:
        return
    try:
        db.get_datastore_for_provider(info.provider_type).create_qualification_mapping(
            mturk_name, str(info.requester_id), mturk_name, type_id
        )
    except Exception:
        pass


def create_type(calls: MTurkCalls, name: str) -> str:
    """CreateQualificationType (Active, not auto-granted); a type made meanwhile is found instead."""
    from botocore.exceptions import ClientError

    try:
        response = calls.write(
            "create_qualification_type",
            Name=name,
            Description=f"Equivalent qualification for {name}.",
            QualificationTypeStatus="Active",
            AutoGranted=False,
        )
        return response["QualificationType"]["QualificationTypeId"]
    except ClientError as e:
        if not (e.response.get("Error", {}).get("Message") or "").startswith(EXISTS_MESSAGE):
            raise
    found = find_qualification_type(calls, name)
    if found is None:
        raise MTurkError(f"MTurk says qualification type '{name}' exists but does not list it")
    return found["QualificationTypeId"]


def held_on_mturk(calls: MTurkCalls, type_id: str, worker: str) -> Optional[bool]:
    """Whether MTurk still has the grant (None: could not tell), after a revoke MTurk refused."""
    from botocore.exceptions import ClientError

    try:
        response = calls.read("get_qualification_score", QualificationTypeId=type_id, WorkerId=worker)
    except ClientError as e:
        return None if is_retryable(e) else False
    return (response.get("Qualification") or {}).get("Status") == "Granted"


def send(
    calls: MTurkCalls, type_id: str, worker: str, value: Optional[int], reason: Optional[str]
) -> Tuple[str, Optional[str]]:
    """One grant (value given) or revoke (None) on MTurk: (status, error)."""
    from botocore.exceptions import ClientError

    try:
        if value is not None:
            calls.write(
                "associate_qualification_with_worker",
                QualificationTypeId=type_id,
                WorkerId=worker,
                IntegerValue=value,
                SendNotification=False,
            )
            return "ok", None
        params = {"QualificationTypeId": type_id, "WorkerId": worker}
        if reason:
            params["Reason"] = reason
        calls.write("disassociate_qualification_from_worker", **params)
        return "ok", None
    except ClientError as e:
        if value is None and not is_retryable(e) and held_on_mturk(calls, type_id, worker) is False:
            return "not held", None
        return "failed", f"MTurk {error_text(e)}"
