"""Large photos: a JPEG is decoded at reduced size for detection and at full size only when a
face is aligned (issue 15 item 3).

The pixels the recognizer sees must be Pillow's, byte for byte, whatever the EXIF orientation;
faces found on the reduced decode must be the eager path's faces, in full-resolution
coordinates; DetectFace over HTTP answers those coordinates.
"""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from conftest import TESTDATA

from openiai.bench import large_photos
from openiai.core import timing
from openiai.core.errors import ApiError
from openiai.vision.image import _decode_pil, decode_bytes


def _jpeg(pixels_rgb: np.ndarray, orientation: int | None = None, mode: str = "RGB") -> bytes:
    im = Image.fromarray(pixels_rgb).convert(mode)
    buf = io.BytesIO()
    if orientation is None:
        im.save(buf, format="JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(buf, format="JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def _pillow(data: bytes) -> np.ndarray:
    return _decode_pil(Image.open(io.BytesIO(data), formats=["JPEG"]), "JPEG")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    out = tmp_path_factory.mktemp("large")
    return large_photos.make_photos(TESTDATA, out, canvases=1, group=False, large=1)


@pytest.fixture(scope="module")
def detector():
    from openiai.core.settings import Settings
    from openiai.vision.models import ModelZoo

    return ModelZoo(Settings.from_env().model_dir, 1).get("yunet")


@pytest.mark.parametrize("orientation", [None, 1, 2, 3, 4, 5, 6, 7, 8])
def test_lazy_jpeg_pixels_equal_pillows_for_every_orientation(orientation):
    rng = np.random.default_rng(orientation or 0)
    rgb = np.zeros((120, 200, 3), np.uint8)
    rgb[:40, :60] = (255, 0, 0)  # an asymmetric picture: every turn differs
    rgb[60:] = rng.integers(0, 255, (60, 200, 3), dtype=np.uint8)
    data = _jpeg(rgb, orientation)
    image = decode_bytes(data)
    assert image._pixels is None, "a JPEG is not decoded before something reads its pixels"
    expected = _pillow(data)
    assert image.size == (expected.shape[1], expected.shape[0])
    assert np.array_equal(image.pixels, expected)


def test_grey_jpeg_pixels_equal_pillows():
    rgb = np.random.default_rng(1).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    data = _jpeg(rgb, mode="L")
    assert np.array_equal(decode_bytes(data).pixels, _pillow(data))


def test_truncated_and_cmyk_jpegs_keep_pillows_eager_path():
    rgb = np.random.default_rng(2).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    data = _jpeg(rgb)
    with pytest.raises(ApiError) as err:
        decode_bytes(data[: len(data) * 2 // 3])
    assert err.value.code == "FailedOperation.ImageDecodeFailed"
    cmyk = _jpeg(rgb, mode="CMYK")
    image = decode_bytes(cmyk)
    assert image._pixels is not None and np.array_equal(image.pixels, _pillow(cmyk))


def test_reduced_decode_finds_the_eager_paths_faces_in_full_coordinates(photos, detector):
    for path in photos[:1] + [p for p in photos if p.name.startswith("large_")][:1]:
        data = path.read_bytes()
        eager = detector.detect(_pillow(data), 34, 0)
        image = decode_bytes(data)
        lazy = detector.detect_image(image, 34, 0)
        assert image._pixels is None, "detection alone never decodes the full picture"
        pairs, only_eager, only_lazy = large_photos.match(eager, lazy)
        assert not only_eager and not only_lazy, path.name
        for a, b in pairs:
            tol = max(2.0, 0.03 * float(a.box[3]))  # sub-pixel at YuNet's scale
            assert np.abs(a.box - b.box).max() <= tol
            assert np.abs(a.landmarks - b.landmarks).max() <= tol
            x, y, w, h = b.box
            assert 0 <= x and 0 <= y and x + w <= image.width and y + h <= image.height
        if path.name.startswith("canvas"):
            # the pasted faces run from 24 to 640 px tall; MinFaceSize 34 keeps those >= 34
            heights = sorted(float(f.box[3]) for f in lazy)
            assert heights[0] < 50 and heights[-1] > 400, heights


def test_decode_inside_detect_is_not_counted_twice(photos, detector):
    times = timing.begin()
    image = decode_bytes(photos[0].read_bytes())
    with timing.stage("detect"):
        detector.detect_image(image, 34, 0)
    with timing.stage("embed"):
        image.pixels  # noqa: B018
    assert times["decode"] > 0 and times["detect"] > 0
    total = sum(times.values())
    assert total == pytest.approx(times["decode"] + times["detect"] + times["embed"])


def test_detect_face_over_http_answers_full_resolution_coordinates(engine_api, photos, detector):
    path = [p for p in photos if p.name.startswith("canvas")][0]
    data = path.read_bytes()
    out = engine_api.call("DetectFace", Image=base64.b64encode(data).decode("ascii"),
                          MaxFaceNum=20)
    assert out["ImageWidth"] == 4000 and out["ImageHeight"] == 3000
    eager = detector.detect(_pillow(data), 34, 20)
    assert len(out["FaceInfos"]) == len(eager)
    for info, face in zip(out["FaceInfos"], eager):
        x, y, w, h = face.box
        assert abs(info["X"] - x) <= max(3, 0.03 * h) and abs(info["Height"] - h) <= max(3, 0.03 * h)
