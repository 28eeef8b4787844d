"""Measurements of the face mesh and the rules read off it (``openiai eval attributes`` rows).

- :func:`evaluate_landmarks`: the 68 iBUG points mapped from the mesh
  (:func:`openiai.vision.landmarks.ibug68`, the points AnalyzeFace's 90-point FaceShape and
  head pose are built from) against the 43 faces of ``dlib/faces/*_with_face_landmarks.xml``
  (each labelled box matched to the YuNet face nearest its centre). Metric: mean point error
  over the outer-eye-corner distance (iBUG 36 -> 45), averaged over faces; floor 0.05.
- :func:`evaluate_eye_state`: :func:`openiai.vision.mesh.eye_openness`'s lid-ratio rule on
  ``attributes/eye_state`` (open/closed eye crops, side unknown, so both orientations are run
  and averaged); balanced accuracy at the shipped threshold, and a two-fold figure (threshold
  re-chosen on one half, scored on the other) as a check that it is not over-tuned; floor 0.90.
- :func:`evaluate_mesh_rules`: eye size (small vs not, against CelebA-HQ ``Narrow_Eyes``) and
  mouth open (against ``Mouth_Slightly_Open``), balanced accuracy at the shipped thresholds.

Each row: ``{"attribute", "set", "metric", "value", "floor", "higher_is_better", "n"}``.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from ..services.faces import FacePipeline
from ..vision import mesh as M
from ..vision.landmarks import ibug68
from .attribute_data import balanced_accuracy

LANDMARK_FLOOR = 0.05
EYE_STATE_FLOOR = 0.90
DETECT_SCORE = 0.5  # permissive: the labelled faces include small and turned ones


def _row(attribute: str, set_: str, metric: str, value: float, floor: float | None,
         higher: bool, n: int) -> dict:
    return {"attribute": attribute, "set": set_, "metric": metric, "value": round(float(value), 4),
            "floor": floor, "higher_is_better": higher, "n": int(n)}


def _pipeline(pipeline: FacePipeline | None) -> FacePipeline:
    """The server's pipeline, configured from the environment (OPENIAI_INFERENCE included)."""
    from .evaluate import face_pipeline

    return pipeline or face_pipeline()




def _annotated(testdata: Path):
    for name in ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"):
        for im in ET.parse(testdata / "dlib" / "faces" / name).getroot().iter("image"):
            for b in im.iter("box"):
                parts = sorted(b.iter("part"), key=lambda p: int(p.get("name")))
                pts = np.array([[float(p.get("x")), float(p.get("y"))] for p in parts])
                box = np.array([int(b.get(k)) for k in ("left", "top", "width", "height")], float)
                yield testdata / "dlib" / "faces" / im.get("file"), box, pts


def landmark_errors(testdata: Path, pipeline: FacePipeline | None = None) -> np.ndarray:
    """Per labelled face: mean |mapped 68 - labelled 68| / outer-eye-corner distance."""
    pipe = _pipeline(pipeline)
    cache: dict[Path, tuple] = {}
    errs = []
    for path, box, gt in _annotated(Path(testdata)):
        if path not in cache:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            cache[path] = (img, pipe.detect(img, min_face_size=16, max_faces=100,
                                            score_threshold=DETECT_SCORE))
        img, faces = cache[path]
        centre = box[:2] + box[2:] / 2
        near = [f for f in faces if np.linalg.norm(f.box[:2] + f.box[2:] / 2 - centre) < 0.5 * box[2]]
        if not near:  # counted as a miss: the worst error we report
            errs.append(np.inf)
            continue
        face = min(near, key=lambda f: np.linalg.norm(f.box[:2] + f.box[2:] / 2 - centre))
        pts = ibug68(pipe.mesh(img, face, iris=False).points)
        errs.append(float(np.linalg.norm(pts - gt, axis=1).mean() / np.linalg.norm(gt[45] - gt[36])))
    return np.array(errs)


def evaluate_landmarks(testdata: Path, pipeline: FacePipeline | None = None) -> list[dict]:
    errs = landmark_errors(testdata, pipeline)
    return [_row("landmarks68", "dlib/faces xml (43 faces)", "mean NME (outer-eye-corner)",
                 float(np.mean(errs)), LANDMARK_FLOOR, False, len(errs))]


def eye_crop_ratio(pipe: FacePipeline, crop: np.ndarray) -> float:
    """Lid ratio of an eye crop of unknown side: the mean over it and its mirror image."""
    iris = pipe.zoo.get("iris")
    return float(np.mean([M.lid_ratio(iris.get_crop(crop, mirror=m, pad=M.EYE_CROP_PAD)[0])
                          for m in (False, True)]))


def evaluate_eye_state(testdata: Path, pipeline: FacePipeline | None = None) -> list[dict]:
    pipe = _pipeline(pipeline)
    ratios, labels = [], []
    for label, folder in ((1, "open"), (0, "closed")):
        for path in sorted((Path(testdata) / "attributes" / "eye_state" / folder).glob("*")):
            crop = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if crop is None:
                continue
            ratios.append(eye_crop_ratio(pipe, crop))
            labels.append(label)
    r, y = np.array(ratios), np.array(labels)
    probs = np.array([M.eye_open_probability(v) for v in r])
    shipped = balanced_accuracy(y, (probs >= 0.5).astype(int))
    # Two-fold: choose the threshold on even items, score on odd ones, and the other way.
    folds = []
    for train in (np.arange(len(y)) % 2 == 0, np.arange(len(y)) % 2 == 1):
        grid = np.linspace(0.05, 0.5, 91)
        th = grid[int(np.argmax([balanced_accuracy(y[train], (r[train] > t).astype(int)) for t in grid]))]
        folds.append(balanced_accuracy(y[~train], (r[~train] > th).astype(int)))
    return [
        _row("eye_open", "attributes/eye_state", "balanced accuracy", shipped, EYE_STATE_FLOOR,
             True, len(y)),
        _row("eye_open", "attributes/eye_state", "balanced accuracy, two-fold threshold",
             float(np.mean(folds)), EYE_STATE_FLOOR, True, len(y)),
    ]


def evaluate_mesh_rules(testdata: Path, pipeline: FacePipeline | None = None,
                        limit: int = 2000) -> list[dict]:
    """Eye size and mouth open on the first ``limit`` CelebA-HQ images (no floor: reported)."""
    pipe = _pipeline(pipeline)
    root = Path(testdata) / "attributes" / "celeba_hq"
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:limit]
    narrow, small, mouth, opened = [], [], [], []
    for row in rows:
        img = cv2.imread(str(root / "images" / row["file"]), cv2.IMREAD_COLOR)
        faces = pipe.detect(img, min_face_size=16, score_threshold=DETECT_SCORE) if img is not None else []
        if not faces:
            continue
        mesh = pipe.mesh(img, faces[0])
        narrow.append(int(row["Narrow_Eyes"]))
        small.append(int(M.eye_size(mesh) == 0))
        mouth.append(int(row["Mouth_Slightly_Open"]))
        opened.append(int(M.mouth_open(mesh)[0]))
    n = len(narrow)
    return [
        _row("eye_size", "celeba_hq Narrow_Eyes", "balanced accuracy (small vs not)",
             balanced_accuracy(np.array(narrow), np.array(small)), None, True, n),
        _row("mouth_open", "celeba_hq Mouth_Slightly_Open", "balanced accuracy",
             balanced_accuracy(np.array(mouth), np.array(opened)), None, True, n),
    ]
