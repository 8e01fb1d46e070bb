"""Local lists as Prolific participant groups: one group per qualification and workspace.

A local qualification used as an allowlist or blocklist (an onboarding's ``-failed`` list and
block qualifications included) is kept on Prolific as ONE participant group per workspace,
named :func:`group_name` (``mephisto-quals:<qualification>``). The group is found, in order:

1. through our mapping table (``mephisto_quals_prolific_groups``, :mod:`mephisto_quals.store.prolific_groups`),
   if Prolific still has that group (a deleted one is forgotten);
2. by its name among the workspace's groups: a group another machine created is adopted, so
   two machines sharing a workspace share one list;
3. else it is missing: :func:`ensure_group` creates it (first use) and records the mapping.

The launch side reads :func:`mapped_groups` / :func:`find_group` to put the group ids in a
study's ``participant_group_allowlist`` / ``participant_group_blocklist`` filters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from mephisto_quals.errors import ProlificInputError
from mephisto_quals.providers.prolific.client import ProlificClient
from mephisto_quals.store import Session, session_for
from mephisto_quals.store import prolific_groups as group_store

__all__ = [
    "GROUP_PREFIX",
    "DEFAULT_WORKSPACE",
    "GroupRef",
    "group_name",
    "find_workspace",
    "find_group",
    "ensure_group",
    "mapped_groups",
]

GROUP_PREFIX = "mephisto-quals:"
#: Mephisto 1.5.2's default ``prolific_workspace_name``.
DEFAULT_WORKSPACE = "My Workspace"


@dataclass
class GroupRef:
    """A qualification's participant group in one workspace (``group_id`` None: not on Prolific yet)."""

    qualification: str
    workspace: str
    workspace_id: str
    group_name: str
    group_id: Optional[str] = None
    how: str = "missing"  # mapped | adopted (found by name) | created | missing
    members: Optional[int] = None  # participant_count as Prolific reported it

    @property
    def exists(self) -> bool:
        return self.group_id is not None


def group_name(qualification: str) -> str:
    """The participant group's name for a local qualification."""
    return f"{GROUP_PREFIX}{qualification}"


def find_workspace(client: ProlificClient, workspace: str) -> Dict[str, Any]:
    """The workspace with this title or id; raises naming the ones there are when missing."""
    found = client.workspaces()
    for w in found:
        if workspace in (w.get("id"), w.get("title")):
            return w
    titles = ", ".join(repr(w.get("title")) for w in found) or "none"
    raise ProlificInputError(f"--workspace: no Prolific workspace titled {workspace!r} (there are: {titles})")


def find_group(
    db: Any, client: ProlificClient, qualification: str, workspace: str, workspace_id: Optional[str] = None
) -> GroupRef:
    """The qualification's group in the workspace, by our mapping, else by name; only reads (locally too)."""
    wid = workspace_id or find_workspace(client, workspace)["id"]
    ref = GroupRef(qualification, workspace, wid, group_name(qualification))
    with session_for(db, None, readonly=True) as s:
        mapped = group_store.find(s.conn, qualification, wid)
    if mapped is not None:
        group = client.participant_group(mapped["group_id"])
        if group is not None:
            ref.group_id, ref.how, ref.members = group["id"], "mapped", group.get("participant_count")
            return ref
    for group in client.participant_groups(wid):
        if group.get("name") == ref.group_name and not group.get("is_deleted"):
            ref.group_id, ref.how, ref.members = group["id"], "adopted", group.get("participant_count")
            return ref
    return ref


def ensure_group(db: Any, client: ProlificClient, ref: GroupRef, session: Optional[Session] = None) -> GroupRef:
    """Create the group if missing and record the mapping (created, adopted or re-pointed)."""
    if ref.group_id is None:
        created = client.create_participant_group(
            ref.workspace_id,
            ref.group_name,
            f"Holders of the Mephisto qualification '{ref.qualification}' (kept in step by mephisto-quals sync)",
        )
        ref.group_id, ref.how, ref.members = created["id"], "created", 0
    with session_for(db, session) as s, s.transaction() as conn:
        mapped = group_store.find(conn, ref.qualification, ref.workspace_id)
        if mapped is None or mapped["group_id"] != ref.group_id:
            group_store.record(conn, ref.qualification, ref.workspace_id, ref.group_id, ref.group_name, time.time())
    return ref


def mapped_groups(db: Any, qualification: Optional[str] = None) -> List[Dict[str, Any]]:
    """Our recorded mappings (all, or one qualification's): qualification, workspace_id, group_id,
    group_name, created_at, synced_at, synced_members. Reads the local database only."""
    with session_for(db, None, readonly=True) as s:
        if qualification is None:
            return group_store.all_groups(s.conn)
        return group_store.for_qualification(s.conn, qualification)
