"""Upgrading a group's FaceModelVersion (UpgradeGroupFaceModelVersion) and reverting it.

The job (kind ``upgrade_group``, :mod:`.jobs`) works in two phases:

1. **extract**: every face of the group's persons, in primary-key order, gets a vector under
   the new version, re-extracted from its stored canonical crop (:mod:`openiai.vision.canonical`)
   with the new version's recognizer and alignment. These vectors are stored beside the old
   ones and serve nothing yet: the group keeps answering on its old version. Faces added while
   the job runs have larger keys, so the scan reaches them too. A face whose crop cannot be
   read or embedded is noted (FaceId, PersonId, reason) and the scan goes on.
2. **switch**, in one write transaction (writers are serialised, so no face can be acknowledged
   between the check and the switch): any face of the group still without a new-version
   vector is caught up there; then the group, its persons and their faces move to the new
   version, and the index learns it through ordinary change-log entries (the persons leave
   the old version's collection, their faces and fused vectors enter the new one). Searches
   before the commit use the old version, after it the new one; no acknowledged face is ever
   unsearchable on the group's current version.

A job with failed faces does not switch: it ends with Status 3 and FailedFacesUrl, a signed
half-hour link (:mod:`.links`) to ``{"GroupId", "FailedFaces": [{"FaceId", "PersonId",
"Reason"}]}``. A group whose persons also belong to other groups cannot be upgraded alone (a
person's faces are embedded under one version, so all its groups share it): refused at the
call (GroupCannotUpgrade), or, for a person copied in during the job, the job fails.

:func:`revert` switches a finished upgrade back the same way (old vectors were kept; faces
enrolled since the switch are re-extracted from their crops first). One revert per group.
"""

from __future__ import annotations

import json
import logging

import numpy as np
from sqlalchemy import and_, exists, func, select, update

from ..core import versions
from ..core.clock import now_ms
from ..core.errors import failed
from ..core.features import fuse, to_bytes
from ..store import changes
from ..store.schema import Face, FaceFeature, Group, Job, Membership, Person
from . import jobs
from .reextract import crop_face

log = logging.getLogger("openiai.upgrade")

KIND = "upgrade_group"
JOB_TAG = "upgrade_group"
# GetUpgradeGroupFaceModelVersionResult's Status: 0 upgrading, 1 upgraded, 2 reverted,
# 3 upgrade failed.
UPGRADING, UPGRADED, REVERTED, UPGRADE_FAILED = 0, 1, 2, 3
CHUNK = 500


def wire_status(job: Job) -> int:
    if job.status in jobs.UNFINISHED:
        return UPGRADING
    if job.status == jobs.FAILED:
        return UPGRADE_FAILED
    return REVERTED if (job.result or {}).get("reverted_ms") else UPGRADED


def failed_file(job_id: str) -> str:
    return f"upgrade/{job_id}/failed_faces.json"


# --------------------------------------------------------------------------- queries

def _group_faces(group_pk: int):
    """Faces of the group's persons (a select to refine)."""
    return (select(Face.pk).join(Membership, Membership.person_pk == Face.person_pk)
            .where(Membership.group_pk == group_pk))


def _has(version: str):
    return exists().where(and_(FaceFeature.face_pk == Face.pk,
                               FaceFeature.model_version == version))


def _face_rows(s, face_pks: list[int]):
    return s.execute(select(Face.pk, Face.face_id, Face.crop_image, Face.crop_landmarks,
                            Person.person_id)
                     .join(Person, Person.pk == Face.person_pk)
                     .where(Face.pk.in_(face_pks)).order_by(Face.pk)).all()


def shared_persons(s, group_pk: int) -> list[str]:
    """PersonIds of the group's members that also belong to another group."""
    other = (select(Membership.person_pk).where(Membership.group_pk != group_pk))
    return list(s.scalars(
        select(Person.person_id).join(Membership, Membership.person_pk == Person.pk)
        .where(Membership.group_pk == group_pk, Person.pk.in_(other)).limit(20)))


