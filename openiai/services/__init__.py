"""The services layer: what actions call below HTTP, and what a running server holds.

* :mod:`.runtime` - :class:`Services`, the long-lived parts built once from Settings;
* :mod:`.index_sync` - keeps the vector index equal to the database (snapshot + change log);
* :mod:`.faces` - the face pipeline: image -> faces -> features, landmarks, pose, quality;
* :mod:`.attributes` - face attributes: the models a set of attribute families needs;
* :mod:`.hits` - index hits checked against the live database rows;
* :mod:`.similar_persons`, :mod:`.similar_person_jobs` - duplicate-person checks
  (CheckSimilarPerson) and their job kind.
"""

from .runtime import Services

__all__ = ["Services"]
