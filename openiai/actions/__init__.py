"""One module per API family. Importing this package registers every handler."""

from . import attributes, compare, detect, faces, groups, liveness, persons, search, verify  # noqa: F401
