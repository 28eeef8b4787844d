"""The model zoo: every model class the server can load, each loaded lazily, once per process.

A model class loads one file and exposes one call (``detect``, ``embed``, ``get``); it
declares ``NAME`` (its name in the zoo, in /readyz and in FaceModelVersion's registry) and
``FILE`` (:class:`.files.ModelFile`: where the file comes from, its digest). Adding a model
is one file under ``openiai/vision/models/`` plus one line in :data:`MODEL_CLASSES`.

The zoo takes the model directory and thread count as arguments (from
:class:`openiai.core.settings.Settings`): it reads no environment itself.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .age_gender import AgeNet, GenderNet
from .dlib_resnet import DlibResNet
from .expression import Expression
from .face_mesh import FaceMesh
from .files import ModelIntegrityError, locate, verify
from .iris import IrisLandmarks
from .mask import MaskDetector
from .minifasnet import MiniFASNet
from .sface import SFace, SFaceAppearance, choose_recognizer
from .yunet import YuNet

MODEL_CLASSES: dict[str, type] = {cls.NAME: cls for cls in (
    YuNet, SFace, SFaceAppearance, FaceMesh, IrisLandmarks, AgeNet, GenderNet, Expression,
    MaskDetector, MiniFASNet, DlibResNet)}


class ModelZoo:
    def __init__(self, model_dir: Path | None = None, threads: int = 1,
                 classes: dict[str, type] | None = None, inference: str = "auto") -> None:
        self.model_dir = Path(model_dir) if model_dir else None
        self.threads = max(1, int(threads))
        self.classes = dict(classes or MODEL_CLASSES)
        # "sface" is the float or the int8 build (OPENIAI_INFERENCE); one zoo, one of them.
        if self.classes.get(SFace.NAME) is SFace:
            self.classes[SFace.NAME] = choose_recognizer(inference)
        self._models: dict[str, object] = {}
        self._errors: dict[str, str] = {}
        self._locks = {name: threading.Lock() for name in self.classes}

    def names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    def path(self, name: str) -> Path:
        """The file ``name`` loads (or would load), without loading it."""
        return locate(self._cls(name).FILE, self.model_dir)

    def get(self, name: str):
        """The loaded model; the first call loads it (thread-safe), later calls are a dict hit."""
        model = self._models.get(name)
        if model is not None:
            return model
        cls = self._cls(name)
        with self._locks[name]:
            model = self._models.get(name)
            if model is None:
                try:
                    path = locate(cls.FILE, self.model_dir)
                    verify(path, cls.FILE)
                    model = cls(path, self.threads)
                except Exception as exc:
                    self._errors[name] = f"{type(exc).__name__}: {exc}"[:300]
                    raise
                self._errors.pop(name, None)
                self._models[name] = model
        return model

    def loaded(self, name: str) -> bool:
        return name in self._models

    def status(self) -> dict[str, str]:
        """Per model: "ok" once loaded, "not loaded" before, or why loading failed."""
        return {name: "ok" if name in self._models else self._errors.get(name, "not loaded")
                for name in self.classes}

    def describe(self) -> list[dict]:
        """Name, file, source and state of every model (for `openiai models` and the README)."""
        out = []
        for name, cls in self.classes.items():
            try:
                path = str(self.path(name))
            except ModelIntegrityError as exc:
                path = f"missing: {exc}"
            out.append({"name": name, "file": path, "source": cls.FILE.source,
                        "state": self.status()[name]})
        return out

    def _cls(self, name: str) -> type:
        try:
            return self.classes[name]
        except KeyError:
            raise KeyError(f"no model named {name!r}; the zoo has {', '.join(self.classes)}") from None
