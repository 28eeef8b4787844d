"""The seam between the services and a search engine: what :class:`VectorIndex` promises.

It is drawn at the level a remote engine (Milvus, ...) can implement, with no slots, bitmaps or
files in it:

* A *collection* holds the faces and persons of one (account, model version); its vectors are
  as wide as that version's recognizer (:func:`openiai.core.versions.get`). Faces and persons
  are named by their database primary keys. A person is stored once whatever the number of
  its groups; group membership only acts as a filter (a face is in a group when its person is).
* Writes arrive as the change log (:class:`openiai.core.changes.Change`) through
  :meth:`VectorIndex.apply`, idempotent by sequence number: a change at or below
  :attr:`VectorIndex.last_seq` is skipped, so the log can be replayed from any earlier point.
* A rebuild replaces everything with what the database holds: :meth:`VectorIndex.clear`, one
  :meth:`VectorIndex.bulk_load` per collection, then :meth:`VectorIndex.finish_rebuild` with
  the log position the tables were read at.
* Persistence is the engine's choice, told by :attr:`VectorIndex.persistent`:

  - ``False`` (the in-process FAISS engine): the content lives in this process.
    :meth:`VectorIndex.snapshot` / :meth:`VectorIndex.load` write and read it under a local
    directory, and IndexSync loads the newest snapshot at start and writes new ones as the
    log grows.
  - ``True`` (an engine behind a server): the engine keeps its content and ``last_seq``
    durable by itself, so that ``last_seq`` after a restart names what it holds. IndexSync
    then never calls ``snapshot`` / ``load`` (an engine may raise ``NotImplementedError``
    there), resumes from ``last_seq`` at start and prunes the log behind it.

The database stays the truth either way: IndexSync (:mod:`openiai.services.index_sync`) is
the only code that feeds an engine, and it rebuilds whenever the engine's position does not
fit the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, NamedTuple, Protocol, runtime_checkable

from ..core.changes import Change


class Hit(NamedTuple):
    face: int | None  # face pk (None for a person-level hit)
    person: int  # person pk
    score: float  # cosine similarity (inner product of unit vectors)


@runtime_checkable
class VectorIndex(Protocol):
    """Face and person search over every (account, model version), fed by the change log.

    Conventions for every search: ``queries`` is one vector or a (q, dim) stack (the engine
    normalises them); the answer has one entry per query, best hit first. ``group_pks`` None
    searches the whole collection; an empty list, or groups nobody is in, finds nothing. An
    unknown collection, or ``k <= 0``, finds nothing.
    """

    persistent: bool
    """True when the engine keeps its content and :attr:`last_seq` durable by itself."""

    @property
    def last_seq(self) -> int:
        """Sequence number of the last change applied (0 after :meth:`clear`)."""

    # ---------------------------------------------------------------- writes
    def apply(self, changes: Iterable[Change]) -> int:
        """Apply changes in seq order, skipping those at or below :attr:`last_seq`; returns
        the new :attr:`last_seq`. Applying the same changes twice changes nothing."""

    def clear(self) -> None:
        """Forget every collection and set :attr:`last_seq` to 0 (a rebuild begins)."""

    def bulk_load(self, account, version: str, *, face_pks, face_person_pks, face_vectors,
                  person_pks, person_vectors, member_person_pks, member_group_pks) -> None:
        """Replace one collection with this content (the rebuild-from-database path).

        Faces: ``face_pks`` / ``face_person_pks`` / ``face_vectors`` (n x dim) row by row.
        Persons with a fused vector: ``person_pks`` / ``person_vectors``. Memberships:
        ``member_person_pks`` / ``member_group_pks`` pairwise. A person named only by faces or
        memberships is stored without a fused vector (found by face search only).
        """

    def finish_rebuild(self, seq: int) -> None:
        """The collections bulk-loaded since :meth:`clear` hold the database as of log
        position ``seq``: it becomes :attr:`last_seq`."""

    # ---------------------------------------------------------------- reads
    def collections(self) -> list[tuple[Any, str]]:
        """The (account, version) pairs the engine holds a collection for (one emptied by
        removals may stay listed)."""

    def counts(self, account, version: str) -> dict[str, int]:
        """``{"faces": faces stored, "persons": persons stored (with or without a fused
        vector)}`` of one collection; zeros when it does not exist."""

    def group_counts(self, account, version: str, group_pks: Iterable[int]) -> dict[str, int]:
        """``{"faces": ..., "persons": ...}`` a search of `group_pks` would look at: the faces
        of persons in any of the groups, and those persons that have a fused vector."""

    def search_faces(self, account, version: str, queries, group_pks: Iterable[int] | None, k: int,
                     unique_persons: bool = True) -> list[list[Hit]]:
        """Top-k faces per query among the faces of persons in `group_pks`. With
        `unique_persons` (what SearchFaces returns) each person appears once, with its best
        face."""

    def search_persons(self, account, version: str, queries, group_pks: Iterable[int] | None,
                       k: int) -> list[list[Hit]]:
        """Top-k persons per query by fused vector, among persons in `group_pks` (hits have
        ``face`` None)."""

    def search_faces_by_group(self, account, version: str, queries, group_pks: Iterable[int], k: int,
                              unique_persons: bool = True) -> list[dict[int, list[Hit]]]:
        """Per query, {group pk: :meth:`search_faces` within that group alone}; groups with
        no hit are left out."""

    def search_persons_by_group(self, account, version: str, queries, group_pks: Iterable[int],
                                k: int) -> list[dict[int, list[Hit]]]:
        """Per query, {group pk: :meth:`search_persons` within that group alone}; groups with
        no hit are left out."""

    # ---------------------------------------------------------------- local snapshots
    def snapshot(self, directory, seq: int | None = None) -> Path:
        """Write everything, tagged with `seq` (default :attr:`last_seq`), as the newest
        snapshot under `directory`, atomically; returns its path. Only called when
        :attr:`persistent` is False."""

    def load(self, directory) -> int:
        """Replace everything with the newest snapshot under `directory` and return its seq
        (0, and empty, when there is none). Only called when :attr:`persistent` is False."""


def by_group(search, n_queries: int, group_pks: Iterable[int]) -> list[dict[int, list[Hit]]]:
    """The ``*_by_group`` answers from a one-filter search: per query, {group pk:
    ``search([group pk])[query]``} for each distinct group, groups with no hit left out."""
    out: list[dict[int, list[Hit]]] = [{} for _ in range(n_queries)]
    for g in dict.fromkeys(int(g) for g in group_pks):
        for i, row in enumerate(search([g])):
            if row:
                out[i][g] = row
    return out
