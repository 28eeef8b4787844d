"""Where dlib's HOG detector puts its box relative to YuNet's 5 points: the BOX_* constants of
openiai/vision/models/dlib_resnet.py.

dlib's 5-point predictor starts from a box as dlib's own detector draws it; the server has
YuNet's landmarks instead. For a seeded sample of LFW photos where both detectors find exactly
one face (and the boxes agree), prints the median HOG-box centre offset from the centre of
the eyes and mouth, along and across the eye line, and its width, all in eye-to-mouth
distances (the shipped constants: 379 faces of 400, measured along the picture axes,
which on LFW's upright faces is the same frame: -0.117 / -0.036 / 2.44).

    PYTHONPATH=. python tools/measure_dlib_box.py [--n 400]
"""

from __future__ import annotations

import argparse
import random

import dlib
import numpy as np

from openiai.bench import evaluate
from openiai.vision.image import decode_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=400)
    args = ap.parse_args()
    paths = evaluate.all_images(evaluate.lfw_dir(None))
    random.Random(0).shuffle(paths)
    hog = dlib.get_frontal_face_detector()
    pipeline = evaluate.face_pipeline()
    rows = []
    for path in paths[:args.n]:
        pixels = decode_bytes(path.read_bytes()).pixels
        faces = pipeline.detect(pixels, max_faces=1)
        boxes = hog(np.ascontiguousarray(pixels[:, :, ::-1]), 1)
        if not faces or len(boxes) != 1:
            continue
        pts, r = faces[0].landmarks.reshape(5, 2), boxes[0]
        eyes, mouth = (pts[0] + pts[1]) / 2, (pts[3] + pts[4]) / 2
        dist = float(np.linalg.norm(mouth - eyes))
        along = (pts[1] - pts[0]) / np.linalg.norm(pts[1] - pts[0])
        across = np.array([-along[1], along[0]])
        offset = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2]) - (eyes + mouth) / 2
        if np.linalg.norm(offset) > dist:  # the two detectors found different faces
            continue
        rows.append([offset @ along / dist, offset @ across / dist, (r.right() - r.left()) / dist])
    a = np.array(rows)
    print(f"{len(a)} faces; median along {np.median(a[:, 0]):.3f}, across {np.median(a[:, 1]):.3f}, "
          f"width {np.median(a[:, 2]):.3f} eye-to-mouth distances (std {a.std(0).round(3).tolist()})")


if __name__ == "__main__":
    main()
