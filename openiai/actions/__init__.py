"""One module per API family. Importing this package registers every handler."""

from . import compare, detect, faces, groups, landmarks, persons, search, verify  # noqa: F401
