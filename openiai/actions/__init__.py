"""One module per API family. Importing this package registers every handler."""

from . import (  # noqa: F401
    attributes, compare, detect, faces, groups, landmarks, liveness, persons, search,
    similar_persons, upgrade, verify)
