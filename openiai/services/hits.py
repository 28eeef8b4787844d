"""Index hits checked against the live database rows.

The vector index may lag the database by a moment, so every hit is checked before it is
returned: a face or person deleted since, or a person no longer in a searched group, is
dropped; callers ask the index for :data:`STALE_SLACK` extra candidates to make up for them.
"""

from __future__ import annotations

from typing import Collection, Iterable, Sequence

from sqlalchemy import select

from ..index import Hit
from ..store.db import Database
from ..store.repo import ex_values
from ..store.schema import Face, Group, Membership, Person

# Hits the index may return for rows deleted a moment ago; asking for this many more keeps
# MaxPersonNum candidates after they are dropped.
STALE_SLACK = 5
_CHUNK = 500  # IN-list size per query (SQLite's bound-parameter limit)


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Rows:
    """The database rows behind a batch of index hits, loaded with a few IN queries.

    ``keep`` is what makes stale hits harmless: the face (for face hits) and the person must
    still exist in this account, the face must still belong to the person, and the person must
    still be in one of the allowed groups.
    """

    def __init__(self, s, account_id: int, hits: Iterable[Hit], group_pks: Collection[int]):
        hits = list(hits)
        person_pks = sorted({h.person for h in hits})
        face_pks = sorted({h.face for h in hits if h.face is not None})
        groups = list(group_pks)
        self.persons: dict[int, Person] = {}
        self.faces: dict[int, tuple[str, int]] = {}  # face pk -> (FaceId, person pk)
        self.members: set[tuple[int, int]] = set()  # (person pk, group pk)
        for chunk in _chunks(person_pks):
            self.persons.update((p.pk, p) for p in s.scalars(
                select(Person).where(Person.account_id == account_id, Person.pk.in_(chunk))))
            self.members.update(s.execute(
                select(Membership.person_pk, Membership.group_pk)
                .where(Membership.person_pk.in_(chunk), Membership.group_pk.in_(groups))).all())
        for chunk in _chunks(face_pks):
            self.faces.update((pk, (fid, ppk)) for pk, fid, ppk in s.execute(
                select(Face.pk, Face.face_id, Face.person_pk)
                .where(Face.account_id == account_id, Face.pk.in_(chunk))))

    def keep(self, hit: Hit, group_pks: Iterable[int]) -> bool:
        if hit.person not in self.persons:
            return False
        if hit.face is not None:
            face = self.faces.get(hit.face)
            if face is None or face[1] != hit.person:
                return False
        return any((hit.person, g) in self.members for g in group_pks)

    def face_id(self, hit: Hit) -> str:
        return self.faces[hit.face][0] if hit.face is not None else ""


def person_group_infos(s, account_id: int, person_pks: Collection[int]) -> dict[int, list[dict]]:
    """PersonGroupInfos per person: every group that holds the person, with its values of the
    group's ex-description fields (in the order GetPersonGroupInfo lists them)."""
    out: dict[int, list[dict]] = {pk: [] for pk in person_pks}
    for chunk in _chunks(sorted(person_pks)):
        rows = s.execute(
            select(Membership, Group).join(Group, Group.pk == Membership.group_pk)
            .where(Membership.person_pk.in_(chunk), Group.account_id == account_id)
            .order_by(Membership.person_pk, Membership.created_ms, Group.pk)).all()
        for m, g in rows:
            out[m.person_pk].append({"GroupId": g.group_id,
                                     "PersonExDescriptions": ex_values(m, g)})
    return out


def live_hits(db: Database, account_id: int, rows: list[list[Hit]],
              group_pks: Collection[int]) -> list[list[Hit]]:
    """``rows`` with every stale hit dropped (see :class:`Rows`); order kept."""
    with db.read() as s:
        live = Rows(s, account_id, (h for row in rows for h in row), group_pks)
    return [[h for h in row if live.keep(h, group_pks)] for row in rows]
