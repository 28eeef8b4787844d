"""A face mask drawn onto a photo from the 468-point face mesh, for measuring CompareMaskFace.

The polygon runs along the mesh's jaw line from one cheek (at nose-tip height) round the chin
to the other, and closes over the nose just above its tip (mesh vertex 4), so everything
from the nose tip down is covered: the occlusion CompareMaskFace's docs allow ("the mask may
cover up to the nose tip"). It is filled with one of InspireFace's four mask textures
(``insightface/python_package_images/mask_*.jpg``, the pictures InsightFace renders its own
synthetic masks with) stretched over the polygon's box, with a soft edge so the outline is not
a hard artificial line. Which texture a picture gets is fixed by its name (crc32), so runs
repeat exactly.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

# Jaw line of the MediaPipe mesh, picture-left cheek (at nose-tip height) -> chin (152) ->
# picture-right cheek, then the top edge over the nose: cheek points under the eyes, the
# nose's sides (ala) and the point just above the tip.
JAW = (93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361,
       323)
TOP = (454, 352, 345, 277, 4, 47, 116, 123, 234)
TEXTURES = ("mask_white.jpg", "mask_blue.jpg", "mask_black.jpg", "mask_green.jpg")


def polygon(mesh_xy: np.ndarray) -> np.ndarray:
    """(k, 2) int32 polygon of the mask in image pixels."""
    pts = np.asarray(mesh_xy, np.float64)[list(JAW + TOP), :2]
    return np.round(pts).astype(np.int32)


@lru_cache(maxsize=8)
def texture(testdata: str, name: str) -> np.ndarray:
    img = cv2.imread(str(Path(testdata) / "insightface" / "python_package_images" / name),
                     cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"mask texture {name} not found under {testdata}")
    return img


def draw_mask(pixels: np.ndarray, mesh_xy: np.ndarray, key: str, testdata: Path) -> np.ndarray:
    """A copy of ``pixels`` (BGR) with a textured mask over the polygon of ``mesh_xy``."""
    poly = polygon(mesh_xy)
    h, w = pixels.shape[:2]
    x0, y0 = np.clip(poly.min(0), 0, [w - 1, h - 1])
    x1, y1 = np.clip(poly.max(0), 0, [w - 1, h - 1])
    if x1 <= x0 or y1 <= y0:
        return pixels.copy()
    tex = texture(str(testdata), TEXTURES[zlib.crc32(key.encode()) % len(TEXTURES)])
    tex = cv2.resize(tex, (int(x1 - x0 + 1), int(y1 - y0 + 1)), interpolation=cv2.INTER_AREA)
    layer = np.zeros_like(pixels)
    layer[y0:y1 + 1, x0:x1 + 1] = tex
    alpha = np.zeros((h, w), np.uint8)
    cv2.fillPoly(alpha, [poly], 255)
    k = max(3, int(round(0.01 * max(x1 - x0, y1 - y0))) * 2 + 1)
    a = cv2.GaussianBlur(alpha, (k, k), 0).astype(np.float32)[:, :, None] / 255.0
    out = pixels.astype(np.float32) * (1 - a) + layer.astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