def missing_vectors(s, group_pk: int, version: str, limit: int) -> list[int]:
    """Faces of the group without a vector under ``version`` (a few, lowest keys first)."""
    return list(s.scalars(_group_faces(group_pk).where(~_has(version))
                          .order_by(Face.pk).limit(limit)))


# --------------------------------------------------------------------------- extraction

def extract(pipeline, rows, version: str) -> tuple[dict[int, np.ndarray], list[dict]]:
    """Vectors under ``version`` from stored crops: ({face pk: vector}, [failure, ...])."""
    items, ok, failures = [], [], []
    for r in rows:
        try:
            items.append(crop_face(r.crop_image, r.crop_landmarks))
            ok.append(r)
        except Exception as exc:  # an unreadable crop: the face is reported, not served wrong
            failures.append(_failure(r, exc))
    vectors: dict[int, np.ndarray] = {}
    if items:
        try:
            feats = pipeline.features_of(items, version)
            vectors = {r.pk: v for r, v in zip(ok, feats)}
        except Exception:  # one bad face spoils the batch: go one by one to find it
            for r, item in zip(ok, items):
                try:
                    vectors[r.pk] = pipeline.features_of([item], version)[0]
                except Exception as exc:
                    failures.append(_failure(r, exc))
    return vectors, failures


def _failure(row, exc: Exception) -> dict:
    return {"FaceId": row.face_id, "PersonId": row.person_id,
            "Reason": f"{type(exc).__name__}: {exc}"[:200]}


def _store(s, vectors: dict[int, np.ndarray], version: str) -> None:
    """New-version vectors, not served yet (no index change); an existing one is kept."""
    if not vectors:
        return
    have = set(s.scalars(select(FaceFeature.face_pk).where(
        FaceFeature.face_pk.in_(list(vectors)), FaceFeature.model_version == version)))
    alive = set(s.scalars(select(Face.pk).where(Face.pk.in_(list(vectors)))))
    now = now_ms()
    s.add_all(FaceFeature(face_pk=pk, model_version=version, vector=to_bytes(v), created_ms=now)
              for pk, v in vectors.items() if pk not in have and pk in alive)


# --------------------------------------------------------------------------- the switch

class SwitchRefused(Exception):
    """The group cannot switch as it stands (the message says why)."""


def switch(s, pipeline, group: Group, to_version: str) -> int:
    """Move ``group`` with its persons and faces to ``to_version`` inside the write session
    ``s``; returns how many faces moved. Faces still lacking a vector under the new version are
    extracted here, under the write lock (a few at most: the caller caught up before)."""
    from_version = group.face_model_version
    if shared_persons(s, group.pk):
        raise SwitchRefused("persons of the group also belong to other groups: "
                            + ", ".join(shared_persons(s, group.pk)))
    for _ in range(1000):
        late = missing_vectors(s, group.pk, to_version, 64)
        if not late:
            break
        vectors, failures = extract(pipeline, _face_rows(s, late), to_version)
        if failures:
            raise SwitchRefused(json.dumps(failures))
        _store(s, vectors, to_version)
        s.flush()
    person_pks = list(s.scalars(select(Membership.person_pk).where(Membership.group_pk == group.pk)
                                .order_by(Membership.person_pk)))
    moved = 0
    now = now_ms()
    for start in range(0, len(person_pks), CHUNK):
        chunk = person_pks[start:start + CHUNK]
        changes.record(s, group.account_id, from_version, "person_remove", {"persons": chunk})
        s.execute(update(Person).where(Person.pk.in_(chunk))
                  .values(face_model_version=to_version))
        s.execute(update(Face).where(Face.person_pk.in_(chunk))
                  .values(face_model_version=to_version))
        rows = s.execute(select(Face.pk, Face.person_pk, FaceFeature.vector)
                         .join(FaceFeature, and_(FaceFeature.face_pk == Face.pk,
                                                 FaceFeature.model_version == to_version))
                         .where(Face.person_pk.in_(chunk))
                         .order_by(Face.person_pk, Face.created_ms, Face.pk)).all()
        by_person: dict[int, list[np.ndarray]] = {}
        for face_pk, person_pk, blob in rows:
            vector = np.frombuffer(blob, "<f4")
            changes.record(s, group.account_id, to_version, "face_upsert",
                           {"face": face_pk, "person": person_pk}, vector)
            by_person.setdefault(person_pk, []).append(vector)
            moved += 1
        groups: dict[int, list[int]] = {}
        for person_pk, group_pk in s.execute(select(Membership.person_pk, Membership.group_pk)
                                             .where(Membership.person_pk.in_(chunk))):
            groups.setdefault(person_pk, []).append(group_pk)
        for person_pk in chunk:
            vecs = by_person.get(person_pk)
            changes.record(s, group.account_id, to_version, "person_upsert",
                           {"person": person_pk, "groups": sorted(groups.get(person_pk, []))},
                           fuse(np.stack(vecs)) if vecs else None)
    group.face_model_version = to_version
    group.updated_ms = now
    return moved


