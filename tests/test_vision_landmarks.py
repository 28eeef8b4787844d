"""68-point landmarks and the 90-point FaceShape, checked against dlib's own annotations.

``dlib/faces/*_with_face_landmarks.xml`` holds 43 faces whose 68 points are dlib's predictor
run on hand-drawn boxes; ours are mapped from the 468-point face mesh
(:func:`openiai.vision.landmarks.ibug68`, fitted on LFW, so these faces are held out). Error =
mean point distance / outer-eye-corner distance (the 300-W "inter-ocular" normalisation).
Measured: mean 0.047, worst face 0.095. (The dlib predictor this replaced reproduced its own
annotations to 0.029 normalised by the eye-centroid distance; the mesh maps to 0.064 on that
stricter scale: the two annotation schemes differ, most on the jaw.)
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from conftest import TESTDATA
from images import detect_all as detect
from images import landmarks68, pipeline
from images import load_bgr as load
from openiai.vision import landmarks as L
from openiai.vision.types import Face

DATA = TESTDATA

MEAN_NME_MAX = 0.05
FACE_NME_MAX = 0.12






def annotated_faces():
    """(image path, box [x, y, w, h], (68, 2) points) for every annotated face."""
    for name in ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"):
        for im in ET.parse(DATA / "dlib" / "faces" / name).getroot().iter("image"):
            for b in im.iter("box"):
                parts = sorted(b.iter("part"), key=lambda p: int(p.get("name")))
                pts = np.array([[float(p.get("x")), float(p.get("y"))] for p in parts])
                box = [int(b.get(k)) for k in ("left", "top", "width", "height")]
                yield "dlib/faces/" + im.get("file"), box, pts


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    iod = np.linalg.norm(gt[45] - gt[36])
    return float(np.linalg.norm(pred - gt, axis=1).mean() / iod)


@pytest.fixture(scope="module")
def xml_errors():
    cache: dict[str, tuple[np.ndarray, list[Face]]] = {}
    errs = []
    for rel, box, gt in annotated_faces():
        if rel not in cache:
            img = load(rel)
            cache[rel] = (img, detect(img))
        img, faces = cache[rel]
        centre = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
        near = [f for f in faces if np.linalg.norm(f.box[:2] + f.box[2:] / 2 - centre) < 0.5 * box[2]]
        assert near, f"no detection for the annotated face at {box} in {rel}"
        face = min(near, key=lambda f: np.linalg.norm(f.box[:2] + f.box[2:] / 2 - centre))
        errs.append(nme(landmarks68(img, face), gt))
    return np.array(errs)


def test_landmarks_match_dlib_annotations(xml_errors):
    assert len(xml_errors) == 43
    assert xml_errors.mean() < MEAN_NME_MAX, xml_errors.mean()
    assert xml_errors.max() < FACE_NME_MAX, (xml_errors.max(), xml_errors.argmax())


def test_tilted_face_is_fitted_upright():
    # Rotating the picture 35 deg must rotate the landmarks with it: dlib alone, fed an
    # axis-aligned box, drifts on faces tilted this far.
    img = load("face_recognition/examples/obama-480p.jpg")
    face = max(detect(img), key=lambda f: f.box[2])
    ref = landmarks68(img, face)
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 35, 1.0)
    rot = cv2.warpAffine(img, m, (w, h))
    face_r = max(detect(rot), key=lambda f: f.box[2])
    got = landmarks68(rot, face_r)
    expected = ref @ m[:, :2].T + m[:, 2]
    assert nme(got, expected) < 0.1


def test_face_shape_layout_follows_the_api_example():
    img = load("face_recognition/examples/obama-480p.jpg")
    face = max(detect(img), key=lambda f: f.box[2])
    shape = L.face_shape(pipeline().mesh(img, face))  # pupils from the iris model
    counts = {k: len(v) for k, v in shape.items()}
    assert counts == {
        "FaceProfile": 21, "LeftEye": 8, "RightEye": 8, "LeftEyeBrow": 8, "RightEyeBrow": 8,
        "Mouth": 22, "Nose": 13, "LeftPupil": 1, "RightPupil": 1,
    }  # fmt: skip
    assert sum(counts.values()) == 90
    assert all(type(p["X"]) is int and type(p["Y"]) is int for v in shape.values() for p in v)

    def xy(k):
        return np.array([[p["X"], p["Y"]] for p in shape[k]], float)

    # "Left" = the picture's left, as in the API's AnalyzeFace example.
    assert xy("LeftEye")[:, 0].mean() < xy("RightEye")[:, 0].mean()
    assert xy("LeftEyeBrow")[:, 0].mean() < xy("RightEyeBrow")[:, 0].mean()
    assert xy("LeftPupil")[0, 0] < xy("RightPupil")[0, 0]
    # Brows above eyes, eyes above the nose tip, nose tip above the mouth, chin lowest.
    assert xy("LeftEyeBrow")[:, 1].mean() < xy("LeftEye")[:, 1].mean() < xy("Nose")[0, 1] < xy("Mouth")[:, 1].mean()
    prof = xy("FaceProfile")
    assert prof[:, 1].argmax() in (9, 10, 11) and prof[0, 0] < prof[10, 0] < prof[20, 0]
    # Eye order: outer corner first, inner corner at index 4, the pupil inside the contour.
    le, re = xy("LeftEye"), xy("RightEye")
    assert le[0, 0] < le[4, 0] and re[0, 0] > re[4, 0]
    for eye, pupil in ((le, xy("LeftPupil")[0]), (re, xy("RightPupil")[0])):
        assert cv2.pointPolygonTest(eye.astype(np.float32), tuple(map(float, pupil)), False) >= 0
    # Brow: outer end, lower edge, inner end, upper edge -> upper edge above lower edge.
    lb = xy("LeftEyeBrow")
    assert lb[5:8, 1].mean() < lb[1:4, 1].mean()
    # Mouth: corners at 0 and 6, outer lower lip below outer upper lip.
    mo = xy("Mouth")
    assert mo[0, 0] < mo[6, 0] and mo[1:6, 1].mean() > mo[7:12, 1].mean()
    # Nose: the bridge top (1) highest, the base (6-8) lowest.
    no = xy("Nose")
    assert no[:, 1].argmin() == 1 and no[6:9, 1].mean() > no[0, 1]


def test_resample_is_even_by_arc_length():
    line = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 3.0]])  # length 4
    out = L.resample(line, 5)
    np.testing.assert_allclose(out, [[0, 0], [1, 0], [1, 1], [1, 2], [1, 3]], atol=1e-9)


def test_concurrent_calls_match_serial():
    img = load("dlib/faces/2008_002470.jpg")
    faces = detect(img)
    serial = [landmarks68(img, f) for f in faces]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = landmarks68(img, faces[i % len(faces)])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4 * len(faces))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, pts in results.items():
        np.testing.assert_array_equal(pts, serial[i % len(faces)])


def test_meshes_of_several_faces_in_one_batch_match_one_face_at_a_time():
    """FacePipeline.meshes batches each mesh pass and the iris model over a picture's faces;
    the points must be those of a run per face."""
    pixels = load("compreface/sample_images/011_3.jpg")
    faces = pipeline().detect(pixels, max_faces=5)
    assert len(faces) >= 2
    batched = pipeline().meshes(pixels, faces)
    for face, mesh in zip(faces, batched):
        one = pipeline().mesh(pixels, face)
        np.testing.assert_allclose(mesh.points, one.points, atol=1e-3)
        for a, b in ((mesh.left_eye, one.left_eye), (mesh.right_eye, one.right_eye)):
            np.testing.assert_allclose(a[0], b[0], atol=1e-3)
            np.testing.assert_allclose(a[1], b[1], atol=1e-3)
