"""Change-log entries decoded into write calls: the one place that reads each kind's payload.

An engine implements :class:`Writes` (eight verbs, one per change kind) and calls
:func:`apply_change` for every change above its ``last_seq``. Every verb must leave the same
state when called twice with the same arguments, so that a change replayed after a crash
(applied, but ``last_seq`` not yet recorded) does no harm.
"""

from __future__ import annotations

from typing import Callable, Protocol

from ..core.changes import KINDS, Change


class Writes(Protocol):
    def upsert_face(self, account, version: str, face_pk: int, person_pk: int, vector) -> None:
        """Insert or replace one face (its person is created when new)."""

    def remove_faces(self, account, version: str, face_pks: list[int]) -> int:
        """Drop these faces (unknown ones are ignored); returns how many were stored."""

    def set_person(self, account, version: str, person_pk: int, fused_vector,
                   group_pks: list[int] | None = None) -> None:
        """Create or update a person: a fused vector (None: keep the stored one) and, when
        `group_pks` is given, exactly these groups."""

    def remove_persons(self, account, version: str, person_pks: list[int]) -> int:
        """Drop these persons with their faces and memberships; returns how many were stored."""

    def add_memberships(self, account, version: str, person_pk: int, group_pks: list[int]) -> None:
        ...

    def remove_memberships(self, account, version: str, person_pk: int, group_pks: list[int]) -> None:
        ...

    def remove_group(self, account, version: str, group_pk: int) -> None:
        """Every membership of the group goes (its persons stay)."""

    def drop(self, account, version: str) -> None:
        """The whole collection goes."""


def _ints(values) -> list[int]:
    return [int(v) for v in values]


def _face_upsert(w: Writes, a, v, p: dict) -> None:
    w.upsert_face(a, v, int(p["face"]), int(p["person"]), p["vector"])


def _person_upsert(w: Writes, a, v, p: dict) -> None:
    groups = p.get("groups")
    w.set_person(a, v, int(p["person"]), p.get("vector"), None if groups is None else _ints(groups))


_DECODERS: dict[str, Callable[[Writes, object, str, dict], None]] = {
    "face_upsert": _face_upsert,
    "face_remove": lambda w, a, v, p: w.remove_faces(a, v, _ints(p["faces"])),
    "person_upsert": _person_upsert,
    "person_remove": lambda w, a, v, p: w.remove_persons(a, v, _ints(p["persons"])),
    "memberships_add": lambda w, a, v, p: w.add_memberships(a, v, int(p["person"]), _ints(p["groups"])),
    "memberships_remove": lambda w, a, v, p: w.remove_memberships(a, v, int(p["person"]), _ints(p["groups"])),
    "group_remove": lambda w, a, v, p: w.remove_group(a, v, int(p["group"])),
    "collection_drop": lambda w, a, v, p: w.drop(a, v),
}
# A kind added to the vocabulary without a decoder fails here, at import, not at its first replay.
if set(_DECODERS) != KINDS:
    raise ImportError(f"change kinds without a decoder, or unknown: {sorted(set(_DECODERS) ^ KINDS)}")


def apply_change(target: Writes, change: Change) -> None:
    """Carry out one change on `target` (the caller checks and records the seq)."""
    decode = _DECODERS.get(change.kind)
    if decode is None:
        raise ValueError(f"unknown change kind {change.kind!r}")
    decode(target, change.account, change.version, change.payload)
