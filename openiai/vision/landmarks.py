"""Face shapes from the 468-point mesh: the 68 iBUG points, AnalyzeFace's 90-point
``FaceShape`` and AnalyzeDenseLandmarks' ``DenseFaceShape``.

468 -> 68 (:func:`ibug68`). Each iBUG 300-W point is one mesh vertex plus a fixed offset in
the face's own frame (x along the outer-eye-corner line 33 -> 263, y perpendicular to it,
towards the mouth; units: that corner distance), table :data:`MESH_TO_IBUG68`. The vertex and
offset were fitted on 500 LFW faces (every 7th first image) against dlib's 68-point predictor
(the model this mapping replaced): per point, among the 10 vertices nearest on average, the
one whose offset is most constant, with the median offset. The offsets absorb where the two
annotation schemes differ (dlib's jaw follows the visible outline, the mesh's oval lies a
little inside it; dlib's nose tip sits lower). Held out on the 43 hand-boxed faces of
``dlib/faces/*_with_face_landmarks.xml``: see :mod:`openiai.bench.landmarks` (mean error /
outer-eye-corner distance 0.047; nearest vertex without offsets: 0.054).

68 -> 90 (:func:`face_shape_points`). Sides: in the API's own AnalyzeFace example
``LeftEye``/``LeftEyeBrow`` lie on the left of the picture (x 114-183 of 550) and
``RightEye`` on the right, and ``FaceProfile`` runs from the picture's left over the chin to
the right. So "Left" here is the *picture's* left (the subject's right eye, iBUG 36-41), the
opposite of YuNet's naming. The point orders below copy that example's orders.

- FaceProfile (21): jaw 0-16 resampled to 21 points by arc length (ends kept).
- LeftEye / RightEye (8 each): outer corner, 3 lower-lid points (outer to inner), inner
  corner, 3 upper-lid points (inner to outer). Each lid (corner, 2 iBUG points, corner) is
  resampled to 5 points by arc length and its 3 interior points kept.
- LeftEyeBrow / RightEyeBrow (8 each): iBUG's 5 brow points trace the brow's upper edge.
  Order: outer end, 3 lower-edge points (outer to inner), inner end, 3 upper-edge points
  (inner to outer). Upper edge = the 5 points resampled to 5, interior 3; lower edge = the
  same shifted "down the face" (perpendicular to the eye line) by ``BROW_THICKNESS`` x the
  inter-pupil distance (0.11 in the API example); the two ends are shifted by 3/4 of that.
- Mouth (22): left corner 48, outer lower lip 59..55, right corner 54, outer upper lip
  53..49 (12 points), then the inner lower lip left to right and the inner upper lip right
  to left, 5 points each: the inner contour corner-to-corner (60, 67, 66, 65, 64 and 64, 63,
  62, 61, 60) resampled to 7 points by arc length, interior 5.
- Nose (13): tip 30, bridge top 27, 4 points on the straight line 27 -> 31 (the left
  side; the API example's side points are collinear too), 32, 33, 34 along the base, then
  4 points on 35 -> 27 (right side, going up).
- LeftPupil / RightPupil (1 each): the iris model's iris centre when the eyes were run
  (:meth:`openiai.vision.mesh.Mesh.pupils`), else the centroid of that eye's 6 points.

468 -> DenseFaceShape (:func:`dense_shape_points`), straight from mesh vertices (and the
iris model's eyes), same picture-left convention, each contour a closed loop unless said:
- LeftEye / RightEye (16): the iris model's eyelid contour (16 points, the same vertices as
  the mesh's eye, 33..133 / 263..362, but fitted on a 64 px eye crop), starting at the outer
  corner, along the lower lid to the inner corner, back along the upper lid; the mesh's own
  16 eye vertices when the eyes were not run.
- LeftEyeBrow / RightEyeBrow (10): outer end, lower edge to the inner end, upper edge back.
- MouthOutside / MouthInside (20 each): from the picture's left corner counter-clockwise on
  screen (lower lip first), as the API describes.
- Nose (23): the tip (4), then the outline from the bridge top (168) down the picture-left
  side, along the nostrils' base and up the right side.
- LeftPupil / RightPupil (5): iris centre, then its 4 edge points (the iris model); when the
  eyes were not run, the eye contour's centroid alone.
- CentralAxis (28): the mesh's midline, from the top of the forehead (10) down the nose and
  through the lips to the chin (152).
- Chin (21): the lower face oval, from the picture-left cheek (234) under the chin to the
  right cheek (454).
- LeftEyeBags / RightEyeBags (18): the band under each eye between the mesh's first and
  second rings below the lower lid.
- Forehead (15): the upper face oval, from the picture-left temple (127) over the top (10) to
  the right temple (356). This is the mesh's top contour (about mid-forehead), not a
  hairline: the mesh does not model hair.

Points are ``{"X": int, "Y": int}`` in image pixels (rounded; may fall outside the image
when the face does).
"""

from __future__ import annotations

import numpy as np

