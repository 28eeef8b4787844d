"""Face attributes: which models a request needs, run once per request, for up to 5 faces.

``DetectFace`` (``NeedFaceAttributes=1``) and ``DetectFaceAttributes`` (``FaceAttributesType``)
both ask :class:`AttributeEstimator` for a set of *families* (the API's names: Age, Beauty,
Emotion, Eye, ...). Each family names the sources it needs (:data:`SOURCES`), and only those run:

* ``appearance`` - SFace's appearance vector (one batched run for all faces) read by linear
  heads trained on CelebA-HQ / UTKFace (:mod:`openiai.vision.heads`); it also embeds the face;
* ``mesh`` - the 468-point face mesh (pose, eye size), ``iris`` - the eyelid/iris model
  (eye openness);
* ``age`` / ``gender`` - the dlib/Cydral nets on a face chip, combined with the appearance
  heads (:mod:`openiai.vision.demographics`);
* ``expression`` - mini-XCEPTION (Emotion); ``mask`` - the face-mask detector.

The answer is a :class:`FaceAttributes` per face: plain estimates (probabilities, years,
degrees) or ``None`` for what was not computed. Turning them into wire fields is the actions'
job (:mod:`openiai.actions.attributes`), which also decides what is "not estimated".
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..core import versions
from ..vision import heads as _heads
from ..vision.types import Face

# The documented family names (FaceAttributesType, case-insensitive) -> canonical spelling.
FAMILIES = ("Age", "Beauty", "Emotion", "Eye", "Eyebrow", "Gender", "Hair", "Hat", "Headpose",
            "Mask", "Mouth", "Moustache", "Nose", "Shape", "Skin", "Smile")

# What each family needs computed. Nose, Shape and Skin have no credible estimator here (see
# the README's attribute table): they need nothing and stay at the documented defaults.
SOURCES: dict[str, frozenset[str]] = {
    "Age": frozenset({"appearance", "age"}),
    "Beauty": frozenset({"appearance"}),
    "Emotion": frozenset({"expression"}),
    "Eye": frozenset({"appearance", "mesh", "iris"}),
    "Eyebrow": frozenset({"appearance"}),
    "Gender": frozenset({"appearance", "gender"}),
    "Hair": frozenset({"appearance"}),
    "Hat": frozenset({"appearance"}),
    "Headpose": frozenset({"mesh"}),
    "Mask": frozenset({"mask"}),
    "Mouth": frozenset({"appearance"}),
    "Moustache": frozenset({"appearance"}),
    "Nose": frozenset(),
    "Shape": frozenset(),
    "Skin": frozenset(),
    "Smile": frozenset({"appearance"}),
}

# DetectFace's FaceAttributesInfo covers these families.
DETECT_FACE_FAMILIES = frozenset({"Gender", "Age", "Smile", "Eye", "Headpose", "Beauty", "Hat",
                                  "Mask", "Hair"})


@dataclass
class FaceAttributes:
    """Estimates for one face; ``None`` where the request did not need it computed."""

    appearance: dict[str, object] = field(default_factory=dict)  # head name -> p or (k,) probs
    age: float | None = None  # years
    p_male: float | None = None
    emotion: np.ndarray | None = None  # (7,) probabilities in the API's Emotion order
    p_mask: float | None = None
    pose: tuple[int, int, int] | None = None  # Pitch, Yaw, Roll (clamped as documented)
    p_eyes_open: float | None = None  # both eyes' lid opening, as a score (vision.mesh)
    eye_size: tuple[int, float] | None = None  # (0 small / 1 normal / 2 big, score)
    p_mouth_open: float | None = None  # inner-lip gap rule (vision.mesh)

    def head(self, name: str) -> float | None:
        value = self.appearance.get(name)
        return None if value is None else float(value)


@contextmanager
def _timed(timings: dict[str, float] | None, name: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started


class AttributeEstimator:
    """Composes the models a set of families needs; one instance per pipeline."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self._heads: dict[str, dict[str, _heads.LinearHead]] = {}

    def heads(self, name: str) -> dict[str, _heads.LinearHead]:
        if name not in self._heads:
            self._heads[name] = _heads.load_heads(name)
        return self._heads[name]

    @staticmethod
    def sources(families: set[str]) -> set[str]:
        return set().union(*(SOURCES[f] for f in families)) if families else set()

    def estimate(self, pixels: np.ndarray, faces: list[Face], families: set[str],
                 timings: dict[str, float] | None = None) -> list[FaceAttributes]:
        """Estimates for ``faces``; ``timings`` (optional) accumulates seconds per source
        (``openiai bench attributes`` prints that split)."""
        from ..vision import demographics, expression as _expr, mesh as _mesh, pose
        from ..vision.appearance import appearance_attributes
        from ..vision.landmarks import ibug68

        out = [FaceAttributes() for _ in faces]
        need = self.sources(families)
        if not faces or not need:
            return out
        p = self.pipeline
        appearance: list = [None] * len(faces)
        if "appearance" in need:
            with _timed(timings, "appearance"):
                recognizer = versions.get(versions.DEFAULT).recognizer
                _, appearance = p.infer(recognizer, lambda m: m.embed_with_appearance(
                    [m.align(pixels, f) for f in faces]))
                heads = self.heads("appearance")
                for attrs, row in zip(out, appearance):
                    attrs.appearance = appearance_attributes(heads, row)
        if "age" in need or "gender" in need:
            chips = [demographics.chip(pixels, f) for f in faces]
            demo = self.heads("demographics")
            if "age" in need:
                with _timed(timings, "age"):
                    probs = p.infer("age", lambda m: m.probabilities(chips))
                    for attrs, pr, row in zip(out, probs, appearance):
                        attrs.age = demographics.age_years(pr, row, demo)
            if "gender" in need:
                with _timed(timings, "gender"):
                    pm = p.infer("gender", lambda m: m.p_male(chips))
                    for attrs, g, row in zip(out, pm, appearance):
                        attrs.p_male = demographics.p_male(g, row, demo)
        if "expression" in need:
            with _timed(timings, "expression"):
                for attrs, f in zip(out, faces):
                    probs = p.infer("expression", lambda m: m.probabilities(pixels, f))
                    attrs.emotion = _expr.api_order(probs)
        if "mask" in need:
            with _timed(timings, "mask"):
                for attrs, f in zip(out, faces):
                    attrs.p_mask = p.infer("mask", lambda m: m.p_mask(pixels, f))
        if "mesh" in need:
            for attrs, f in zip(out, faces):
                with _timed(timings, "mesh"):
                    mesh = p.mesh(pixels, f, iris="iris" in need)
                attrs.pose = pose.head_pose(f, pixels.shape, ibug68(mesh.points))
                openness = _mesh.eye_openness(mesh)
                attrs.p_eyes_open = None if openness is None else openness[1]
                attrs.eye_size = _mesh.eye_size_item(mesh)
                attrs.p_mouth_open = _mesh.mouth_open(mesh)[1]
        return out
