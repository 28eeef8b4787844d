"""``openiai bench engine --large``: decode + detection of large photos, the eager path against
the reduced-size one.

Before: Pillow decodes the whole JPEG, YuNet's downscaled copies are resized from the full
pixels. After (:class:`openiai.vision.types.DecodedImage`): OpenCV's libjpeg-turbo decodes at
1/2, 1/4 or 1/8 size (DCT scaling) for detection, and the full picture only when a face is
aligned (timed separately). The photos are made in a temporary folder, never kept: LFW faces
pasted at face heights from 24 to 640 px on 4000 x 3000 canvases (tiny faces in big photos),
the annotated CompreFace group photos upscaled to a 4000 px long side, and the large
CompreFace/deepface photos brought down to the 4000 px JPEG limit. Both paths run in
alternating rounds; faces are matched by box IoU >= 0.5.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import numpy as np

FACE_HEIGHTS = (24, 30, 34, 40, 48, 64, 96, 160, 320, 640)
LARGE = ("compreface/sample_images/001_A.jpg", "compreface/sample_images/002_A.jpg",
         "compreface/sample_images/003_A.jpg", "compreface/sample_images/004_A.jpg",
         "compreface/sample_images/005_A.jpg", "deepface/dataset/img40.jpg",
         "deepface/dataset/img41.jpg", "deepface/dataset/img49.jpg")


def make_photos(testdata: Path, out: Path, canvases: int = 4, group: bool = True,
                large: int | None = None) -> list[Path]:
    """Large JPEGs (quality 90) for the benchmark and the tests, written under ``out``."""
    from PIL import Image, ImageFilter, ImageOps

    rng = np.random.default_rng(15)
    lfw = sorted((testdata / "lfw" / "images").glob("*/*_0001.jpg"))
    paths = []
    for c in range(canvases):
        noise = rng.integers(60, 200, (300, 400, 3), dtype=np.uint8)
        canvas = Image.fromarray(noise).resize((4000, 3000), Image.BILINEAR).filter(
            ImageFilter.GaussianBlur(8))
        x = 40
        for k, height in enumerate(FACE_HEIGHTS):
            src = Image.open(lfw[(c * 37 + k * 101) % len(lfw)]).convert("RGB")
            # the LFW face (about 110 px tall in the 250 px frame) scaled to `height`
            side = max(8, round(250 * height / 110))
            tile = src.resize((side, side), Image.LANCZOS)
            y = 1500 - side // 2 if side < 1400 else 0
            if x + side > 4000:
                break
            canvas.paste(tile, (x, max(0, y)))
            x += side + 40
        path = out / f"canvas_{c}.jpg"
        canvas.save(path, quality=90)
        paths.append(path)
    ups = sorted((testdata / "compreface" / "sample_images").glob("01[0-6]_*.jpg")) if group else []
    for src_path in ups + [testdata / p for p in LARGE[:large]]:
        if not src_path.exists():
            continue
        im = ImageOps.exif_transpose(Image.open(src_path)).convert("RGB")
        f = 4000 / max(im.size)
        im = im.resize((round(im.size[0] * f), round(im.size[1] * f)), Image.LANCZOS)
        path = out / f"{'large' if f < 1 else 'up'}_{src_path.parent.name}_{src_path.name}"
        im.save(path, quality=90)
        paths.append(path)
    return paths


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / max(a[2] * a[3] + b[2] * b[3] - inter, 1e-9)


def match(old, new) -> tuple[list[tuple], list, list]:
    """(pairs, only old, only new): faces paired greedily by IoU >= 0.5."""
    pairs, left = [], list(new)
    only_old = []
    for f in old:
        best = max(left, key=lambda g: _iou(f.box, g.box), default=None)
        if best is not None and _iou(f.box, best.box) >= 0.5:
            pairs.append((f, best))
            left.remove(best)
        else:
            only_old.append(f)
    return pairs, only_old, left


def eager_decode(data: bytes) -> np.ndarray:
    """The path before: Pillow decodes every pixel at once."""
    from PIL import Image

    from ..vision.image import _decode_pil

    return _decode_pil(Image.open(io.BytesIO(data), formats=["JPEG"]), "JPEG")


def measure(testdata: Path, rounds: int = 3, min_face_size: int = 34) -> dict:
    from ..core.settings import Settings
    from ..vision.image import decode_bytes
    from ..vision.models import ModelZoo

    settings = Settings.from_env()
    detector = ModelZoo(settings.model_dir, 1).get("yunet")
    detector.warmup()
    rows = {"old": [], "new": [], "full": []}
    agree = {"both": 0, "only_old": 0, "only_new": 0, "box_px": [], "rel": [],
             "only_old_heights": [], "only_new_heights": [], "smallest_old": [],
             "smallest_new": []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_photos(Path(testdata), Path(tmp))
        for path in paths:
            data = path.read_bytes()
            t_old, t_new = [], []
            for _ in range(rounds):  # alternate: a busy machine slows both alike
                t = time.perf_counter()
                old = detector.detect(eager_decode(data), min_face_size, 0)
                t_old.append(time.perf_counter() - t)
                t = time.perf_counter()
                image = decode_bytes(data)
                new = detector.detect_image(image, min_face_size, 0)
                t_new.append(time.perf_counter() - t)
            t = time.perf_counter()
            image.pixels  # noqa: B018 (the full decode alignment would cause)
            rows["full"].append(time.perf_counter() - t)
            rows["old"].append(min(t_old))
            rows["new"].append(min(t_new))
            pairs, only_old, only_new = match(old, new)
            if path.name.startswith("canvas"):
                agree["smallest_old"].append(round(min(float(f.box[3]) for f in old)))
                agree["smallest_new"].append(round(min(float(f.box[3]) for f in new)))
            agree["both"] += len(pairs)
            agree["only_old"] += len(only_old)
            agree["only_new"] += len(only_new)
            agree["only_old_heights"] += [round(float(f.box[3])) for f in only_old]
            agree["only_new_heights"] += [round(float(f.box[3])) for f in only_new]
            for f, g in pairs:
                d = float(max(np.abs(f.box - g.box).max(), np.abs(f.landmarks - g.landmarks).max()))
                agree["box_px"].append(d)
                agree["rel"].append(d / float(f.box[3]))
    out = {k: 1000 * float(np.median(v)) for k, v in rows.items()}
    out["photos"] = len(rows["old"])
    out.update(agree)
    return out


def report(r: dict) -> None:
    print(f"large photos ({r['photos']} JPEGs, long side 4000 px, MinFaceSize 34): decode + "
          "detection, median per photo")
    print(f"  before (Pillow full decode, resize for YuNet)   {r['old']:8.1f} ms")
    print(f"  after  (reduced-size decode for YuNet)          {r['new']:8.1f} ms  "
          f"({r['old'] / r['new']:.2f}x)")
    print(f"  + full-size decode once a face is aligned       {r['full']:8.1f} ms  "
          f"(after + this: {r['old'] / (r['new'] + r['full']):.2f}x)")
    px = np.array(r["box_px"]) if r["box_px"] else np.zeros(1)
    rel = np.array(r["rel"]) if r["rel"] else np.zeros(1)
    print(f"  faces found by both {r['both']}, only before {r['only_old']} "
          f"(heights {r['only_old_heights']}), only after {r['only_new']} "
          f"(heights {r['only_new_heights']})")
    print(f"  box/landmark offset between the paths: median {np.median(px):.2f} px, "
          f"95th percentile {np.percentile(px, 95):.2f} px, max {px.max():.2f} px "
          f"({100 * np.median(rel):.2f} % / {100 * rel.max():.2f} % of the face height)")
    print(f"  smallest face box found on the pasted-face canvases (faces {FACE_HEIGHTS[0]}-"
          f"{FACE_HEIGHTS[-1]} px): before {r['smallest_old']}, after {r['smallest_new']}")
