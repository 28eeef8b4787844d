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

Measured with ``openiai bench search`` (see openiai/bench/search.py for the numbers).
"""

from .engine import Hit, VectorIndex
from .manager import IndexManager

__all__ = ["Hit", "VectorIndex", "IndexManager"]