from .mesh import EYE_L, EYE_R, OUTER_CORNER_L, OUTER_CORNER_R, Mesh

BROW_THICKNESS = 0.11  # lower brow edge offset, in inter-pupil distances

# iBUG point k = mesh vertex + (dx, dy) x outer-corner distance in the face frame (docstring).
MESH_TO_IBUG68 = (
    (127, -0.031, -0.015), (93, -0.040, -0.135), (132, -0.039, -0.099), (58, -0.051, -0.077), (172, -0.051, -0.029), (150, -0.115, -0.059),  # 0-5
    (149, -0.048, +0.019), (148, -0.071, +0.032), (175, -0.004, +0.108), (377, +0.058, +0.030), (378, +0.033, +0.021), (379, +0.104, -0.051),  # 6-11
    (365, +0.121, -0.129), (397, +0.114, -0.218), (361, +0.027, -0.095), (323, +0.028, -0.131), (454, +0.031, -0.178), (70, -0.014, +0.027),  # 12-17
    (63, +0.009, -0.003), (105, +0.035, +0.000), (65, +0.029, -0.048), (55, -0.000, -0.046), (285, -0.012, -0.050), (295, -0.039, -0.052),  # 18-23
    (334, -0.045, -0.003), (293, -0.019, -0.004), (300, +0.005, +0.030), (168, -0.004, +0.021), (419, -0.065, -0.027), (195, -0.004, +0.045),  # 24-29
    (274, -0.061, -0.068), (235, +0.030, +0.020), (99, +0.011, +0.008), (2, -0.003, +0.015), (328, -0.020, +0.009), (455, -0.038, +0.022),  # 30-35
    (33, +0.016, +0.015), (159, -0.035, +0.014), (157, -0.050, -0.006), (155, -0.005, +0.005), (144, +0.099, +0.007), (144, +0.001, +0.008),  # 36-41
    (398, -0.006, +0.025), (384, +0.043, -0.009), (385, +0.087, +0.009), (249, +0.001, -0.003), (373, -0.009, +0.006), (382, +0.093, +0.021),  # 42-47
    (61, -0.015, +0.006), (40, +0.028, -0.008), (72, -0.005, -0.032), (11, -0.004, -0.018), (302, -0.004, -0.030), (270, -0.039, -0.005),  # 48-53
    (291, +0.008, +0.008), (320, -0.015, +0.062), (315, +0.001, +0.052), (16, -0.005, +0.051), (85, -0.013, +0.050), (90, +0.003, +0.058),  # 54-59
    (76, +0.017, +0.009), (38, -0.014, +0.008), (12, -0.004, +0.013), (268, +0.005, +0.009), (306, -0.024, +0.011), (316, +0.003, -0.016),  # 60-65
    (14, -0.005, +0.014), (86, -0.015, -0.016),  # 66-67
)  # fmt: skip
_MAP_IDX = np.array([r[0] for r in MESH_TO_IBUG68])
_MAP_OFF = np.array([r[1:] for r in MESH_TO_IBUG68], dtype=np.float64)

# DenseFaceShape contours as mesh vertex lists (docstring); "L" = the picture's left.
BROW_L = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
BROW_R = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
MOUTH_OUTSIDE = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39,
                 40, 185)
MOUTH_INSIDE = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81,
                80, 191)
NOSE = (4, 168, 122, 196, 174, 236, 198, 209, 49, 64, 98, 97, 2, 326, 327, 294, 279, 429, 420, 456,
        399, 419, 351)
CENTRAL_AXIS = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 164, 0, 11, 12, 13, 14, 15,
                16, 17, 18, 200, 199, 175, 152)
CHIN = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288,
        361, 323, 454)
EYE_BAG_L = (130, 25, 110, 24, 23, 22, 26, 112, 243, 244, 233, 232, 231, 230, 229, 228, 31, 226)
EYE_BAG_R = (359, 255, 339, 254, 253, 252, 256, 341, 463, 464, 453, 452, 451, 450, 449, 448, 261,
             446)
FOREHEAD = (127, 162, 21, 54, 103, 67, 109, 10, 338, 297, 332, 284, 251, 389, 356)
# Closed-loop order of a 16-point eye (lower lid outer -> inner corner, then the upper lid
# back from inner to outer).
EYE_LOOP = (0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 14, 13, 12, 11, 10, 9)


