"""The groups a request's GroupIds name, checked as every action over several groups checks
them (the SearchFaces/SearchPersons family and the duplicate-person check): the ids, that
each group exists, that they share one FaceModelVersion, and what they hold.

What they hold comes from the index's cached group filter
(:meth:`openiai.index.VectorIndex.group_counts`), not from the tables: a COUNT over them took
1.6 s at 1M faces on SQLite. Every person keeps at least one face (DeleteFace refuses the
last), so the persons with a fused vector are the persons of the groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from ..core import versions
from ..core.errors import ApiError, failed, value
from ..store.schema import Group
from . import limits
from .registry import Context


@dataclass
class Searched:
    groups: list[Group]  # in GroupIds order
    version: str
    faces: int  # distinct faces in the groups (FaceNum)
    persons: int  # distinct persons in the groups (PersonNum)

    @property
    def pks(self) -> list[int]:
        return [g.pk for g in self.groups]


def group_ids(raw: Sequence[str] | None, max_groups: int) -> list[str]:
    """GroupIds: order kept, a repeat counted once, 1 to ``max_groups`` valid ids."""
    ids = list(dict.fromkeys(raw or []))
    if not ids:
        raise ApiError("MissingParameter", "GroupIds must name at least one group.")
    if len(ids) > max_groups:
        raise value("GroupIdsExceed", f"GroupIds may name at most {max_groups} groups; it "
                    f"names {len(ids)}.")
    return [limits.group_id(g) for g in ids]


def _require_person_search(groups: list[Group]) -> None:
    for g in groups:
        known = versions.VERSIONS.get(g.face_model_version)  # None: an own version since removed
        if known is None or not known.person_search:
            raise value("UnsupportedGroupFaceModelVersion",
                        f"Group `{g.group_id}` has FaceModelVersion {g.face_model_version}; "
                        "person search is available only for FaceModelVersion 3.0 groups.")


def searched(ctx: Context, group_ids: list[str], *, persons: bool = False,
             each_version_first: bool = False) -> Searched:
    """The groups of ``group_ids`` (from :func:`group_ids`) with their one FaceModelVersion
    and what they hold.

    Errors: GroupIdNotExist for the first id of no group of the account; AcrossVersionsError
    when the groups' versions differ; with ``persons``, UnsupportedGroupFaceModelVersion for
    a version without person search - after the versions check, or before it with
    ``each_version_first`` (CheckSimilarPerson: a group not of 3.0 is refused as such even
    beside a 3.0 group)."""
    with ctx.services.db.read() as s:
        by_id = {g.group_id: g for g in s.scalars(select(Group).where(
            Group.account_id == ctx.account_id, Group.group_id.in_(group_ids)))}
    missing = [gid for gid in group_ids if gid not in by_id]
    if missing:
        raise value("GroupIdNotExist", f"Group `{missing[0]}` does not exist.")
    groups = [by_id[gid] for gid in group_ids]
    if persons and each_version_first:
        _require_person_search(groups)
    used = {g.face_model_version for g in groups}
    if len(used) > 1:
        raise failed("AcrossVersionsError",
                     "Groups of different FaceModelVersions cannot be searched together: "
                     + ", ".join(f"`{g.group_id}` {g.face_model_version}" for g in groups))
    version = used.pop()
    if persons:
        _require_person_search(groups[:1])
    counts = ctx.services.index.group_counts(ctx.account_id, version, [g.pk for g in groups])
    return Searched(groups, version, counts["faces"], counts["persons"])
