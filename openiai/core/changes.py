"""The vocabulary of the vector index's change log, shared by the writer (store) and the
reader (index): neither imports the other.

Change kinds (payload keys in brackets):

=================== ============================= =============================================
face_upsert         {face, person, vector}        insert or replace one face
face_remove         {faces: [pk, ...]}
person_upsert       {person, vector, groups?}     fused vector; groups (optional) = full list
person_remove       {persons: [pk, ...]}          also drops the persons' faces
memberships_add     {person, groups: [...]}
memberships_remove  {person, groups: [...]}
group_remove        {group}                       every membership of the group
collection_drop     {}                            the whole (account, version)
=================== ============================= =============================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = frozenset({
    "face_upsert", "face_remove", "person_upsert", "person_remove", "memberships_add",
    "memberships_remove", "group_remove", "collection_drop",
})


@dataclass(frozen=True)
class Change:
    """One committed change: ``seq`` orders the log, (account, version) names the collection."""

    seq: int
    kind: str
    account: Any
    version: str
    payload: dict = field(default_factory=dict)
