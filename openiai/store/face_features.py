"""Reading the stored feature vectors (``face_features``).

A face can hold vectors under several FaceModelVersions; everything that serves it (search
index, verification, duplicate checks) reads the one under the version it is served with,
``Face.face_model_version``, which is the person's. Writes go through :mod:`.faces`.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session

from ..core import versions
from ..core.features import from_bytes
from .schema import Face, FaceFeature


def person_face_features(s: Session, account_id: int, person_pk: int,
                         version: str) -> tuple[list[str], np.ndarray]:
    """(FaceIds, (n, dim) float32 vectors under ``version``) of a person's faces, oldest first."""
    rows = s.execute(
        select(Face.face_id, FaceFeature.vector)
        .join(FaceFeature, FaceFeature.face_pk == Face.pk)
        .where(Face.account_id == account_id, Face.person_pk == person_pk,
               FaceFeature.model_version == version)
        .order_by(Face.created_ms, Face.pk)).all()
    return [r[0] for r in rows], _stack([r[1] for r in rows], version)


def person_features(s: Session, account_id: int, person_pk: int, version: str) -> np.ndarray:
    """(n, dim) float32 vectors of a person's faces under ``version`` (n may be 0)."""
    return person_face_features(s, account_id, person_pk, version)[1]


def face_vectors(s: Session) -> Result:
    """Every face with the vector it is served with, for an index rebuild: rows of
    (account_id, face_model_version, face pk, person pk, float32 LE bytes), ordered by
    account, version and person (a person's faces are one run)."""
    return s.execute(
        select(Face.account_id, Face.face_model_version, Face.pk, Face.person_pk,
               FaceFeature.vector)
        .join(FaceFeature, (FaceFeature.face_pk == Face.pk)
              & (FaceFeature.model_version == Face.face_model_version))
        .order_by(Face.account_id, Face.face_model_version, Face.person_pk))


def _stack(blobs: list[bytes], version: str) -> np.ndarray:
    if blobs:
        return np.stack([from_bytes(b) for b in blobs])
    known = versions.VERSIONS.get(version)
    return np.zeros((0, known.dim if known else 0), np.float32)
