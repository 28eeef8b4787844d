"""The vector index: face / person search (SearchFaces, SearchPersons and their ByGroup
variants) over every (account, model version), kept equal to the database by
:mod:`openiai.services.index_sync`.

* :mod:`.engine` - the seam: :class:`VectorIndex`, the protocol every engine implements
  (change-log replay, rebuild, searches with a group filter, counts, optional local
  snapshots), and :class:`Hit`, what a search returns.
* :mod:`.manager` - :class:`IndexManager`, the in-memory engine: a table of collections,
  searches, replay and snapshots over the modules below.
* :mod:`.collection` - one (account, model version) of the in-memory engine: slots, the
  memberships and their group filters as slot bitmaps, arrays for snapshots.
* :mod:`.replay` - change-log entries decoded into write calls (shared by every engine).
* :mod:`.snapshots` - atomic snapshot directories (write, fsync, keep N, format version).
* :mod:`.backend`, :mod:`.faiss_backend` - slot-level vector spaces of the in-memory engine:
  exact ``IndexFlatIP`` below ``exact_threshold`` vectors, above it ``IVF<nlist>,PQ64x4fs``
  fast-scan candidates re-ranked on a float16 copy; filters as ``IDSelectorBitmap``; removals
  as tombstones + compaction.
* :mod:`.arrays` - compact numpy maps and the readers-writer lock.
* :mod:`.milvus_engine` - :class:`~.milvus_engine.MilvusIndex`, the same protocol on a Milvus
  server or a Milvus Lite file (persistent: no local snapshots), chosen by
  ``OPENIAI_VECTOR_URL`` through :func:`open_engine`.

Measured with ``openiai bench search`` (see openiai/bench/search.py for the numbers).
"""

from .engine import Hit, VectorIndex
from .manager import IndexManager

__all__ = ["Hit", "VectorIndex", "IndexManager", "open_engine"]


def open_engine(vector_url: str | None = None, dim: int | None = None) -> VectorIndex:
    """The engine a ``OPENIAI_VECTOR_URL`` names: none (or empty) for the in-process FAISS
    index, ``milvus://host:19530`` or ``milvus-lite:FILE.db`` (with ``?prefix=``, ``index=``,
    ``token=``) for :class:`openiai.index.milvus_engine.MilvusIndex`."""
    if not vector_url:
        return IndexManager(dim=dim)
    if vector_url.split(":", 1)[0] in ("milvus", "milvus-lite"):
        from .milvus_engine import MilvusIndex

        return MilvusIndex.from_url(vector_url, dim=dim)
    raise ValueError(f"vector engine URL {vector_url!r}: milvus://host:port or milvus-lite:FILE.db expected")
