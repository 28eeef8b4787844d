"""Vectors re-extracted from the stored canonical crops, for faces that lack one under the
FaceModelVersion they are served with.

That happens to 2.0 faces stored while 2.0 was embedded by SFace (migration 0004 moves those
vectors aside). The server does not wait for it at start-up: the index-writing process queues
a background job (kind ``reextract_missing``, :mod:`.jobs`; :func:`queue_if_needed`) that
re-extracts them batch by batch at the jobs' share of a core, and every face is searchable on
its own version's recognizer again as its batch commits (until then such a face is not in the
index: it has no vector to be found by). Each face goes the way a
re-extraction must: its crop (:mod:`openiai.vision.canonical`) and the 5 landmarks stored in
the crop's pixels, aligned by the version's recognizer with its own template. The writes are
ordinary ones (a ``face_upsert`` per face and the person's re-fused vector in the change log),
in batches, so a restart after a kill picks up where it stopped. :func:`reextract_missing`
does the same synchronously, for tools.
"""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import and_, exists, func, select

from ..core.clock import now_ms
from ..core.features import to_bytes
from ..store import changes
from ..store.db import Database
from ..store.schema import Face, FaceFeature
from ..vision.canonical import decode_crop
from ..vision.types import Face as DetectedFace
from . import jobs
from .faces import FacePipeline

log = logging.getLogger("openiai.reextract")
BATCH = 64
KIND = "reextract_missing"


def _has_own():
    return exists().where(and_(FaceFeature.face_pk == Face.pk,
                               FaceFeature.model_version == Face.face_model_version))


def _missing(s, limit: int):
    return s.execute(select(Face.pk, Face.account_id, Face.person_pk, Face.face_model_version,
                            Face.crop_image, Face.crop_landmarks)
                     .where(~_has_own()).order_by(Face.pk).limit(limit)).all()


def missing_count(s) -> int:
    return s.scalar(select(func.count(Face.pk)).where(~_has_own())) or 0


def crop_face(crop: bytes, landmarks) -> tuple[np.ndarray, DetectedFace]:
    """A stored crop's pixels and the face in them, as a recognizer's ``align`` takes it."""
    pixels = decode_crop(crop)
    h, w = pixels.shape[:2]
    return pixels, DetectedFace(box=np.array([0, 0, w, h], np.float32), score=1.0,
                                landmarks=np.asarray(landmarks, np.float32).reshape(5, 2))


def _extract(pipeline: FacePipeline, rows) -> dict:
    vectors = {}
    for version in {r.face_model_version for r in rows}:
        mine = [r for r in rows if r.face_model_version == version]
        feats = pipeline.features_of([crop_face(r.crop_image, r.crop_landmarks) for r in mine],
                                     version)
        vectors.update({r.pk: v for r, v in zip(mine, feats)})
    return vectors


def _write(s, rows, vectors: dict) -> int:
    """Store the vectors of the faces that still exist on the same version and still lack
    one (requests run beside the job: a face may be deleted or its group upgraded meanwhile)."""
    pks = [r.pk for r in rows]
    still = set(s.execute(select(Face.pk, Face.face_model_version)
                          .where(Face.pk.in_(pks), ~_has_own())).all())
    now = now_ms()
    written = 0
    for r in rows:
        if (r.pk, r.face_model_version) not in still:
            continue
        s.add(FaceFeature(face_pk=r.pk, model_version=r.face_model_version,
                          vector=to_bytes(vectors[r.pk]), created_ms=now))
        changes.record(s, r.account_id, r.face_model_version, "face_upsert",
                       {"face": r.pk, "person": r.person_pk}, vectors[r.pk])
        changes.mark_person(s, r.person_pk)
        written += 1
    return written


def reextract_missing(db: Database, pipeline: FacePipeline, batch: int = BATCH) -> int:
    """Give every face a vector under its own version; returns how many were extracted."""
    done = 0
    while True:
        with db.read() as s:
            rows = _missing(s, batch)
        if not rows:
            break
        vectors = _extract(pipeline, rows)
        with db.write() as s:
            _write(s, rows, vectors)
        done += len(rows)
        log.info("re-extracted %d face vectors from stored crops", done)
    return done


def queue_if_needed(db: Database) -> bool:
    """Queue the re-extraction job when faces lack their own vector and none is queued."""
    with db.read() as s:  # one row at most: cheap on a large database
        if not s.scalar(select(Face.pk).where(~_has_own()).limit(1)):
            return False
    with db.write() as s:
        if jobs.unfinished(s, KIND):
            return False
        jobs.submit(s, kind=KIND, account_id=None, params={}, tag="reextract")
    return True


@jobs.kind(KIND)
def step(job: jobs.JobStep) -> None:
    """One batch; a face whose crop cannot be read fails the job (it says which)."""
    db, pipeline = job.services.db, job.services.faces
    done = int(job.checkpoint.get("done", 0))
    total = job.checkpoint.get("total")
    with db.read() as s:
        rows = _missing(s, job.batch)
        if total is None:  # counted once: the count scans every face, a batch takes a few
            total = done + missing_count(s)
    if not rows:
        with job.finish({"faces": done}, {"done": done, "total": total}):
            return
    try:
        vectors = _extract(pipeline, rows)
    except Exception as exc:
        raise jobs.JobFailed(f"faces {[r.pk for r in rows]}: {type(exc).__name__}: {exc}")
    done += len(rows)
    with job.save({"done": done, "total": total}, 100.0 * done / max(1, total)) as s:
        _write(s, rows, vectors)
    log.info("re-extracted %d face vectors from stored crops", done)