# --------------------------------------------------------------------------- the job

def check_upgrade(s, group: Group, to_version: str) -> None:
    """The documented refusals of UpgradeGroupFaceModelVersion (raises ApiError)."""
    current = versions.get(group.face_model_version)
    target = versions.get(to_version)
    if float(target.name) <= float(current.name):
        raise failed("GroupCannotUpgrade",
                     f"Group `{group.group_id}` uses FaceModelVersion {current.name}; it can "
                     f"only be upgraded to a newer version, not to {target.name}.")
    if jobs.unfinished(s, KIND, group_pk=group.pk):
        raise failed("GroupCannotUpgrade",
                     f"An upgrade of group `{group.group_id}` is already running.")
    shared = shared_persons(s, group.pk)
    if shared:
        raise failed("GroupCannotUpgrade",
                     f"Persons of group `{group.group_id}` also belong to other groups "
                     f"({', '.join(shared[:5])}{', ...' if len(shared) > 5 else ''}); a "
                     "person's groups share one FaceModelVersion, so the group cannot be "
                     "upgraded alone.")


def submit(s, account_id: int, group: Group, to_version: str) -> Job:
    check_upgrade(s, group, to_version)
    return jobs.submit(s, kind=KIND, account_id=account_id, tag=JOB_TAG,
                       params={"group_pk": group.pk, "group_id": group.group_id,
                               "from": group.face_model_version, "to": to_version})


@jobs.kind(KIND)
def step(job: jobs.JobStep) -> None:
    p, cp = job.params, dict(job.checkpoint)
    db, pipeline = job.services.db, job.services.faces
    after, done = int(cp.get("after", 0)), int(cp.get("done", 0))
    failures = list(cp.get("failed", []))
    with db.read() as s:
        group = s.get(Group, p["group_pk"])
        if group is None:
            raise jobs.JobFailed(f"group `{p['group_id']}` was deleted during the upgrade")
        if group.face_model_version != p["from"]:
            raise jobs.JobFailed(f"group `{p['group_id']}` changed version during the upgrade")
        pks = list(s.scalars(_group_faces(group.pk).where(Face.pk > after)
                             .order_by(Face.pk).limit(job.batch)))
        late: list[int] = []
        if pks:  # the next batch of the scan
            todo = s.scalars(select(Face.pk).where(Face.pk.in_(pks), ~_has(p["to"]))).all()
            rows = _face_rows(s, list(todo))
            left = s.scalar(select(func.count()).select_from(
                _group_faces(group.pk).where(Face.pk > pks[-1]).subquery())) or 0
        elif not failures:  # scan over: faces enrolled behind it (rare) before the switch
            late = missing_vectors(s, group.pk, p["to"], job.batch)
            rows, left = (_face_rows(s, late) if late else []), 0
    if not pks and failures:
        _fail(job, p, failures, done)
    if pks or late:
        vectors, new_failures = extract(pipeline, rows, p["to"])
        failures += new_failures
        done += len(pks) + len(late)
        cp.update(after=pks[-1] if pks else after, done=done, failed=failures)
        if late and new_failures:  # late faces that cannot be read: no endless retry
            _fail(job, p, failures, done)
        with job.save(cp, min(99.0, 100.0 * done / max(1, done + left))) as s:
            _store(s, vectors, p["to"])
        return
    try:
        with job.finish({"faces": done, "failed": 0}, cp) as s:
            group = s.get(Group, p["group_pk"])
            if group is None or group.face_model_version != p["from"]:
                raise SwitchRefused(f"group `{p['group_id']}` was deleted or changed")
            moved = switch(s, pipeline, group, p["to"])
            log.info("group %s switched to %s: %d faces", p["group_id"], p["to"], moved)
    except SwitchRefused as exc:
        raise jobs.JobFailed(str(exc)) from None


