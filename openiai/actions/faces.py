"""Face management: CreateFace and DeleteFace.

CreateFace reports per image (RetCode, in the order of Images/Urls) and fails as a whole only
for the call-level codes: ImageEmpty, UploadFaceNumExceed (over 4 images in one call),
PersonFaceNumExceed (the person would pass 5 faces), FaceMatchThresholdIllegal,
QualityControlIllegal, PersonIdNotExist.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from ..core.errors import ApiError, value
from ..store.face_features import person_features
from ..store.faces import delete_faces
from ..store.repo import get_person
from ..store.schema import Face
from ..vision.scores import score
from . import imaging, limits, retcodes
from .persons import extract_face, person_face_count, store_face
from .registry import Context, action


@action("CreateFace")
def create_face(ctx: Context, req) -> dict:
    threshold = limits.face_match_threshold(req.FaceMatchThreshold)
    quality = limits.quality_control(req.QualityControl)
    rotate = imaging.flag(req.NeedRotateDetection)
    use_urls = bool(req.Urls)  # the docs: with both given, only Urls are used
    sources = list(req.Urls if use_urls else (req.Images or []))
    if not sources:
        raise value("ImageEmpty", "CreateFace needs Images or Urls.")
    if len(sources) > limits.UPLOAD_FACES_MAX:
        raise value("UploadFaceNumExceed",
                    f"Up to {limits.UPLOAD_FACES_MAX} faces can be uploaded at a time.")
    with ctx.services.db.read() as s:
        person = get_person(s, ctx.account_id, req.PersonId)
        version = person.face_model_version
        _check_face_room(person_face_count(s, ctx.account_id, person.pk), len(sources))
        features = person_features(s, ctx.account_id, person.pk, version)
    existing = features if len(features) else None

    ret_codes: list[int] = []
    accepted = []  # (index, NewFace)
    for index, src in enumerate(sources):
        try:
            new = extract_face(ctx, None if use_urls else src, src if use_urls else None,
                               model_version=version, quality=quality, rotate=rotate)
        except ApiError as err:
            ret_codes.append(retcodes.for_error(err.code))
            continue
        if existing is not None:
            # Compared with the faces the person had when the call began.
            best = score(float(np.max(existing @ new.feature)), version)
            if not best > threshold:  # the docs: "above the value of FaceMatchThreshold"
                ret_codes.append(retcodes.BELOW_THRESHOLD)
                continue
        ret_codes.append(retcodes.OK)
        accepted.append((index, new))

    face_ids, rects = [], []
    if accepted:
        with ctx.services.db.write() as s:
            person = get_person(s, ctx.account_id, req.PersonId)
            _check_face_room(person_face_count(s, ctx.account_id, person.pk), len(accepted))
            for _, new in accepted:
                face_ids.append(store_face(s, ctx, person, new).face_id)
                rects.append(new.rect)
    return {"SucFaceNum": len(face_ids), "SucFaceIds": face_ids, "RetCode": ret_codes,
            "SucIndexes": [i for i, _ in accepted], "SucFaceRects": rects,
            "FaceModelVersion": version}


def _check_face_room(have: int, adding: int) -> None:
    if have + adding > limits.FACES_PER_PERSON:
        raise value("PersonFaceNumExceed",
                    f"A person can have at most {limits.FACES_PER_PERSON} faces; this one has "
                    f"{have} and {adding} more were given.")


@action("DeleteFace")
def delete_face(ctx: Context, req) -> dict:
    wanted = list(dict.fromkeys(req.FaceIds or []))  # order kept, repeats dropped
    with ctx.services.db.write() as s:
        person = get_person(s, ctx.account_id, req.PersonId)
        own = dict(s.execute(select(Face.face_id, Face.pk).where(
            Face.account_id == ctx.account_id, Face.person_pk == person.pk)).all())
        hits = [fid for fid in wanted if fid in own]
        if hits and len(own) - len(hits) < 1:
            raise value("DeleteFaceNumExceed", "Every person must keep at least one face; "
                        f"person `{person.person_id}` has {len(own)}.")
        delete_faces(s, ctx.account_id, [own[fid] for fid in hits])
    return {"SucDeletedNum": len(hits), "SucFaceIds": hits}
