"""Face attributes: which models a request needs, run once per request, for up to 5 faces.

``DetectFace`` (``NeedFaceAttributes=1``) and ``DetectFaceAttributes`` (``FaceAttributesType``)
both ask :class:`AttributeEstimator` for a set of *families* (the API's names: Age, Beauty,
Emotion, Eye, ...). Each family names the sources it needs (:data:`SOURCES`), and only those run:

* ``appearance`` - SFace's appearance vector (one batched run of its truncated graph on 96 px
  crops for all faces) read by linear heads trained on CelebA-HQ / UTKFace / the mask set
  (:mod:`openiai.vision.heads`); Mask is such a head;
* ``mesh`` - the 468-point face mesh (pose, eye size), ``iris`` - the eyelid/iris model
  (eye openness);
* ``age`` / ``gender`` - the dlib/Cydral nets on a face chip, combined with the appearance
  heads (:mod:`openiai.vision.demographics`);
* ``expression`` - mini-XCEPTION (Emotion); ``mask`` - the face-mask SSD, which no family
  needs any more (the appearance head alone is as accurate, ``vision/trained/mask.json``, and
  the SSD cost more than every other model but SFace): only the training tool's comparison
  runs it;
* Smile and Mouth stack the appearance heads, the expression net and the mesh's mouth shape
  (:mod:`openiai.vision.mouth`): each alone falls short on CelebA-HQ.

The answer is a :class:`FaceAttributes` per face: plain estimates (probabilities, years,
degrees) or ``None`` for what was not computed. Turning them into wire fields is the actions'
job (:mod:`openiai.actions.attributes`), which also decides what is "not estimated".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.timing import timed
from ..vision import demographics, masks, mouth, pose
from ..vision import heads as _heads
from ..vision import mesh as _mesh
from ..vision.appearance import HEADS_NAME as APPEARANCE, appearance_attributes
from ..vision.landmarks import ibug68
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
    "Mask": frozenset({"appearance"}),
    "Mouth": frozenset({"appearance", "expression", "mesh"}),
    "Moustache": frozenset({"appearance"}),
    "Nose": frozenset(),
    "Shape": frozenset(),
    "Skin": frozenset(),
    "Smile": frozenset({"appearance", "expression", "mesh"}),
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
    emotion: np.ndarray | None = None  # (7,) expression probabilities, the model's class order
    p_mask: float | None = None
    pose: tuple[int, int, int] | None = None  # Pitch, Yaw, Roll (clamped as documented)
    p_eyes_open: float | None = None  # both eyes' lid opening, as a score (vision.mesh)
    eye_size: tuple[int, float] | None = None  # (0 small / 1 normal / 2 big, score)
    p_smiling: float | None = None  # vision.mouth: appearance + expression + mouth shape
    p_mouth_open: float | None = None  # the same head file's other head

    def head(self, name: str) -> float | None:
        value = self.appearance.get(name)
        return None if value is None else float(value)


class AttributeEstimator:
    """Composes the models a set of families needs; one instance per pipeline.

    :meth:`outputs` runs the networks (the raw outputs: what the training tools and the
    evaluations cache), :meth:`estimate` turns them into answers through the same functions in
    :mod:`openiai.vision` that the evaluations score.
    """

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self._heads: dict[str, dict[str, _heads.LinearHead]] = {}

    def heads(self, name: str) -> dict[str, _heads.LinearHead]:
        """Heads file ``name`` (vision/trained), loaded once; a missing file, or one whose
        digest differs from its manifest, is refused."""
        if name not in self._heads:
            self._heads[name] = _heads.load_heads(name)
        return self._heads[name]

    def warmup(self) -> None:
        """Load (and digest-check) every heads file now, so a damaged install shows at start."""
        for name in (APPEARANCE, demographics.HEADS, mouth.HEADS, masks.HEADS):
            self.heads(name)

    @staticmethod
    def sources(families: set[str]) -> set[str]:
        return set().union(*(SOURCES[f] for f in families)) if families else set()

    def outputs(self, pixels: np.ndarray, faces: list[Face], sources: set[str],
                timings: dict[str, float] | None = None) -> list[dict]:
        """Raw model outputs per face: ``appearance`` (SFace appearance vector), ``age_probs``
        (81,), ``gender_p``, ``expression`` (7, the model's class order), ``mask_ssd``,
        ``mesh`` (:class:`openiai.vision.mesh.Mesh`, with the eyes when "iris" is asked).
        Only ``sources`` run; age, gender and mask also need the appearance vector."""
        out: list[dict] = [{} for _ in faces]
        if not faces:
            return out
        sources = set(sources)
        if sources & {"age", "gender", "mask"}:
            sources.add("appearance")
        p = self.pipeline
        if "appearance" in sources:
            with timed(timings, "appearance"):
                rows = p.appearance([(pixels, f) for f in faces])
            for o, row in zip(out, rows):
                o["appearance"] = row
        for name, key, run in (
                ("age", "age_probs", lambda m: m.probabilities([m.chip(pixels, f) for f in faces])),
                ("gender", "gender_p", lambda m: m.p_male([m.chip(pixels, f) for f in faces])),
                ("expression", "expression",
                 lambda m: [m.probabilities(pixels, f) for f in faces]),
                ("mask", "mask_ssd", lambda m: [m.p_mask(pixels, f) for f in faces])):
            if name in sources:
                with timed(timings, name):
                    values = p.infer(name, run)
                for o, v in zip(out, values):
                    o[key] = v
        if "mesh" in sources or "iris" in sources:
            meshes = p.meshes(pixels, faces, iris="iris" in sources, timings=timings)
            for o, m in zip(out, meshes):
                o["mesh"] = m
        return out

    def estimate(self, pixels: np.ndarray, faces: list[Face], families: set[str],
                 timings: dict[str, float] | None = None) -> list[FaceAttributes]:
        """Estimates for ``faces``; ``timings`` (optional) accumulates seconds per source
        (``openiai bench attributes`` prints that split)."""
        need = self.sources(families)
        answers = [FaceAttributes() for _ in faces]
        if not faces or not need:
            return answers
        raw = self.outputs(pixels, faces, need, timings)
        with timed(timings, "heads and rules"):
            for a, o, f in zip(answers, raw, faces):
                if "appearance" in o:
                    a.appearance = appearance_attributes(self.heads(APPEARANCE), o["appearance"])
                if "age_probs" in o:
                    a.age = demographics.age_years(o["age_probs"], o["appearance"],
                                                   self.heads(demographics.HEADS))
                if "gender_p" in o:
                    a.p_male = demographics.p_male(o["gender_p"], o["appearance"],
                                                   self.heads(demographics.HEADS))
                if "expression" in o:
                    a.emotion = o["expression"]
                if "appearance" in o and "Mask" in families:
                    a.p_mask = masks.p_mask(o["appearance"], self.heads(masks.HEADS))
                mesh = o.get("mesh")
                if mesh is not None:
                    a.pose = pose.head_pose(f, pixels.shape, ibug68(mesh.points))
                    openness = _mesh.eye_openness(mesh)
                    a.p_eyes_open = None if openness is None else openness[1]
                    a.eye_size = _mesh.eye_size_item(mesh)
                    if "appearance" in o and "expression" in o:
                        row = mouth.features(a.appearance, o["expression"], mesh)
                        a.p_smiling, a.p_mouth_open = mouth.smile_and_mouth(
                            self.heads(mouth.HEADS), row)
        return answers
