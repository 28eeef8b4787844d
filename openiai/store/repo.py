"""Tenant-scoped lookups. Every query filters on ``account_id``: this is the wall between
accounts, so actions never query the tables without going through here or adding it themselves.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..core.errors import value
from .schema import Face, Group, Membership, Person


def find_group(s: Session, account_id: int, group_id: str) -> Group | None:
    return s.scalar(select(Group).where(Group.account_id == account_id,
                                        Group.group_id == group_id))


def get_group(s: Session, account_id: int, group_id: str) -> Group:
    group = find_group(s, account_id, group_id)
    if group is None:
        raise value("GroupIdNotExist", f"Group `{group_id}` does not exist.")
    return group


def find_person(s: Session, account_id: int, person_id: str) -> Person | None:
    return s.scalar(select(Person).where(Person.account_id == account_id,
                                         Person.person_id == person_id))


def get_person(s: Session, account_id: int, person_id: str) -> Person:
    person = find_person(s, account_id, person_id)
    if person is None:
        raise value("PersonIdNotExist", f"Person `{person_id}` does not exist.")
    return person


def person_face_ids(s: Session, person_pk: int) -> list[str]:
    return list(s.scalars(select(Face.face_id).where(Face.person_pk == person_pk)
                          .order_by(Face.created_ms, Face.pk)))


def membership(s: Session, group_pk: int, person_pk: int) -> Membership | None:
    return s.get(Membership, (group_pk, person_pk))


def group_counts(s: Session, group_pk: int) -> tuple[int, int]:
    """(persons, faces) in a group."""
    persons = s.scalar(select(func.count()).select_from(Membership)
                       .where(Membership.group_pk == group_pk)) or 0
    faces = s.scalar(select(func.count(Face.pk)).join(Membership,
                     Membership.person_pk == Face.person_pk)
                     .where(Membership.group_pk == group_pk)) or 0
    return persons, faces


def person_group_count(s: Session, person_pk: int) -> int:
    return s.scalar(select(func.count()).select_from(Membership)
                    .where(Membership.person_pk == person_pk)) or 0


def ex_values(m: Membership, group: Group) -> list[str]:
    """The person's ex-description values for the group, one per group field."""
    values = list(m.ex_descriptions or [])
    n = len(group.ex_descriptions or [])
    return (values + [""] * n)[:n]


# --- reads for the web console (openiai.console): tenant-scoped like everything above ------

def group_persons_page(s: Session, account_id: int, group: Group, text: str, offset: int,
                       limit: int) -> tuple[int, list[dict]]:
    """(matches, one page of them) of the persons in ``group`` whose PersonId or PersonName
    contains ``text`` (case-insensitive), in GetPersonList's order and shape."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    match = (func.lower(Person.person_id).like(pattern.lower(), escape="\\")
             | func.lower(Person.name).like(pattern.lower(), escape="\\"))
    where = (Membership.group_pk == group.pk, Person.account_id == account_id, match)
    base = select(Person, Membership).join(Membership, Membership.person_pk == Person.pk)
    total = s.scalar(select(func.count()).select_from(Person)
                     .join(Membership, Membership.person_pk == Person.pk).where(*where)) or 0
    rows = s.execute(base.where(*where).order_by(Membership.created_ms, Person.pk)
                     .offset(offset).limit(limit)).all()
    return total, person_infos(s, account_id, group, rows)


def person_infos(s: Session, account_id: int, group: Group, rows) -> list[dict]:
    """GetPersonList's PersonInfos for (person, membership) rows of ``group``."""
    face_ids: dict[int, list[str]] = {p.pk: [] for p, _ in rows}
    if face_ids:
        for person_pk, face_id in s.execute(
                select(Face.person_pk, Face.face_id)
                .where(Face.account_id == account_id, Face.person_pk.in_(list(face_ids)))
                .order_by(Face.created_ms, Face.pk)):
            face_ids[person_pk].append(face_id)
    return [{"PersonName": p.name, "PersonId": p.person_id, "Gender": p.gender,
             "PersonExDescriptions": ex_values(m, group), "FaceIds": face_ids[p.pk],
             "CreationTimestamp": p.created_ms} for p, m in rows]


def face_crop(s: Session, account_id: int, face_id: str) -> bytes | None:
    """The stored canonical crop of one of the account's faces; None for any other face."""
    return s.scalar(select(Face.crop_image).where(Face.account_id == account_id,
                                                  Face.face_id == face_id))