def ibug68(points: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG 300-W points from (468, 2 or 3) mesh points (table above)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    across = p[OUTER_CORNER_R] - p[OUTER_CORNER_L]
    scale = max(float(np.hypot(*across)), 1e-6)
    u = across / scale
    frame = np.stack([u, [-u[1], u[0]]])  # rows: along the eye line, down the face
    return (p[_MAP_IDX] + (_MAP_OFF * scale) @ frame).astype(np.float32)


def resample(polyline: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along ``polyline`` (first and last kept)."""
    p = np.asarray(polyline, dtype=np.float64)
    seg = np.hypot(*np.diff(p, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return np.repeat(p[:1], n, axis=0)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], axis=1)


def _interior(polyline: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` interior points of ``polyline`` resampled to ``k + 2`` points."""
    return resample(polyline, k + 2)[1:-1]


def _lerp(a: np.ndarray, b: np.ndarray, ts) -> np.ndarray:
    return np.array([a + (b - a) * t for t in ts])


def face_shape_points(pts68: np.ndarray, pupils=None) -> dict[str, np.ndarray]:
    """The 90 FaceShape points as float arrays, keyed by FaceShape field name. ``pupils``:
    (picture-left, picture-right) pupil centres; default the eye centroids."""
    p = np.asarray(pts68, dtype=np.float64)
    lp, rp = p[36:42].mean(0), p[42:48].mean(0)  # picture-left / picture-right eye centres
    iod = max(float(np.hypot(*(rp - lp))), 1.0)
    across = (rp - lp) / iod
    down = np.array([-across[1], across[0]])  # perpendicular to the eye line, towards the mouth
    off = BROW_THICKNESS * iod * down

    def eye(outer: int, lower: list[int], inner: int, upper: list[int]) -> np.ndarray:
        lo = _interior(p[[outer, *lower, inner]], 3)
        up = _interior(p[[inner, *upper, outer]], 3)
        return np.vstack([p[outer], lo, p[inner], up])

    def brow(idx: list[int]) -> np.ndarray:  # idx from outer to inner end
        upper = _interior(p[idx], 3)  # outer -> inner
        return np.vstack([p[idx[0]] + 0.75 * off, upper + off, p[idx[-1]] + 0.75 * off, upper[::-1]])

    mouth = np.vstack(
        [
            p[[48, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49]],
            _interior(p[[60, 67, 66, 65, 64]], 5),
            _interior(p[[64, 63, 62, 61, 60]], 5),
        ]
    )
    quarters = [0.25, 0.5, 0.75, 1.0]
    left_side = _lerp(p[27], p[31], quarters)  # bridge top down to the left nostril wing
    right_side = _lerp(p[27], p[35], quarters[::-1])  # right nostril wing up to the bridge top
    nose = np.vstack([p[30], p[27], left_side, p[[32, 33, 34]], right_side])
    return {
        "FaceProfile": resample(p[0:17], 21),
        "LeftEye": eye(36, [41, 40], 39, [38, 37]),
        "RightEye": eye(45, [46, 47], 42, [43, 44]),
        "LeftEyeBrow": brow([17, 18, 19, 20, 21]),
        "RightEyeBrow": brow([26, 25, 24, 23, 22]),
        "Mouth": mouth,
        "Nose": nose,
        "LeftPupil": (lp if pupils is None else np.asarray(pupils[0], np.float64))[None],
        "RightPupil": (rp if pupils is None else np.asarray(pupils[1], np.float64))[None],
    }


def shape_to_json(points: dict[str, np.ndarray]) -> dict[str, list[dict[str, int]]]:
    return {k: [{"X": int(round(x)), "Y": int(round(y))} for x, y in v] for k, v in points.items()}


def face_shape(mesh: Mesh) -> dict[str, list[dict[str, int]]]:
    """AnalyzeFace ``FaceShape`` for one face: 90 points in the API's field names and orders."""
    pupils = mesh.pupils() if mesh.eyes() else None
    return shape_to_json(face_shape_points(ibug68(mesh.points), pupils))


def dense_shape_points(mesh: Mesh) -> dict[str, np.ndarray]:
    """The DenseFaceShape contours (without the face box) as float arrays (docstring)."""
    p = np.asarray(mesh.points, dtype=np.float64)[:, :2]

    def at(idx) -> np.ndarray:
        return p[list(idx)]

    def eye(e, idx) -> np.ndarray:
        contour = e[0][:16] if e is not None else at(idx)
        return np.asarray(contour, np.float64)[list(EYE_LOOP)]

    def pupil(e, idx) -> np.ndarray:
        return np.asarray(e[1], np.float64) if e is not None else at(idx).mean(0)[None]

    return {
        "LeftEye": eye(mesh.left_eye, EYE_L),
        "RightEye": eye(mesh.right_eye, EYE_R),
        "LeftEyeBrow": at(BROW_L),
        "RightEyeBrow": at(BROW_R),
        "MouthOutside": at(MOUTH_OUTSIDE),
        "MouthInside": at(MOUTH_INSIDE),
        "Nose": at(NOSE),
        "LeftPupil": pupil(mesh.left_eye, EYE_L),
        "RightPupil": pupil(mesh.right_eye, EYE_R),
        "CentralAxis": at(CENTRAL_AXIS),
        "Chin": at(CHIN),
        "LeftEyeBags": at(EYE_BAG_L),
        "RightEyeBags": at(EYE_BAG_R),
        "Forehead": at(FOREHEAD),
    }


def dense_shape(mesh: Mesh) -> dict[str, list[dict[str, int]]]:
    """AnalyzeDenseLandmarks' contours for one face (the action adds X/Y/Width/Height)."""
    return shape_to_json(dense_shape_points(mesh))
