"""Person management: CreatePerson, DeletePerson, DeletePersonFromGroup, GetPersonGroupInfo,
GetPersonBaseInfo, GetPersonList, GetPersonListNum, ModifyPersonGroupInfo,
ModifyPersonBaseInfo, CopyPerson.

A person belongs to one account (PersonId is unique per account) and to 1-100 groups of one
FaceModelVersion; its values for a group's ex-description fields live on the membership,
aligned to the group's field list (fields added to the group later read as "").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..core.errors import ApiError, failed, value
from ..core.clock import now_ms
from ..core.timing import stage
from ..services.hits import STALE_SLACK, live_hits
from ..store.faces import add_face, delete_persons
from ..store.repo import (
    ex_values, find_person, get_group, get_person, group_counts, membership, person_face_ids,
    person_group_count, person_infos,
)
from ..vision.scores import score_for_far, score_from_cosine
from ..store.schema import Face, Group, Membership, Person
from . import imaging, limits
from .groups import orphan_check
from .registry import Context, action


# --- the image -> face pipeline (CreatePerson, CreateFace) ----------------------------------

@dataclass
class NewFace:
    rect: dict  # FaceRect: X, Y, Width, Height
    feature: np.ndarray  # (dim,) float32 unit vector under model_version
    model_version: str  # the FaceModelVersion `feature` was extracted for
    crop: bytes  # the encoded canonical crop (vision.canonical), kept for re-extraction
    crop_landmarks: np.ndarray  # (5, 2) the face's landmarks in the crop's pixels


def extract_face(ctx: Context, image_b64: str | None, url: str | None, *, model_version: str,
                 quality: int, rotate: bool) -> NewFace:
    """The largest face of one image: load, detect, QualityControl, align, embed, and cut the
    canonical crop.

    Raises the documented image codes, NoFaceInPhoto and FaceQualityNotQualified."""
    img, face = imaging.largest_face(ctx, image_b64, url, rotate=rotate, quality=quality)
    pipeline = ctx.services.faces
    feature = pipeline.feature(img.pixels, face, model_version)
    crop, crop_landmarks = pipeline.canonical_crop(img.pixels, face)
    return NewFace(imaging.face_rect(face), feature, model_version, crop, crop_landmarks)


def store_face(s, ctx: Context, person: Person, new: NewFace) -> Face:
    r = new.rect
    return add_face(s, account_id=ctx.account_id, person_pk=person.pk,
                    model_version=person.face_model_version,
                    rect=(r["X"], r["Y"], r["Width"], r["Height"]),
                    features={new.model_version: new.feature}, crop=new.crop,
                    crop_landmarks=new.crop_landmarks)


def find_similar_person(ctx: Context, group: Group, feature: np.ndarray, level: int) -> str | None:
    """UniquePersonControl (1-4): the PersonId of a suspected duplicate in the group, or None.

    The group's faces are searched in the vector index (each face on its own, like SearchFaces,
    so one close photo of an enrolled person is enough). The best live hit counts as a
    duplicate when its score reaches the score of the level's false-accept rate
    (1: 1e-2, 2: 1e-3, 3: 1e-4, 4: 1e-5; ``vision.scores.score_for_far``): the higher the
    level, the surer the match must be before creation is refused.
    """
    far = {1: 1e-2, 2: 1e-3, 3: 1e-4, 4: 1e-5}[level]
    version = group.face_model_version
    with stage("search"):
        rows = ctx.services.index.search_faces(ctx.account_id, version, feature[None, :],
                                               [group.pk], 1 + STALE_SLACK, unique_persons=True)
    hits = live_hits(ctx.services.db, ctx.account_id, rows, [group.pk])[0]  # deleted faces/persons dropped, best first
    if not hits or score_from_cosine(hits[0].score, version) < score_for_far(far, version):
        return None
    with ctx.services.db.read() as s:
        return s.scalar(select(Person.person_id).where(Person.account_id == ctx.account_id,
                                                       Person.pk == hits[0].person))


# --- shared helpers -------------------------------------------------------------------------

def _person_exists() -> ApiError:
    return value("PersonIdAlreadyExist", "A person with this PersonId already exists.")


def _member(s, account_id: int, group_id: str, person_id: str):
    """(group, person, membership) of a person in a group, or the documented error."""
    group = get_group(s, account_id, group_id)
    person = get_person(s, account_id, person_id)
    m = membership(s, group.pk, person.pk)
    if m is None:
        raise _not_in_group(person_id, group_id)
    return group, person, m


def _not_in_group(person_id: str, group_id: str) -> ApiError:
    return failed("GroupPersonMapNotExist", f"Person `{person_id}` is not in group `{group_id}`.")


# --- actions --------------------------------------------------------------------------------

@action("CreatePerson")
def create_person(ctx: Context, req) -> dict:
    limits.group_id(req.GroupId)
    pid = limits.person_id(req.PersonId)
    name = limits.person_name(req.PersonName)
    gender = limits.gender(req.Gender)
    unique = limits.unique_person_control(req.UniquePersonControl)
    quality = limits.quality_control(req.QualityControl)
    rotate = imaging.flag(req.NeedRotateDetection)
    if not req.Image and not req.Url:
        raise value("ImageEmpty", "CreatePerson needs a face image: give Image or Url.")
    # Cheap checks before the image work; repeated in the write transaction below.
    with ctx.services.db.read() as s:
        group = get_group(s, ctx.account_id, req.GroupId)
        limits.person_ex_infos(req.PersonExDescriptionInfos, len(group.ex_descriptions or []))
        if find_person(s, ctx.account_id, pid) is not None:
            raise _person_exists()
        version = group.face_model_version
    new = extract_face(ctx, req.Image, req.Url, model_version=version, quality=quality,
                       rotate=rotate)
    if unique:
        similar = find_similar_person(ctx, group, new.feature, unique)
        if similar:  # the docs: no person is created; the suspected duplicate is returned
            return {"FaceId": "", "FaceRect": new.rect, "SimilarPersonId": similar,
                    "FaceModelVersion": version}
    with ctx.services.db.write() as s:
        group = get_group(s, ctx.account_id, req.GroupId)
        fields = len(group.ex_descriptions or [])
        given = limits.person_ex_infos(req.PersonExDescriptionInfos, fields)
        if find_person(s, ctx.account_id, pid) is not None:
            raise _person_exists()
        now = now_ms()
        person = Person(account_id=ctx.account_id, person_id=pid, name=name, gender=gender,
                        face_model_version=group.face_model_version, created_ms=now)
        s.add(person)
        try:
            s.flush()
        except IntegrityError:  # a concurrent CreatePerson won the race
            raise _person_exists() from None
        s.add(Membership(group_pk=group.pk, person_pk=person.pk, created_ms=now,
                         ex_descriptions=[given.get(i, "") for i in range(fields)]))
        face = store_face(s, ctx, person, new)
        return {"FaceId": face.face_id, "FaceRect": new.rect, "SimilarPersonId": "",
                "FaceModelVersion": person.face_model_version}


@action("DeletePerson")
def delete_person(ctx: Context, req) -> dict:
    with ctx.services.db.write() as s:
        person = get_person(s, ctx.account_id, req.PersonId)
        delete_persons(s, ctx.account_id, [person.pk])
    return {}


@action("DeletePersonFromGroup")
def delete_person_from_group(ctx: Context, req) -> dict:
    with ctx.services.db.write() as s:
        _, person, m = _member(s, ctx.account_id, req.GroupId, req.PersonId)
        s.delete(m)
        s.flush()
        # The docs: a person who was only in this group is deleted with all its faces.
        orphan_check(s, [person.pk], ctx.account_id)
    return {}


@action("GetPersonGroupInfo")
def get_person_group_info(ctx: Context, req) -> dict:
    offset, limit = limits.page(req.Offset, req.Limit, default_limit=10,
                                max_limit=limits.PERSON_GROUP_INFO_MAX_LIMIT)
    with ctx.services.db.read() as s:
        person = get_person(s, ctx.account_id, req.PersonId)
        total = person_group_count(s, person.pk)
        rows = s.execute(
            select(Group, Membership).join(Membership, Membership.group_pk == Group.pk)
            .where(Membership.person_pk == person.pk, Group.account_id == ctx.account_id)
            .order_by(Membership.created_ms, Group.pk).offset(offset).limit(limit)).all()
        return {"PersonGroupInfos": [{"GroupId": g.group_id, "PersonExDescriptions": ex_values(m, g)}
                                     for g, m in rows],
                "GroupNum": total, "FaceModelVersion": person.face_model_version}


@action("GetPersonBaseInfo")
def get_person_base_info(ctx: Context, req) -> dict:
    with ctx.services.db.read() as s:
        person = get_person(s, ctx.account_id, req.PersonId)
        return {"PersonName": person.name, "Gender": person.gender,
                "FaceIds": person_face_ids(s, person.pk)}


@action("GetPersonList")
def get_person_list(ctx: Context, req) -> dict:
    offset, limit = limits.page(req.Offset, req.Limit, default_limit=10,
                                max_limit=limits.PERSON_LIST_MAX_LIMIT)
    with ctx.services.db.read() as s:
        group = get_group(s, ctx.account_id, req.GroupId)
        persons, faces = group_counts(s, group.pk)
        rows = s.execute(
            select(Person, Membership).join(Membership, Membership.person_pk == Person.pk)
            .where(Membership.group_pk == group.pk, Person.account_id == ctx.account_id)
            .order_by(Membership.created_ms, Person.pk).offset(offset).limit(limit)).all()
        infos = person_infos(s, ctx.account_id, group, rows)
        return {"PersonInfos": infos, "PersonNum": persons, "FaceNum": faces,
                "FaceModelVersion": group.face_model_version}


@action("GetPersonListNum")
def get_person_list_num(ctx: Context, req) -> dict:
    with ctx.services.db.read() as s:
        group = get_group(s, ctx.account_id, req.GroupId)
        persons, faces = group_counts(s, group.pk)
        return {"PersonNum": persons, "FaceNum": faces}


@action("ModifyPersonGroupInfo")
def modify_person_group_info(ctx: Context, req) -> dict:
    with ctx.services.db.write() as s:
        group, _, m = _member(s, ctx.account_id, req.GroupId, req.PersonId)
        given = limits.person_ex_infos(req.PersonExDescriptionInfos,
                                       len(group.ex_descriptions or []))
        values = ex_values(m, group)
        for index, text in given.items():
            values[index] = text
        m.ex_descriptions = values  # a new list, so the JSON column is marked dirty
    return {}


@action("ModifyPersonBaseInfo")
def modify_person_base_info(ctx: Context, req) -> dict:
    name = limits.person_name(req.PersonName) if req.PersonName is not None else None
    gender = limits.gender(req.Gender) if req.Gender is not None else None
    with ctx.services.db.write() as s:
        person = get_person(s, ctx.account_id, req.PersonId)
        if name is not None:
            person.name = name
        if gender is not None:
            person.gender = gender
    return {}


@action("CopyPerson")
def copy_person(ctx: Context, req) -> dict:
    group_ids = list(dict.fromkeys(req.GroupIds or []))  # order kept, repeats dropped
    if not group_ids:
        raise ApiError("MissingParameter", "CopyPerson needs at least one GroupIds item.")
    if len(group_ids) > limits.COPY_GROUP_IDS_MAX:
        raise value("GroupIdsExceed", f"GroupIds may name at most {limits.COPY_GROUP_IDS_MAX} "
                    "groups (a person can be in at most 100 groups).")
    with ctx.services.db.write() as s:
        person = get_person(s, ctx.account_id, req.PersonId)
        groups = [get_group(s, ctx.account_id, gid) for gid in group_ids]
        for g in groups:
            if g.face_model_version != person.face_model_version:
                raise failed("AcrossVersionsError",
                             f"Person `{person.person_id}` uses FaceModelVersion "
                             f"{person.face_model_version}; group `{g.group_id}` uses "
                             f"{g.face_model_version}. A person cannot be copied across "
                             "algorithm model versions.")
        current = set(s.scalars(select(Membership.group_pk)
                                .where(Membership.person_pk == person.pk)))
        new = [g for g in groups if g.pk not in current]
        if len(current) + len(new) > limits.GROUPS_PER_PERSON:
            raise value("GroupNumPerPersonExceed",
                        f"A person can be in at most {limits.GROUPS_PER_PERSON} groups; "
                        f"`{person.person_id}` is in {len(current)} and {len(new)} more were "
                        "asked for.")
        now = now_ms()
        for g in new:  # the docs: the description values are not copied
            s.add(Membership(group_pk=g.pk, person_pk=person.pk, created_ms=now,
                             ex_descriptions=[""] * len(g.ex_descriptions or [])))
        return {"SucGroupNum": len(new), "SucGroupIds": [g.group_id for g in new]}


def person_face_count(s, account_id: int, person_pk: int) -> int:
    return s.scalar(select(func.count(Face.pk)).where(Face.account_id == account_id,
                                                      Face.person_pk == person_pk)) or 0
