"""FaceModelVersion facts in one registry: which versions exist, which recognizer embeds their
faces, how wide its features are, the documented score anchors and search limits.

Every layer asks here instead of comparing strings: actions validate a requested version with
:func:`get`, the pipeline picks the recognizer by :attr:`ModelVersion.recognizer`, scores map
through :attr:`ModelVersion.anchor_scores`, the index sizes collections by :attr:`dim`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelVersion:
    name: str
    # The model zoo's name for the network that embeds this version's faces: as in Tencent's
    # service, 2.0 and 3.0 are different networks (dlib's ResNet and SFace), so their features
    # never mix; scores are calibrated per recognizer (openiai.vision.scores).
    recognizer: str
    dim: int
    # Documented score anchors, false-accept rate -> score ("3.0: 40/50/60 = FAR 1e-3/1e-4/
    # 1e-5"; "2.0: 70/80/90"). The cosine at each FAR is measured per recognizer.
    anchor_scores: dict
    # "The maximum number of faces in groups that can be searched for at a time ... is 1 million
    # for v2.0 or 3 million for v3.0."
    search_faces_limit: int
    # SearchPersons*, VerifyPerson and the person features they use exist for 3.0 only.
    person_search: bool


VERSIONS: dict[str, ModelVersion] = {
    "2.0": ModelVersion(
        name="2.0", recognizer="dlib_resnet", dim=128,
        anchor_scores={0.5: 40.0, 1e-1: 50.0, 1e-2: 60.0, 1e-3: 70.0, 1e-4: 80.0, 1e-5: 90.0},
        search_faces_limit=1_000_000, person_search=False),
    "3.0": ModelVersion(
        name="3.0", recognizer="sface", dim=128,
        anchor_scores={0.5: 10.0, 1e-1: 20.0, 1e-2: 30.0, 1e-3: 40.0, 1e-4: 50.0, 1e-5: 60.0,
                       1e-6: 70.0},
        search_faces_limit=3_000_000, person_search=True),
}
DEFAULT = "3.0"


class UnknownModelVersion(ValueError):
    pass


def get(name: str | None) -> ModelVersion:
    """The version's facts (``None`` means the default, 3.0)."""
    version = VERSIONS.get(name or DEFAULT)
    if version is None:
        raise UnknownModelVersion(
            f"Unknown FaceModelVersion {name!r}; supported: {', '.join(sorted(VERSIONS))}.")
    return version


def names() -> tuple[str, ...]:
    return tuple(sorted(VERSIONS))


def recognizers() -> tuple[str, ...]:
    """The zoo names of every recognizer some version uses (each loaded once)."""
    return tuple(sorted({v.recognizer for v in VERSIONS.values()}))
