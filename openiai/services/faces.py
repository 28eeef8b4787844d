"""The face pipeline: image -> faces -> features, landmarks, pose, quality.

Every action that looks at a face goes through one :class:`FacePipeline`, held by
:class:`openiai.services.Services`. It composes only the models a request needs: detection
runs YuNet alone, :meth:`FacePipeline.features` adds the version's recognizer,
:meth:`FacePipeline.mesh` the 468-point face mesh (and the iris model), so a DetectFace
without attributes never touches the landmark models. Models come from the :class:`ModelZoo` it was built with
(lazy, once per process); model runs take an inference slot, so concurrent requests queue
instead of oversubscribing the cores.

This is the one face-to-feature path (enrolment, CompareFace, Verify*, search probes and the
importer all call :meth:`features`) and the one QualityControl check
(:meth:`require_quality`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from ..core import versions
from ..core.errors import ApiError, value
from ..core.settings import Settings
from ..core.timing import stage, timed
from ..vision import pose, quality
from ..vision.canonical import canonical_crop, encode_crop
from ..vision.image import load_image
from ..vision.landmarks import dense_shape, face_shape, ibug68
from ..vision.mesh import Mesh
from ..vision.models import DEFAULT_SCORE_THRESHOLD, MODEL_CLASSES, ModelZoo
from ..vision.models.own import install as install_own_models
from ..vision.rotation import detect_rotated
from ..vision.upper_face import occlude_lower
from ..vision.types import DecodedImage, Face
from .batching import MicroBatcher

T = TypeVar("T")
MIN_FACE_SIZE_DEFAULT = 34  # the docs' MinFaceSize default
DETECTOR = "yunet"
MESH = "face_mesh"
IRIS = "iris"
APPEARANCE = "sface_appearance"  # the network the appearance heads read


class FacePipeline:
    def __init__(self, zoo: ModelZoo, slots: int = 1, allow_private_urls: bool = False,
                 micro_batch_ms: float = 0.0) -> None:
        self.zoo = zoo
        self.allow_private_urls = allow_private_urls
        self._slots = threading.BoundedSemaphore(max(1, slots))
        self.micro_batch_ms = micro_batch_ms
        self._batchers: dict[str, MicroBatcher] = {}
        self._batchers_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, require_tables: bool = True) -> "FacePipeline":
        """The pipeline over the shipped models and the operator's own recognizers (the data
        directory's ``models/*.toml``, :mod:`openiai.vision.models.own`, whose versions this
        installs); a broken config raises :class:`~openiai.vision.models.own.OwnModelError`.
        ``require_tables=False``: an own version may lack its score table (calibration)."""
        own = install_own_models(settings.data_dir, require_tables)
        return cls(ModelZoo(settings.model_dir, settings.ort_threads,
                            classes={**MODEL_CLASSES, **own}, inference=settings.inference),
                   settings.slots, settings.allow_private_urls, settings.micro_batch_ms)

    # ---------------------------------------------------------------- images and faces
    def load(self, image_b64: str | None, url: str | None) -> DecodedImage:
        """Url wins over Image, as the docs say; raises the documented image errors."""
        return load_image(image_b64, url, allow_private_urls=self.allow_private_urls)

    def detect(self, pixels: np.ndarray | DecodedImage, *,
               min_face_size: int = MIN_FACE_SIZE_DEFAULT, max_faces: int = 1,
               rotate: bool = False,
               score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> list[Face]:
        """Faces largest first, in the full picture's coordinates (``rotate``:
        NeedRotateDetection). A :class:`DecodedImage` is searched on its downscaled copies
        (a JPEG's reduced-size decode), so its full pixels need not be decoded for this."""
        detector = self.zoo.get(DETECTOR)  # loading happens outside the slot

        def run(p: np.ndarray) -> list[Face]:
            return detector.detect(p, min_face_size, max_faces, score_threshold)

        with self._slots, stage("detect"):  # one slot and one stage for all four turns
            if isinstance(pixels, DecodedImage):
                if not rotate:
                    return detector.detect_image(pixels, min_face_size, max_faces,
                                                 score_threshold)
                pixels = pixels.pixels
            return detect_rotated(run, pixels).faces if rotate else run(pixels)

    def find_faces(self, image: DecodedImage, *, max_faces: int = 1,
                   min_face_size: int | None = None, rotate: bool = False,
                   retry_score_threshold: float | None = None) -> list[Face]:
        """:meth:`detect` with the documented errors when nothing is found; with
        ``retry_score_threshold``, a picture with no face at the default threshold is searched
        once more at that one (CompareMaskFace: masked faces score low)."""
        size = MIN_FACE_SIZE_DEFAULT if min_face_size is None else min_face_size
        faces = self.detect(image, min_face_size=size, max_faces=max_faces, rotate=rotate)
        if not faces and retry_score_threshold is not None:
            faces = self.detect(image, min_face_size=size, max_faces=max_faces,
                                rotate=rotate, score_threshold=retry_score_threshold)
        if not faces:
            if min_face_size is not None and self.detect(image, min_face_size=1):
                raise ApiError("FailedOperation.FaceSizeTooSmall",
                               f"Faces were found but all are smaller than MinFaceSize={size}.")
            raise value("NoFaceInPhoto", "No face was found in the image.")
        return faces

    # ---------------------------------------------------------------- per face
    def features(self, pixels: np.ndarray, faces: list[Face], model_version: str) -> np.ndarray:
        """(n, dim) unit features of ``faces`` by the version's recognizer, one batched run."""
        return self.features_of([(pixels, f) for f in faces], model_version)

    def feature(self, pixels: np.ndarray, face: Face, model_version: str) -> np.ndarray:
        return self.features_of([(pixels, face)], model_version)[0]

    def features_of(self, items: list[tuple[np.ndarray, Face]], model_version: str, *,
                    upper_face: bool = False) -> np.ndarray:
        """Features of faces from one or more images (CompareFace's two), one batched run.

        ``upper_face``: of the faces' upper halves, the recognizer's aligned crop with
        everything from the nose tip down painted out (:mod:`openiai.vision.upper_face`), what
        CompareMaskFace compares when a face wears a mask."""
        spec = versions.get(model_version)
        recognizer = self.zoo.get(spec.recognizer)  # loading happens outside the slot
        if not items:
            return np.zeros((0, spec.dim), np.float32)
        # Alignment is timed as part of "embed": it only prepares the recognizer's input.
        with stage("embed"):
            crops = [recognizer.align(pixels, face) for pixels, face in items]
            if upper_face:
                crops = [occlude_lower(crop) for crop in crops]
            if self.micro_batch_ms > 0:
                return self._batcher(spec.recognizer, recognizer).embed(crops)
            with self._slots:
                return np.asarray(recognizer.embed(crops), np.float32)

    def _batcher(self, name: str, recognizer) -> MicroBatcher:
        """The recognizer's micro-batching queue (``OPENIAI_MICRO_BATCH_MS``)."""
        with self._batchers_lock:
            batcher = self._batchers.get(name)
            if batcher is None:
                batcher = self._batchers[name] = MicroBatcher(
                    recognizer.embed, self._slots, self.micro_batch_ms / 1000.0)
            return batcher

    def appearance(self, items: list[tuple[np.ndarray, Face]]) -> np.ndarray:
        """Appearance vectors (n, 3072) of faces, one batched run of the truncated SFace graph
        on 96 px crops (:class:`openiai.vision.models.sface.SFaceAppearance`).

        The appearance heads (:mod:`openiai.vision.appearance`) were trained on these vectors,
        so they are always SFace's, whatever FaceModelVersion a request names."""
        model = self.zoo.get(APPEARANCE)
        if not items:
            return model.appearance([])
        with stage("attributes"):
            crops = [model.align(pixels, face) for pixels, face in items]
            with self._slots:
                return model.appearance(crops)

    def aligned_crop(self, pixels: np.ndarray, face: Face, model_version: str) -> np.ndarray:
        """The face as the version's recognizer sees it."""
        return self.zoo.get(versions.get(model_version).recognizer).align(pixels, face)

    def canonical_crop(self, pixels: np.ndarray, face: Face) -> tuple[bytes, np.ndarray]:
        """The stored picture of an enrolled face (encoded) and its 5 landmarks in it: what a
        later recognizer re-extracts from (:mod:`openiai.vision.canonical`)."""
        crop, landmarks = canonical_crop(pixels, face.landmarks)
        return encode_crop(crop), landmarks

    def mesh(self, pixels: np.ndarray, face: Face, iris: bool = True) -> Mesh:
        """The 468-point face mesh of one face and, with ``iris``, both eyes' eyelid contours
        and irises (:mod:`openiai.vision.mesh` has the rules that read it)."""
        return self.meshes(pixels, [face], iris)[0]

    def meshes(self, pixels: np.ndarray, faces: list[Face], iris: bool = True,
               timings: dict[str, float] | None = None) -> list[Mesh]:
        """:meth:`mesh` for several faces of one picture: each mesh pass and the iris model
        run once for all of them (batched). ``timings`` (optional) accumulates seconds under
        "mesh" and "iris" (``openiai bench attributes``)."""
        if not faces:
            return []
        mesh_model = self.zoo.get(MESH)  # loading happens outside the slot
        iris_model = self.zoo.get(IRIS) if iris else None
        with self._slots, stage("landmarks"):
            with timed(timings, "mesh"):
                points = mesh_model.get_many(pixels, faces)
            eyes = None
            if iris_model is not None:
                with timed(timings, "iris"):
                    eyes = iris_model.get_many(pixels, points)
        if eyes is None:
            return [Mesh(p) for p in points]
        return [Mesh(p, e["left"], e["right"]) for p, e in zip(points, eyes)]

    def landmarks68(self, pixels: np.ndarray, face: Face) -> np.ndarray:
        """(68, 2) iBUG 300-W points, mapped from the mesh (:func:`openiai.vision.landmarks.ibug68`)."""
        return ibug68(self.mesh(pixels, face, iris=False).points)

    def head_pose(self, pixels: np.ndarray, face: Face) -> tuple[int, int, int]:
        """(Pitch, Yaw, Roll): pitch needs the 68 points, its sign is unreliable from 5."""
        return pose.head_pose(face, pixels.shape, self.landmarks68(pixels, face))

    def face_shape(self, pixels: np.ndarray, face: Face) -> dict:
        """AnalyzeFace's 90-point FaceShape (pupils from the iris model)."""
        return face_shape(self.mesh(pixels, face))

    def dense_shape(self, pixels: np.ndarray, face: Face) -> dict:
        """AnalyzeDenseLandmarks' contours of one face (without its box)."""
        return dense_shape(self.mesh(pixels, face))

    def quality(self, pixels: np.ndarray, face: Face) -> dict:
        """FaceQualityInfo (a measured rule on the pixels, no model)."""
        with stage("quality"):
            return quality.assess(pixels, face)

    def require_quality(self, pixels: np.ndarray, face: Face, level: int) -> None:
        """QualityControl (0-4): raises FaceQualityNotQualified when the face falls short."""
        if level and not quality.passes(self.quality(pixels, face), level):
            raise ApiError("FailedOperation.FaceQualityNotQualified",
                           f"The face image quality does not meet QualityControl={level}.")

    def infer(self, name: str, call: Callable[[Any], T], stage_name: str = "attributes") -> T:
        """``call(model)`` for the zoo's model ``name``, inside an inference slot and a timing
        stage (loading happens outside the slot): how the attribute models run."""
        model = self.zoo.get(name)
        with self._slots, stage(stage_name):
            return call(model)

    # ---------------------------------------------------------------- readiness
    def warmup(self, names: tuple[str, ...] | None = None) -> dict[str, str]:
        """Load (and run once) every model, so the first request pays no loading time.

        One model failing does not stop the others; returns :meth:`status`, and raises the
        first failure after trying them all (a tool wants to stop, the server to report)."""
        failed: Exception | None = None
        for name in names or self.zoo.names():
            try:
                model = self.zoo.get(name)
                warm = getattr(model, "warmup", None)
                if warm is not None:
                    warm()
            except Exception as exc:  # the zoo keeps the reason for /readyz
                failed = failed or exc
        if failed is not None:
            raise failed
        return self.status()

    def status(self) -> dict[str, str]:
        return self.zoo.status()
