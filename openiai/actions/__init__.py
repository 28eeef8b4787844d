"""One module per API family. Importing this package registers every handler."""

from . import compare, detect, groups, verify  # noqa: F401
from . import persons  # noqa: F401
from . import faces  # noqa: F401
from . import search  # noqa: F401
