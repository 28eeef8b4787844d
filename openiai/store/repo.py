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
