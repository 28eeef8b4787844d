"""Every write and delete of face rows goes through here.

The vector index (a later issue) hooks in at :func:`add_face`, :func:`delete_faces` and
:func:`delete_persons`: these are the only places that create or remove a face, so an index
kept beside the database only has to follow them. Callers pass the open write session; all
functions stay inside the caller's transaction.
"""

from __future__ import annotations

import secrets

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .db import now_ms
from .schema import Face, Person

FEATURE_DTYPE = np.dtype("<f4")  # float32 little-endian


def new_face_id() -> str:
    """A random 19-digit string, shaped like Tencent's FaceIds (e.g. "2875186538564559728")."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


def feature_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=FEATURE_DTYPE).tobytes()


def feature_array(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=FEATURE_DTYPE)


def crop_png(crop: np.ndarray) -> bytes:
    """PNG of a BGR uint8 crop (the aligned 112x112 face)."""
    import cv2

    ok, buf = cv2.imencode(".png", crop)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 HxWx3 array
        raise RuntimeError("could not encode the aligned face as PNG")
    return buf.tobytes()


def add_face(s: Session, *, account_id: int, person_pk: int, model_version: str,
             rect: tuple[int, int, int, int], feature: np.ndarray, crop: np.ndarray,
             quality: float | None = None) -> Face:
    """Store one face of a person; returns the row (``face_id`` set, ``pk`` after flush)."""
    x, y, w, h = rect
    face = Face(account_id=account_id, face_id=new_face_id(), person_pk=person_pk,
                face_model_version=model_version, x=x, y=y, width=w, height=h,
                feature=feature_bytes(feature), aligned_crop=crop_png(crop),
                quality=quality, created_ms=now_ms())
    s.add(face)
    s.flush()
    # VECTOR-INDEX HOOK: index.add(face.pk, feature) goes here.
    return face


def delete_faces(s: Session, account_id: int, face_pks: list[int]) -> int:
    """Delete faces by primary key (of this account only); returns how many went."""
    if not face_pks:
        return 0
    gone = 0
    for start in range(0, len(face_pks), 500):
        chunk = face_pks[start:start + 500]
        gone += s.execute(delete(Face).where(Face.account_id == account_id,
                                             Face.pk.in_(chunk))).rowcount or 0
    # VECTOR-INDEX HOOK: index.remove(face_pks) goes here.
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
        s.execute(delete(Person).where(Person.account_id == account_id, Person.pk.in_(chunk)))
