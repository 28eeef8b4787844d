"""Every write and delete of face rows goes through here.

These are the only places that create or remove a face or delete a person, so each records
its change for the vector index (:mod:`openiai.store.changes`) in the same transaction.
Callers pass the open write session; all functions stay inside the caller's transaction.
"""

from __future__ import annotations

import secrets

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..core.clock import now_ms
from ..core.features import to_bytes
from . import changes
from .schema import Face, FaceFeature, Person


def new_face_id() -> str:
    """A random 19-digit string, shaped like Tencent's FaceIds (e.g. "2875186538564559728")."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


def add_face(s: Session, *, account_id: int, person_pk: int, model_version: str,
             rect: tuple[int, int, int, int], features: dict[str, np.ndarray], crop: bytes,
             crop_landmarks, quality: float | None = None) -> Face:
    """Store one face of a person; returns the row (``face_id`` set, ``pk`` after flush).

    ``model_version`` is the version the face is served under (its person's); ``features``
    holds its vector under that version and any others already extracted. ``crop`` is the
    encoded canonical crop and ``crop_landmarks`` the 5 landmarks (5, 2) in its pixels."""
    if model_version not in features:
        raise ValueError(f"no feature vector under the face's own version {model_version}")
    x, y, w, h = rect
    now = now_ms()
    face = Face(account_id=account_id, face_id=new_face_id(), person_pk=person_pk,
                face_model_version=model_version, x=x, y=y, width=w, height=h,
                crop_image=crop, crop_landmarks=landmarks_json(crop_landmarks),
                quality=quality, created_ms=now)
    s.add(face)
    s.flush()
    s.add_all(FaceFeature(face_pk=face.pk, model_version=version, vector=to_bytes(vector),
                          created_ms=now) for version, vector in features.items())
    changes.record(s, account_id, model_version, "face_upsert",
                   {"face": face.pk, "person": person_pk}, features[model_version])
    changes.mark_person(s, person_pk)
    return face


def landmarks_json(points) -> list[list[float]]:
    """[[x, y], ...] rounded to 1/1000 px: short JSON, precision far below a pixel."""
    return [[round(float(x), 3), round(float(y), 3)] for x, y in np.asarray(points).reshape(-1, 2)]


def delete_faces(s: Session, account_id: int, face_pks: list[int]) -> int:
    """Delete faces by primary key (of this account only); returns how many went."""
    if not face_pks:
        return 0
    gone = 0
    for start in range(0, len(face_pks), 500):
        chunk = face_pks[start:start + 500]
        where = (Face.account_id == account_id, Face.pk.in_(chunk))
        by_version: dict[str, list[int]] = {}
        for pk, person_pk, version in s.execute(
                select(Face.pk, Face.person_pk, Face.face_model_version).where(*where)):
            by_version.setdefault(version, []).append(pk)
            changes.mark_person(s, person_pk)
        gone += s.execute(delete(Face).where(*where)).rowcount or 0
        for version, pks in by_version.items():
            changes.record(s, account_id, version, "face_remove", {"faces": pks})
    return gone


def delete_persons(s: Session, account_id: int, person_pks: list[int]) -> None:
    """Delete persons with their faces (memberships go by cascade)."""
    if not person_pks:
        return
    for start in range(0, len(person_pks), 500):
        chunk = person_pks[start:start + 500]
        face_pks = list(s.scalars(select(Face.pk).where(Face.account_id == account_id,
                                                        Face.person_pk.in_(chunk))))
        delete_faces(s, account_id, face_pks)
        where = (Person.account_id == account_id, Person.pk.in_(chunk))
        by_version: dict[str, list[int]] = {}
        for pk, version in s.execute(select(Person.pk, Person.face_model_version).where(*where)):
            by_version.setdefault(version, []).append(pk)
        s.execute(delete(Person).where(*where))
        for version, pks in by_version.items():
            changes.record(s, account_id, version, "person_remove", {"persons": pks})
