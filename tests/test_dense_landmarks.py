"""The face mesh, the iris model, the rules over them, and AnalyzeDenseLandmarks.

Model checks run on real faces against YuNet's own five points (an independent detector);
the action goes through the official SDK over HTTP on both API versions, and its error and
limit cases in-process.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from images import b64, detect_all, load_bgr, pipeline
from openiai.vision import mesh as M
from openiai.vision.landmarks import dense_shape_points, ibug68

OBAMA = "face_recognition/examples/obama-480p.jpg"
GROUP = "compreface/sample_images/016_8.jpg"  # 8 annotated faces
DENSE_COUNTS = {"LeftEye": 16, "RightEye": 16, "LeftEyeBrow": 10, "RightEyeBrow": 10,
                "MouthOutside": 20, "MouthInside": 20, "Nose": 23, "LeftPupil": 5,
                "RightPupil": 5, "CentralAxis": 28, "Chin": 21, "LeftEyeBags": 18,
                "RightEyeBags": 18, "Forehead": 15}


def _largest(img):
    return max(detect_all(img), key=lambda f: float(f.box[2] * f.box[3]))


@pytest.fixture(scope="module")
def obama():
    img = load_bgr(OBAMA)
    face = _largest(img)
    return img, face, pipeline().mesh(img, face)


def _inside(poly: np.ndarray, pt) -> bool:
    return cv2.pointPolygonTest(np.asarray(poly, np.float32), tuple(map(float, pt)), False) >= 0


def test_mesh_and_iris_inputs_are_rgb_in_zero_to_one():
    from openiai.vision.models.face_mesh import to_rgb01

    bgr = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    expect = bgr[None, :, :, ::-1].astype(np.float32) / 255
    np.testing.assert_array_equal(to_rgb01(bgr), expect)  # bit for bit the MediaPipe scaling
    np.testing.assert_array_equal(to_rgb01(bgr[:, ::-1]), expect[:, :, ::-1])  # a mirrored view
    np.testing.assert_array_equal(to_rgb01(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)), expect)
    grey = bgr[:, :, 1]
    expect_grey = np.repeat(grey[None, :, :, None], 3, 3) / np.float32(255)
    np.testing.assert_array_equal(to_rgb01(grey), expect_grey)


def test_mesh_points_lie_on_the_face(obama):
    img, face, mesh = obama
    assert mesh.points.shape == (468, 3) and mesh.points.dtype == np.float32
    x, y, w, h = face.box
    xy = mesh.xy
    # The mesh covers the face: every point within the box grown by 10 %, its extent most of it.
    assert (xy[:, 0] > x - 0.1 * w).all() and (xy[:, 0] < x + 1.1 * w).all()
    assert (xy[:, 1] > y - 0.1 * h).all() and (xy[:, 1] < y + 1.1 * h).all()
    assert np.ptp(xy[:, 0]) > 0.7 * w and np.ptp(xy[:, 1]) > 0.7 * h
    # Eye centres of the mesh near YuNet's eyes (YuNet order: picture-left eye first).
    iod = float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))
    for idx, yunet_eye in ((M.EYE_L, face.landmarks[0]), (M.EYE_R, face.landmarks[1])):
        assert np.linalg.norm(xy[list(idx)].mean(0) - yunet_eye) < 0.15 * iod


def test_iris_pupils_inside_eyes(obama):
    img, face, mesh = obama
    assert mesh.left_eye is not None and mesh.right_eye is not None
    for (contour, iris), idx in ((mesh.left_eye, M.EYE_L), (mesh.right_eye, M.EYE_R)):
        assert contour.shape == (71, 2) and iris.shape == (5, 2)
        # The iris model's lid contour lies on the mesh's (the same vertices, finer crop).
        width = np.linalg.norm(mesh.xy[idx[8]] - mesh.xy[idx[0]])
        assert np.linalg.norm(contour[:16] - mesh.xy[list(idx)], axis=1).mean() < 0.15 * width
        eye_loop = contour[[0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 14, 13, 12, 11, 10, 9]]
        assert _inside(eye_loop, iris[0])
    left, right = mesh.pupils()
    assert left[0] < right[0]  # picture's left first
    assert M.eye_openness(mesh)[0] is True  # his eyes are open (narrowed by a broad smile)


def test_eye_openness_on_inspireface_reaction_faces():
    base = "insightface/inspireface_test_res/data/reaction/"
    got = {}
    for name in ("open_eyes.png", "close_eyes.jpeg"):
        img = load_bgr(base + name)
        got[name] = M.eye_openness(pipeline().mesh(img, _largest(img)))
    assert got["open_eyes.png"][0] is True and got["open_eyes.png"][1] > 0.9
    assert got["close_eyes.jpeg"][0] is False and got["close_eyes.jpeg"][1] < 0.1


def test_tilted_face_mesh_follows_the_rotation(obama):
    img, face, mesh = obama
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 35, 1.0)
    rot = cv2.warpAffine(img, m, (w, h))
    face_r = _largest(rot)
    got = ibug68(pipeline().mesh(rot, face_r, iris=False).points)
    expected = ibug68(mesh.points) @ m[:, :2].T + m[:, 2]
    ref = ibug68(mesh.points)
    assert np.linalg.norm(got - expected, axis=1).mean() / np.linalg.norm(ref[45] - ref[36]) < 0.06


def test_mapping_shapes(obama):
    img, face, mesh = obama
    p68 = ibug68(mesh.points)
    assert p68.shape == (68, 2)
    # iBUG layout: jaw 0-16 left to right, eye 36-41 left of eye 42-47, nose tip 30 between
    # the eyes and the mouth.
    assert p68[0, 0] < p68[8, 0] < p68[16, 0] and p68[8, 1] == p68[:17, 1].max()
    assert p68[36:42, 0].mean() < p68[42:48, 0].mean()
    assert p68[36:48, 1].mean() < p68[30, 1] < p68[48:68, 1].mean()
    dense = dense_shape_points(mesh)
    assert {k: len(v) for k, v in dense.items()} == DENSE_COUNTS
    assert dense["LeftEye"][:, 0].mean() < dense["RightEye"][:, 0].mean()
    assert dense["Forehead"][:, 1].mean() < dense["LeftEyeBrow"][:, 1].mean() < \
        dense["LeftEye"][:, 1].mean() < dense["LeftEyeBags"][:, 1].mean() < \
        dense["MouthOutside"][:, 1].mean() < dense["Chin"][:, 1].max()
    assert _inside(dense["LeftEye"], dense["LeftPupil"][0])
    assert _inside(dense["RightEye"], dense["RightPupil"][0])
    assert _inside(dense["MouthOutside"], dense["MouthInside"].mean(0))


def test_eye_state_rule_on_crops(testdata):
    # Five crops of each class: the lid-ratio rule must separate them at the shipped threshold.
    from openiai.bench.landmarks import eye_crop_ratio

    for folder, want in (("open", True), ("closed", False)):
        paths = sorted((testdata / "attributes/eye_state" / folder).glob("*.jpg"))[:5]
        got = [M.eye_open_probability(eye_crop_ratio(pipeline(), cv2.imread(str(p)))) >= 0.5
               for p in paths]
        assert got == [want] * 5, (folder, got)


def test_mouth_rule_separates_open_and_closed():
    # A smiling, open mouth (teeth showing) reads open; a mesh with the inner lips pressed
    # together reads closed.
    img = load_bgr(OBAMA)
    mesh = pipeline().mesh(img, _largest(img), iris=False)
    assert M.mouth_open(mesh)[0] is True
    closed = M.Mesh(mesh.points.copy())
    for a, b in M.INNER_LIP_PAIRS:
        closed.points[b] = closed.points[a]
    assert M.mouth_open(closed)[0] is False and M.mouth_ratio(closed) == 0


# ---------------------------------------------------------------- the action


def _xy(points):
    return np.array([[p["X"], p["Y"]] for p in points], float)


@pytest.mark.parametrize("version", ["2020-03-03", "2018-03-01"])
def test_dense_landmarks_over_the_sdk(engine_api, version):
    api = engine_api.variant(version=version)
    out = api.call("AnalyzeDenseLandmarks", Image=b64(OBAMA))
    assert out["FaceModelVersion"] == "3.0" and isinstance(out["ImageWidth"], int)
    (shape,) = out["DenseFaceShapeSet"]
    assert all(isinstance(shape[k], int) for k in ("X", "Y", "Width", "Height"))
    assert {k: len(shape[k]) for k in DENSE_COUNTS} == DENSE_COUNTS
    x, y, w, h = shape["X"], shape["Y"], shape["Width"], shape["Height"]
    for k in DENSE_COUNTS:
        pts = _xy(shape[k])
        assert all(type(p["X"]) is int and type(p["Y"]) is int for p in shape[k])
        assert (pts[:, 0] >= x - 0.1 * w).all() and (pts[:, 0] <= x + 1.1 * w).all(), k
        assert (pts[:, 1] >= y - 0.1 * h).all() and (pts[:, 1] <= y + 1.1 * h).all(), k
        assert (pts >= 0).all() and (pts[:, 0] < out["ImageWidth"]).all()
    assert _xy(shape["LeftEye"])[:, 0].mean() < _xy(shape["RightEye"])[:, 0].mean()


def test_dense_landmarks_mode_and_face_limit(engine_api):
    # Mode 0 (default): every face, but at most 5 (the largest), as the docs say.
    many = engine_api.call("AnalyzeDenseLandmarks", Image=b64(GROUP))["DenseFaceShapeSet"]
    assert len(many) == 5
    areas = [s["Width"] * s["Height"] for s in many]
    assert areas == sorted(areas, reverse=True)
    one = engine_api.call("AnalyzeDenseLandmarks", Image=b64(GROUP), Mode=1)["DenseFaceShapeSet"]
    assert len(one) == 1 and one[0]["Width"] * one[0]["Height"] == areas[0]
    two = engine_api.call("AnalyzeDenseLandmarks", Image=b64("compreface/sample_images/010_2.jpg"),
                          Mode=0)["DenseFaceShapeSet"]
    assert len(two) == 2


def test_dense_landmarks_errors(engine_inproc):
    assert engine_inproc.code("AnalyzeDenseLandmarks", Image=b64("compreface/sample_images/017_0.jpg")) \
        == "InvalidParameterValue.NoFaceInPhoto"
    assert engine_inproc.code("AnalyzeDenseLandmarks", Image=b64(OBAMA), Mode=2) == \
        "InvalidParameter"
    assert engine_inproc.code("AnalyzeDenseLandmarks", Image=b64(OBAMA), FaceModelVersion="2.0") == \
        "InvalidParameterValue.FaceModelVersionIllegal"
    assert engine_inproc.code("AnalyzeDenseLandmarks") == "InvalidParameterValue.ImageEmpty"
    rotated = "insightface/inspireface_test_res/data/bulk/r90.jpg"
    out = engine_inproc.call("AnalyzeDenseLandmarks", Image=b64(rotated), NeedRotateDetection=1)
    assert len(out["DenseFaceShapeSet"]) == 1
