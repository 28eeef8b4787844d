"""One module per API family. Importing this package registers every handler."""

from . import groups  # noqa: F401
