"""The canonical face crop: the one picture of each enrolled face that the server keeps.

Request images are not stored, so this crop is what any later recognizer re-extracts its
features from (a group upgraded to another FaceModelVersion, dlib's ResNet, a user's own ONNX
network with its own template) and what the console shows as a thumbnail. It is a 5-point
similarity warp, like SFace's alignment, onto a larger canvas with a wider margin; the face's
5 landmarks are kept in crop coordinates (:func:`canonical_crop` returns them) so a recognizer
re-aligns from the crop with its own template exactly as it would from the original photo.

Geometry: 320 x 320 px, SFace's 112 px ArcFace template scaled by 1.5 and placed so that its
point (56, 64) (between the eyes and the nose tip) lands on the canvas centre. Measured on 200
LFW faces (``tools/measure_canonical_crop.py``) for the windows later recognizers cut:

=====================================================  =================  ==================
window (from YuNet's 5 points)                         fully inside       area inside (mean)
=====================================================  =================  ==================
SFace / ArcFace 112 x 112                              100 %              100 %
dlib 150 px chip, padding 0.25 (from the eye centres)  100 %              100 %
face-mesh ROI: 1.5 x the face box, square, eye-level   97 %               99.98 %
=====================================================  =================  ==================

The scale sets the resolution: 1.5 gives 52.9 px between the eye centres, as dlib's 150 px
chip has (52.6 px), so its chip is re-cut at about 1:1 and SFace's 112 crop (35.2 px) is a
downscale. A tighter canvas (256 px at this scale) cut the face-mesh ROI for over half of the
faces; keeping 256 px and lowering the scale to 1.3 would upsample dlib's chip instead. A
network that wants more than ~53 px between the eyes (e.g. 224 px inputs with ArcFace
proportions, ~70 px) gets an upsampled crop; the photo's own resolution is often lower anyway
(LFW's median is 44 px).

Downscaling first averages the source pixels (``INTER_AREA`` on the face's region) and then
warps: the 5-point warp alone samples bilinearly and aliases a large face. For SFace this made
no measurable difference (LFW photos upscaled 4x: mean cosine 0.9448 with, 0.9443 without,
against the 1x photo's embedding); it is there for the thumbnail and the recognizers to come.

Format (same 200 LFW faces, SFace on the re-aligned crop vs SFace on the original photo):

=========================  ==========  ===========  ==========
stored crop                bytes/face  mean cosine  min cosine
=========================  ==========  ===========  ==========
320 px, not encoded        -           0.99916      0.99775
320 px PNG                 134,410     0.99916      0.99775
320 px JPEG quality 95     25,190      0.99847      0.99628
320 px JPEG quality 90     18,015      0.99782      0.99498
320 px JPEG quality 80     12,727      0.99587      0.99029
112 px PNG (revision 0002) 23,116      1            1
=========================  ==========  ===========  ==========

JPEG quality 95 (OpenCV's default 4:2:0 chroma): it costs what the old 112 px PNG did for 8x
the area, and loses 0.0007 of cosine to encoding against 0.0008 lost to resampling twice (the
"not encoded" row); PNG is 5x larger for that 0.0007. 4:4:4 chroma gained 0.0003 for 23 % more
bytes. On photos upscaled 4x (the canvas scales down) quality 95 still gives 0.99734 / 0.99362.

Faces stored before this crop existed (database revision 0002) keep their 112 x 112 SFace crop
with the landmarks at the template positions (where that alignment put them): SFace re-aligns
from it exactly, but wider windows (dlib's chip, a face-mesh ROI) run off its edges into black
borders. See migration 0003.
"""

from __future__ import annotations

import cv2
import numpy as np

from openiai.vision.align import TEMPLATE, similarity_matrix

SIZE = 320
SCALE = 1.5
# The point of the 112 px template that lands on the canvas centre.
ANCHOR = np.array([56.0, 64.0])

JPEG_QUALITY = 95
CROP_FORMAT = ".jpg"


def _template_to_canvas() -> np.ndarray:
    """(2, 3) matrix from SFace's 112 px template frame onto the canonical canvas."""
    m = np.zeros((2, 3), np.float64)
    m[0, 0] = m[1, 1] = SCALE
    m[:, 2] = SIZE / 2.0 - SCALE * ANCHOR
    return m


def canonical_template() -> np.ndarray:
    """Where the canonical crop puts the 5 template points, float32 (5, 2), YuNet order."""
    return _apply(_template_to_canvas(), TEMPLATE).astype(np.float32)


def crop_matrix(landmarks5: np.ndarray) -> np.ndarray:
    """(2, 3) similarity from the image onto the canonical canvas.

    SFace's own least-squares fit composed with a fixed scale and shift: the fit is
    equivariant under similarities, so re-fitting the crop's landmarks to the 112 template
    gives back exactly SFace's alignment of the original photo."""
    return _compose(_template_to_canvas(), similarity_matrix(landmarks5))


def canonical_crop(pixels: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(crop uint8 (SIZE, SIZE, 3) BGR, the landmarks in crop coordinates float32 (5, 2)).

    Parts of the canvas outside the photo are black, as in SFace's crop."""
    landmarks5 = np.asarray(landmarks5, np.float64).reshape(5, 2)
    m = crop_matrix(landmarks5)
    source, to_source = _source_region(pixels, m)
    crop = cv2.warpAffine(source, _compose(m, to_source), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop, _apply(m, landmarks5).astype(np.float32)


def _source_region(pixels: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of the photo the canvas covers, pre-shrunk when the warp scales down.

    Returns (pixels, matrix from those pixels' coordinates back to the photo's)."""
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    if scale >= 1.0:
        return pixels, _identity()
    h, w = pixels.shape[:2]
    corners = _apply(_invert(m), np.array([[0, 0], [SIZE, 0], [0, SIZE], [SIZE, SIZE]], float))
    pad = 2.0 / scale  # bilinear taps just outside the canvas edge
    x0, y0 = np.floor(np.maximum(corners.min(axis=0) - pad, 0)).astype(int)
    x1, y1 = np.ceil(np.minimum(corners.max(axis=0) + pad, [w, h])).astype(int)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the canvas misses the photo: nothing to average
        return pixels, _identity()
    region = pixels[y0:y1, x0:x1]
    out_w, out_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    small = cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)
    fx, fy = (x1 - x0) / out_w, (y1 - y0) / out_h
    # INTER_AREA maps pixel centres: small (u, v) covers region ((u + .5) * fx - .5, ...).
    back = np.array([[fx, 0.0, x0 + 0.5 * fx - 0.5], [0.0, fy, y0 + 0.5 * fy - 0.5]])
    return small, back


def encode_crop(crop: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """The stored bytes of a canonical crop (JPEG, see the table above for why)."""
    ok, buf = cv2.imencode(CROP_FORMAT, crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 HxWx3 array
        raise RuntimeError("could not encode the face crop")
    return buf.tobytes()


def decode_crop(data: bytes) -> np.ndarray:
    """uint8 HxWx3 BGR from stored crop bytes: JPEG, or the PNG of faces stored before 0003."""
    crop = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if crop is None:
        raise ValueError("stored face crop is not a decodable image")
    return crop


def _identity() -> np.ndarray:
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """outer(inner(p)) as one (2, 3) matrix."""
    return (np.vstack([outer, [0.0, 0.0, 1.0]]) @ np.vstack([inner, [0.0, 0.0, 1.0]]))[:2]


def _invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return points @ m[:, :2].T + m[:, 2]
