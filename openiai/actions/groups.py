"""Group management: CreateGroup, DeleteGroup, GetGroupInfo, GetGroupList, ModifyGroup."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..core.errors import ApiError, value
from ..core.clock import now_ms
from ..store.faces import delete_persons
from ..store.repo import find_group, get_group
from ..store.schema import Group, Membership
from . import limits
from .registry import Context, action


def group_info(g: Group) -> dict:
    return {
        "GroupName": g.name, "GroupId": g.group_id, "GroupExDescriptions": list(g.ex_descriptions),
        "Tag": g.tag, "FaceModelVersion": g.face_model_version,
        "CreationTimestamp": g.created_ms, "UpdateTimestamp": g.updated_ms,
    }


def _name_taken(s, account_id: int, name: str, except_pk: int | None = None) -> bool:
    q = select(Group.pk).where(Group.account_id == account_id, Group.name == name)
    if except_pk is not None:
        q = q.where(Group.pk != except_pk)
    return s.scalar(q.limit(1)) is not None


def _name_exists() -> ApiError:
    return value("GroupNameAlreadyExist", "A group with this GroupName already exists.")


@action("CreateGroup")
def create_group(ctx: Context, req) -> dict:
    gid = limits.group_id(req.GroupId)
    name = limits.group_name(req.GroupName)
    names = limits.ex_description_names(req.GroupExDescriptions or [])
    tag = limits.tag(req.Tag)
    version = limits.face_model_version(req.FaceModelVersion)
    with ctx.services.db.write() as s:
        if find_group(s, ctx.account_id, gid) is not None:
            raise value("GroupIdAlreadyExist", f"Group `{gid}` already exists.")
        if _name_taken(s, ctx.account_id, name):
            raise _name_exists()
        count = s.scalar(select(func.count(Group.pk)).where(Group.account_id == ctx.account_id))
        if count >= limits.GROUPS_PER_ACCOUNT:
            raise value("GroupNumExceed", f"An account may hold at most "
                        f"{limits.GROUPS_PER_ACCOUNT:,} groups.")
        now = now_ms()
        s.add(Group(account_id=ctx.account_id, group_id=gid, name=name, tag=tag,
                    ex_descriptions=names, face_model_version=version,
                    created_ms=now, updated_ms=now))
        try:
            s.flush()
        except IntegrityError:  # a concurrent CreateGroup won the race
            raise value("GroupIdAlreadyExist", f"Group `{gid}` already exists.") from None
    return {"FaceModelVersion": version}


@action("DeleteGroup")
def delete_group(ctx: Context, req) -> dict:
    with ctx.services.db.write() as s:
        group = get_group(s, ctx.account_id, req.GroupId)
        member_pks = list(s.scalars(select(Membership.person_pk)
                                    .where(Membership.group_pk == group.pk)))
        s.delete(group)
        s.flush()
        # The docs: a person who is left in no group is deleted with its faces.
        orphan_check(s, member_pks, ctx.account_id)
    return {}


def orphan_check(s, person_pks: list[int], account_id: int) -> list[int]:
    """Delete persons (with their faces) that belong to no group any more."""
    if not person_pks:
        return []
    still = set(s.scalars(select(Membership.person_pk)
                          .where(Membership.person_pk.in_(person_pks)).distinct()))
    orphans = [pk for pk in person_pks if pk not in still]
    delete_persons(s, account_id, orphans)  # the one path that removes faces (index hook)
    return orphans


@action("GetGroupInfo")
def get_group_info(ctx: Context, req) -> dict:
    with ctx.services.db.read() as s:
        return group_info(get_group(s, ctx.account_id, req.GroupId))


@action("GetGroupList")
def get_group_list(ctx: Context, req) -> dict:
    offset, limit = limits.page(req.Offset, req.Limit, default_limit=10, max_limit=1000)
    with ctx.services.db.read() as s:
        total = s.scalar(select(func.count(Group.pk)).where(Group.account_id == ctx.account_id))
        rows = s.scalars(select(Group).where(Group.account_id == ctx.account_id)
                         .order_by(Group.created_ms, Group.pk).offset(offset).limit(limit))
        return {"GroupInfos": [group_info(g) for g in rows], "GroupNum": total}


@action("ModifyGroup")
def modify_group(ctx: Context, req) -> dict:
    name = limits.group_name(req.GroupName) if req.GroupName is not None else None
    tag = limits.tag(req.Tag) if req.Tag is not None else None
    with ctx.services.db.write() as s:
        group = get_group(s, ctx.account_id, req.GroupId)
        if name is not None and name != group.name:
            if _name_taken(s, ctx.account_id, name, except_pk=group.pk):
                raise _name_exists()
            group.name = name
        if tag is not None:
            group.tag = tag
        if req.GroupExDescriptionInfos:
            group.ex_descriptions = _apply_ex_changes(list(group.ex_descriptions),
                                                      req.GroupExDescriptionInfos)
        group.updated_ms = now_ms()
    return {}


def _apply_ex_changes(names: list[str], changes) -> list[str]:
    """Rename field ``index`` (0-based), or add it when ``index`` is the next free slot."""
    for change in changes:
        index, text = change.GroupExDescriptionIndex, change.GroupExDescription
        if index is None or text is None:
            raise ApiError("MissingParameter", "Each GroupExDescriptionInfos item needs "
                           "GroupExDescriptionIndex and GroupExDescription.")
        limits.ex_description_name(text)
        if index < len(names):
            names[index] = text
        elif index == len(names) and index < limits.EX_DESCRIPTIONS_MAX:
            names.append(text)
        else:
            raise value("GroupExDescriptionsExceed",
                        f"GroupExDescriptionIndex {index} is out of range: the group has "
                        f"{len(names)} fields and may have at most {limits.EX_DESCRIPTIONS_MAX}.")
    if len(set(names)) != len(names):
        raise ApiError("FailedOperation.DuplicatedGroupDescription",
                       "Group ex-description field names must be unique within the group.")
    return names
