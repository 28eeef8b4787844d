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
    # SearchPersons*, VerifyPerson and the person features they use exist for 3.0 only (and
    # for an operator's own versions, which follow 3.0).
    person_search: bool
    # The score table's file when it is not a shipped one: an operator's own recognizer
    # (openiai.vision.models.own) keeps it in the data directory. None: the shipped table of
    # :attr:`recognizer` (openiai.vision.scores.calibration_path).
    table: str | None = None


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
BUILTIN = frozenset(VERSIONS)
# The anchors and limits an operator's own version gets: those of 3.0, whose API it follows.
OWN_ANCHOR_SCORES = VERSIONS["3.0"].anchor_scores
OWN_SEARCH_FACES_LIMIT = VERSIONS["3.0"].search_faces_limit


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


def install_own(own: list[ModelVersion]) -> None:
    """Make ``own`` the operator's versions (the data directory's ``models/*.toml``, loaded by
    :func:`openiai.vision.models.own.install`), replacing any installed before; the built-in
    versions stay. Called once per process at start-up, before requests are served."""
    for name in [n for n in VERSIONS if n not in BUILTIN]:
        del VERSIONS[name]
    for version in own:
        if version.name in BUILTIN:
            raise ValueError(f"FaceModelVersion {version.name} is built in")
        VERSIONS[version.name] = version


def own_names() -> tuple[str, ...]:
    """The operator's versions now installed (empty unless configured)."""
    return tuple(sorted(n for n in VERSIONS if n not in BUILTIN))