def _fail(job: jobs.JobStep, p: dict, failures: list[dict], done: int):
    job.services.links.write(failed_file(job.job_id), json.dumps(
        {"GroupId": p["group_id"], "FailedFaces": failures}, ensure_ascii=False).encode())
    raise jobs.JobFailed(f"{len(failures)} faces could not be re-extracted",
                         {"faces": done, "failed": len(failures),
                          "failed_file": failed_file(job.job_id)})


# --------------------------------------------------------------------------- revert

def revert(services, account_id: int, job: Job) -> None:
    """RevertGroupFaceModelVersion: the group back to the job's old version (one revert per
    group). Raises the documented errors."""
    p = job.params
    if job.status != jobs.DONE or (job.result or {}).get("reverted_ms"):
        raise failed("JobCannnotRollback", f"Job `{job.job_id}` cannot be reverted: "
                     + ("it was reverted already." if (job.result or {}).get("reverted_ms")
                        else "the upgrade has not completed."))
    db, pipeline = services.db, services.faces
    with db.read() as s:
        _check_revert(s, account_id, job)
    # Faces enrolled since the switch lack an old-version vector: extracted outside the lock.
    while True:
        with db.read() as s:
            late = missing_vectors(s, p["group_pk"], p["from"], 64)
            rows = _face_rows(s, late) if late else []
        if not rows:
            break
        vectors, failures = extract(pipeline, rows, p["from"])
        if failures:
            raise failed("JobCannnotRollback", f"{len(failures)} faces of the group cannot be "
                         "re-extracted under the old version; first: " + failures[0]["Reason"])
        with db.write() as s:
            _store(s, vectors, p["from"])
    with db.write() as s:
        row = _check_revert(s, account_id, job)
        group = s.get(Group, p["group_pk"])
        try:
            switch(s, pipeline, group, p["from"])
        except SwitchRefused as exc:
            raise failed("JobCannnotRollback", f"Job `{job.job_id}` cannot be reverted: {exc}")
        row.result = {**(row.result or {}), "reverted_ms": now_ms()}


def _check_revert(s, account_id: int, job: Job) -> Job:
    p = job.params
    row = s.get(Job, job.pk)
    group = s.get(Group, p["group_pk"])
    if group is None or group.account_id != account_id:
        raise failed("JobCannnotRollback", f"Group `{p['group_id']}` of job `{job.job_id}` "
                     "no longer exists.")
    if group.face_model_version != p["to"]:
        raise failed("JobCannnotRollback", f"Group `{p['group_id']}` is no longer on "
                     f"FaceModelVersion {p['to']}.")
    reverted = [j.job_id for j in s.scalars(select(Job).where(
        Job.kind == KIND, Job.account_id == account_id)) if j.params.get("group_pk") == group.pk
        and (j.result or {}).get("reverted_ms")]
    if reverted or (row.result or {}).get("reverted_ms"):
        raise failed("JobCannnotRollback", f"Group `{p['group_id']}` was reverted once "
                     f"already (job {reverted[0] if reverted else job.job_id}); a group can be "
                     "reverted only once.")
    if jobs.unfinished(s, KIND, group_pk=group.pk):
        raise failed("JobCannnotRollback", f"An upgrade of group `{p['group_id']}` is running.")
    return row

