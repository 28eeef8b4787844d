"""5-point similarity alignment to SFace's 112x112 template, as ``cv::FaceRecognizerSF::alignCrop``.

Ported from OpenCV's ``getSimilarityTransformMatrix`` (Umeyama without reflection, with the
same hard-coded template mean and rank-1 handling) so crops, and therefore embeddings, match
OpenCV's to float precision; then ``warpAffine`` with bilinear interpolation and a black border.
"""

from __future__ import annotations

import cv2
import numpy as np

from openiai.vision.types import Face

CROP_SIZE = 112
# ArcFace/SFace template, YuNet landmark order (subject's right eye first).
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
# OpenCV hard-codes this rounded mean rather than computing it; keep it for identical crops.
TEMPLATE_MEAN = np.array([56.0262, 71.9008], dtype=np.float32)


def similarity_matrix(landmarks: np.ndarray, template: np.ndarray = TEMPLATE,
                      template_mean: np.ndarray = TEMPLATE_MEAN) -> np.ndarray:
    """(2, 3) float64 matrix mapping image points onto the template (least squares, no flip).

    Another recognizer's template (a user's own, :mod:`openiai.vision.models.own`) passes its
    five points and their mean; the defaults are SFace's, with OpenCV's rounded mean."""
    template = np.asarray(template, dtype=np.float32).reshape(5, 2)
    template_mean = np.asarray(template_mean, dtype=np.float32).reshape(2)
    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    src_mean = src.mean(axis=0, dtype=np.float32)
    src_d = (src - src_mean).astype(np.float32)
    dst_d = (template - template_mean).astype(np.float32)
    a = (dst_d.astype(np.float64).T @ src_d.astype(np.float64)) / 5.0  # A[i][j] = mean(dst_i * src_j)
    d = np.array([1.0, 1.0])
    if np.linalg.det(a) < 0:
        d[1] = -1.0
    u, s, vt = np.linalg.svd(a)
    tol = s.max() * 2 * np.finfo(np.float32).tiny
    rank = int((s > tol).sum())
    if rank == 1 and np.linalg.det(u) * np.linalg.det(vt) <= 0:
        t = u @ np.diag([d[0], -1.0]) @ vt
    elif rank == 1:
        t = u @ vt
    else:
        t = u @ np.diag(d) @ vt
    var = float((src_d.astype(np.float64) ** 2).sum(axis=0).sum() / 5.0)
    scale = (s[0] * d[0] + s[1] * d[1]) / var if var > 0 else 1.0
    m = np.zeros((2, 3), np.float64)
    m[:, :2] = t * scale
    m[:, 2] = template_mean.astype(np.float64) - scale * (t @ src_mean.astype(np.float64))
    return m


def align(pixels: np.ndarray, face: Face, template: np.ndarray = TEMPLATE,
          template_mean: np.ndarray = TEMPLATE_MEAN,
          size: tuple[int, int] = (CROP_SIZE, CROP_SIZE)) -> np.ndarray:
    """The face warped onto the template: (size[1], size[0], 3) uint8 BGR; by default the
    (112, 112, 3) crop SFace takes."""
    m = similarity_matrix(face.landmarks, template, template_mean)
    return cv2.warpAffine(pixels, m, size, flags=cv2.INTER_LINEAR)
