"""Vectors re-extracted from the stored canonical crops, for faces that lack one under the
FaceModelVersion they are served with.

That happens to 2.0 faces stored while 2.0 was embedded by SFace (migration 0004 moves those
vectors aside): the server runs :func:`reextract_missing` on start-up, before the index loads,
so every face is searchable on its own version's recognizer again. Each face goes the way a
re-extraction must: its crop (:mod:`openiai.vision.canonical`) and the 5 landmarks stored in
the crop's pixels, aligned by the version's recognizer with its own template. The writes are
ordinary ones (a ``face_upsert`` per face and the person's re-fused vector in the change log),
in batches, so a restart after a kill picks up where it stopped.
"""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import and_, exists, select

from ..core.clock import now_ms
from ..core.features import to_bytes
from ..store import changes
from ..store.db import Database
from ..store.schema import Face, FaceFeature
from ..vision.canonical import decode_crop
from ..vision.types import Face as DetectedFace
from .faces import FacePipeline

log = logging.getLogger("openiai.reextract")
BATCH = 64


def _missing(s, limit: int):
    has_own = exists().where(and_(FaceFeature.face_pk == Face.pk,
                                  FaceFeature.model_version == Face.face_model_version))
    return s.execute(select(Face.pk, Face.account_id, Face.person_pk, Face.face_model_version,
                            Face.crop_image, Face.crop_landmarks)
                     .where(~has_own).order_by(Face.pk).limit(limit)).all()


def crop_face(crop: bytes, landmarks) -> tuple[np.ndarray, DetectedFace]:
    """A stored crop's pixels and the face in them, as a recognizer's ``align`` takes it."""
    pixels = decode_crop(crop)
    h, w = pixels.shape[:2]
    return pixels, DetectedFace(box=np.array([0, 0, w, h], np.float32), score=1.0,
                                landmarks=np.asarray(landmarks, np.float32).reshape(5, 2))


def reextract_missing(db: Database, pipeline: FacePipeline, batch: int = BATCH) -> int:
    """Give every face a vector under its own version; returns how many were extracted."""
    done = 0
    while True:
        with db.read() as s:
            rows = _missing(s, batch)
        if not rows:
            break
        vectors = {}
        for version in {r.face_model_version for r in rows}:
            mine = [r for r in rows if r.face_model_version == version]
            feats = pipeline.features_of([crop_face(r.crop_image, r.crop_landmarks) for r in mine],
                                         version)
            vectors.update({r.pk: v for r, v in zip(mine, feats)})
        with db.write() as s:
            now = now_ms()
            for r in rows:
                s.add(FaceFeature(face_pk=r.pk, model_version=r.face_model_version,
                                  vector=to_bytes(vectors[r.pk]), created_ms=now))
                changes.record(s, r.account_id, r.face_model_version, "face_upsert",
                               {"face": r.pk, "person": r.person_pk}, vectors[r.pk])
                changes.mark_person(s, r.person_pk)
        done += len(rows)
        log.info("re-extracted %d face vectors from stored crops", done)
    return done
