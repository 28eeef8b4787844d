"""In-memory face / person search index (SearchFaces, SearchPersons and their ByGroup variants).

* :mod:`.backend` - the narrow vector-store protocol (add / remove / search / snapshot / load),
  so that a distributed engine can replace FAISS later.
* :mod:`.faiss_backend` - FAISS: exact ``IndexFlatIP`` below ``exact_threshold`` vectors,
  above it ``IVF<nlist>,PQ64x4fs`` fast-scan candidates re-ranked on a float16 copy; group
  filters as slot bitmaps (``IDSelectorBitmap``); removals as tombstones + compaction.
* :mod:`.manager` - :class:`IndexManager`: one collection per (account, model version), faces
  and persons spaces, membership filters, change-log replay (:meth:`IndexManager.apply`) and
  atomic snapshots.

Measured with ``openiai bench search`` (see openiai/bench/search.py for the numbers).
"""

from .backend import Allowed, VectorBackend
from .faiss_backend import FaissBackend
from .manager import Change, Hit, IndexManager, fuse

__all__ = ["Allowed", "VectorBackend", "FaissBackend", "Change", "Hit", "IndexManager", "fuse"]
