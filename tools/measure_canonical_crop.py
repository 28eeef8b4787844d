"""How much of a face the stored canonical crop keeps: the numbers in openiai/vision/canonical.py.

For N LFW faces (one photo each of N identities, spread over the alphabet):

* format: SFace's embedding of the face aligned from the original photo (what enrolment
  stores) against SFace's embedding re-aligned from the canonical crop after encoding and
  decoding it (what a re-extraction would get), per storage format, with the bytes per face;
* coverage: how many of the windows later recognizers cut (SFace's 112 crop, dlib's 150 px
  chip with 0.25 padding, a face-mesh ROI of 1.5x the face box) lie inside the canvas.

``--upscale K`` enlarges every photo K times first, to see the crop of a high-resolution photo
(the canvas then scales down).

    PYTHONPATH=. python tools/measure_canonical_crop.py --faces 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from openiai.vision import canonical
from openiai.vision.align import CROP_SIZE, similarity_matrix
from openiai.bench.evaluate import face_pipeline
from openiai.vision.image import decode_bytes

REPO = Path(__file__).resolve().parents[1]
LFW = REPO / ".." / "shared" / "faces" / "lfw" / "images"

FORMATS = {  # name -> encoder
    "PNG": lambda c: cv2.imencode(".png", c)[1].tobytes(),
    "JPEG q95": lambda c: canonical.encode_crop(c, 95),
    "JPEG q90": lambda c: canonical.encode_crop(c, 90),
    "JPEG q80": lambda c: canonical.encode_crop(c, 80),
}

# dlib's 5-point template on the unit square (get_face_chip_details): the subject's left eye
# outer and inner corner, right eye outer and inner corner, base of the nose.
DLIB_TEMPLATE = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                          [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                          [0.4901123135679, 0.6277975316475]])
DLIB_SIZE, DLIB_PADDING = 150, 0.25


def sample(n: int) -> list[Path]:
    people = sorted(p for p in LFW.resolve().iterdir() if p.is_dir())
    step = max(1, len(people) // n)
    return [sorted(p.glob("*.jpg"))[0] for p in people[::step]][:n]


def realign(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """SFace's 112 px input cut from a stored crop by its landmarks."""
    return cv2.warpAffine(crop, similarity_matrix(landmarks), (CROP_SIZE, CROP_SIZE),
                          flags=cv2.INTER_LINEAR)


def _apply(m: np.ndarray, pts) -> np.ndarray:
    return np.asarray(pts, float) @ m[:, :2].T + m[:, 2]


def _invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]


def _two_point_similarity(a0, a1, b0, b1) -> np.ndarray:
    """The similarity taking a0 -> b0 and a1 -> b1."""
    za0, za1, zb0, zb1 = (complex(*p) for p in (a0, a1, b0, b1))
    k = (zb1 - zb0) / (za1 - za0)
    t = zb0 - k * za0
    return np.array([[k.real, -k.imag, t.real], [k.imag, k.real, t.imag]])


def windows(face) -> dict[str, np.ndarray]:
    """Corners (4, 2), in photo coordinates, of the windows later recognizers would cut."""
    lm = face.landmarks.astype(float)
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    sface = _apply(_invert(similarity_matrix(lm)), square * CROP_SIZE)
    # dlib's chip, placed by the eye centres (YuNet has no eye corners).
    chip = (DLIB_PADDING + DLIB_TEMPLATE) / (2 * DLIB_PADDING + 1) * DLIB_SIZE
    to_chip = _two_point_similarity(lm[0], lm[1], chip[2:4].mean(0), chip[0:2].mean(0))
    dlib = _apply(_invert(to_chip), square * DLIB_SIZE)
    # MediaPipe-style ROI: the box's centre, 1.5x its longer side, turned to the eye line.
    x, y, w, h = (float(v) for v in face.box)
    side = 1.5 * max(w, h)
    angle = np.arctan2(lm[1, 1] - lm[0, 1], lm[1, 0] - lm[0, 0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mesh = np.array([x + w / 2, y + h / 2]) + ((square - 0.5) * side) @ rot.T
    return {"SFace 112": sface, "dlib 150 chip": dlib, "face-mesh 1.5x box": mesh}


def inside(corners: np.ndarray) -> tuple[bool, float]:
    """(window fully on the canvas, share of its area on the canvas) - corners in crop px."""
    u = np.linspace(0.0, 1.0, 41)
    g = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)
    p0, p1, p2 = corners[0], corners[1], corners[2]
    pts = p0 + g[:, :1] * (p1 - p0) + g[:, 1:] * (p2 - p0)
    on = ((pts >= -0.5) & (pts <= canonical.SIZE + 0.5)).all(axis=1)
    return bool(on.all()), float(on.mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--upscale", type=float, default=1.0, help="enlarge each photo first")
    args = ap.parse_args(argv)

    engine = face_pipeline()
    reference, realigned = [], {name: [] for name in ["raw"] + list(FORMATS)}
    sizes = {name: [] for name in FORMATS}
    legacy_png = []
    coverage: dict[str, list[tuple[bool, float]]] = {}
    iods = []
    for path in sample(args.faces):
        pixels = decode_bytes(path.read_bytes()).pixels
        if args.upscale != 1.0:
            pixels = cv2.resize(pixels, None, fx=args.upscale, fy=args.upscale,
                                interpolation=cv2.INTER_CUBIC)
        faces = engine.detect(pixels, max_faces=1)
        if not faces:
            continue
        face = faces[0]
        iods.append(float(np.linalg.norm(face.landmarks[0] - face.landmarks[1])))
        reference.append(engine.aligned_crop(pixels, face, "3.0"))
        legacy_png.append(len(cv2.imencode(".png", reference[-1])[1]))
        crop, landmarks = canonical.canonical_crop(pixels, face.landmarks)
        realigned["raw"].append(realign(crop, landmarks))
        for name, encode in FORMATS.items():
            data = encode(crop)
            sizes[name].append(len(data))
            realigned[name].append(realign(canonical.decode_crop(data), landmarks))
        m = canonical.crop_matrix(face.landmarks)
        for name, corners in windows(face).items():
            coverage.setdefault(name, []).append(inside(_apply(m, corners)))

    ref = engine.zoo.get("sface").embed(reference)
    print(f"{len(reference)} LFW faces, upscale {args.upscale:g}: median eye distance "
          f"{np.median(iods):.1f} px in the photo, {canonical.SCALE * 35.24:.1f} px on the "
          f"{canonical.SIZE} px canvas")
    print()
    print(f"{'format':<22} {'bytes/face':>10} {'mean cos':>9} {'min cos':>9}")
    print(f"{'112 PNG (rev. 0002)':<22} {np.mean(legacy_png):>10.0f} {'1':>9} {'1':>9}")
    for name, crops in realigned.items():
        cos = np.sum(ref * engine.zoo.get("sface").embed(crops), axis=1)
        size = f"{np.mean(sizes[name]):.0f}" if name in sizes else "-"
        label = "no encoding" if name == "raw" else f"{canonical.SIZE} {name}"
        print(f"{label:<22} {size:>10} {cos.mean():>9.5f} {cos.min():>9.5f}")
    print()
    print(f"{'window':<22} {'fully inside':>12} {'area inside':>12}")
    for name, rows in coverage.items():
        full = 100 * np.mean([r[0] for r in rows])
        area = 100 * np.mean([r[1] for r in rows])
        print(f"{name:<22} {full:>11.1f}% {area:>11.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
