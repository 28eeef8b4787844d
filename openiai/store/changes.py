"""What the vector index must learn from a write transaction, recorded inside it.

Every change that alters what a search can see is written to ``index_changes`` in the same
transaction as the rows it describes, so the log and the tables commit or vanish together.
Three routes lead here, and together they cover every write:

* :mod:`openiai.store.faces` records face inserts and deletes and person deletes (bulk
  ``DELETE`` statements, which ORM events cannot see);
* a ``before_flush`` listener notices Membership rows added or deleted through the session
  (CreatePerson, CopyPerson, DeletePersonFromGroup) and Group rows deleted (DeleteGroup);
* :func:`finish`, called by :meth:`Database.write` just before COMMIT, writes one
  ``person_upsert`` (fused vector and the full group list) for every person whose faces or
  memberships were touched, reading them back from the tables it is about to commit.

The recorded changes also ride on ``session.info`` so the writer can apply them to the
in-memory index right after the commit, without reading them back.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from ..core.changes import Change
from ..core.clock import now_ms
from ..core.features import fuse
from .face_features import person_features
from .schema import Group, IndexChange, Membership, Person

_PENDING = "index_changes"  # session.info key: list[Change] recorded in this transaction
_DIRTY = "index_dirty_persons"  # session.info key: set of person pks to re-fuse at commit


def record(s: Session, account_id: int, version: str, kind: str, payload: dict,
           vector: np.ndarray | None = None) -> None:
    row = IndexChange(account_id=account_id, face_model_version=version, kind=kind,
                      payload=payload, created_ms=now_ms(),
                      vector=None if vector is None else np.asarray(vector, "<f4").tobytes())
    s.add(row)
    s.flush()  # assigns seq
    s.info.setdefault(_PENDING, []).append(as_change(row))


def as_change(row: IndexChange) -> Change:
    payload = dict(row.payload or {})
    if row.vector is not None:
        payload["vector"] = np.frombuffer(row.vector, "<f4")
    return Change(int(row.seq), row.kind, int(row.account_id), row.face_model_version, payload)


def mark_person(s: Session, person_pk: int) -> None:
    """The person's fused vector or groups changed: re-read it before commit."""
    s.info.setdefault(_DIRTY, set()).add(int(person_pk))


def pending(s: Session) -> list[Change]:
    """The changes this transaction recorded (taken: a second call returns [])."""
    return s.info.pop(_PENDING, [])


def finish(s: Session) -> None:
    """Record a person_upsert for every touched person that still exists."""
    s.flush()  # runs the before_flush tracking for rows still pending, and makes them visible
    dirty = s.info.pop(_DIRTY, set())
    if not dirty:
        return
    persons = s.execute(select(Person.pk, Person.account_id, Person.face_model_version)
                        .where(Person.pk.in_(sorted(dirty)))).all()
    for pk, account_id, version in persons:
        vectors = person_features(s, account_id, pk, version)
        groups = sorted(s.scalars(select(Membership.group_pk).where(Membership.person_pk == pk)))
        vector = fuse(vectors) if len(vectors) else None
        record(s, account_id, version, "person_upsert", {"person": pk, "groups": groups}, vector)


@event.listens_for(Session, "before_flush")
def _track_session_writes(s: Session, _ctx, _instances) -> None:
    for obj in list(s.new) + list(s.deleted):
        if isinstance(obj, Membership) and obj.person_pk is not None:
            mark_person(s, obj.person_pk)
    for obj in list(s.deleted):
        if isinstance(obj, Group):
            # Memberships go by ON DELETE CASCADE, unseen by the ORM; one change drops them all.
            record_group_remove(s, obj)


def record_group_remove(s: Session, group: Group) -> None:
    row = IndexChange(account_id=group.account_id, face_model_version=group.face_model_version,
                      kind="group_remove", payload={"group": group.pk}, created_ms=now_ms())
    s.add(row)  # inside before_flush: flushed with the delete, seq assigned then
    s.info.setdefault("index_group_rows", []).append(row)


@event.listens_for(Session, "after_flush")
def _collect_group_rows(s: Session, _ctx) -> None:
    for row in s.info.pop("index_group_rows", []):
        s.info.setdefault(_PENDING, []).append(as_change(row))
