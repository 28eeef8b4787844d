"""The stored canonical face crop: geometry, re-alignment from it, encoding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from images import LFW, pipeline
from openiai.vision import canonical
from openiai.vision.align import CROP_SIZE, similarity_matrix
from openiai.vision.image import decode_bytes
from openiai.vision.models import ModelZoo

PHOTOS = [LFW / "Colin_Powell" / "Colin_Powell_0038.jpg",
          LFW / "Tony_Blair" / "Tony_Blair_0006.jpg",
          LFW / "Ariel_Sharon" / "Ariel_Sharon_0016.jpg"]


def realign(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(crop, similarity_matrix(landmarks), (CROP_SIZE, CROP_SIZE),
                          flags=cv2.INTER_LINEAR)


def detected(path, upscale: float = 1.0):
    pixels = decode_bytes(path.read_bytes()).pixels
    if upscale != 1.0:
        pixels = cv2.resize(pixels, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    return pixels, pipeline().detect(pixels, max_faces=1)[0]


def test_refitting_the_crop_landmarks_gives_the_fixed_template_map():
    """Whatever the face's pose in the photo, SFace's fit on the crop's landmarks is the
    inverse of the canonical placement: the crop re-aligns exactly as the photo did."""
    rng = np.random.default_rng(7)
    expected = np.linalg.inv(np.vstack([canonical._template_to_canvas(), [0, 0, 1]]))[:2]
    for _ in range(20):
        angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.3, 4.0)
        rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = canonical.TEMPLATE @ rot.T + rng.uniform(-50, 400, 2)
        points = points + rng.normal(0, 1.5, points.shape)  # landmarks never fit exactly
        pixels = np.zeros((500, 500, 3), np.uint8)
        crop, crop_landmarks = canonical.canonical_crop(pixels, points)
        assert crop.shape == (canonical.SIZE, canonical.SIZE, 3) and crop.dtype == np.uint8
        m = canonical.crop_matrix(points)
        assert np.allclose(crop_landmarks, points @ m[:2, :2].T + m[:, 2], atol=1e-3)
        assert np.allclose(similarity_matrix(crop_landmarks), expected, atol=1e-4)


def test_canonical_template_is_the_scaled_sface_template():
    t = canonical.canonical_template()
    eye_distance = float(np.linalg.norm(t[1] - t[0]))
    assert eye_distance == pytest.approx(canonical.SCALE * 35.24, abs=0.05)
    # The anchor point of the 112 px template sits on the canvas centre.
    offset = canonical.SCALE * (canonical.TEMPLATE.mean(axis=0) - canonical.ANCHOR)
    assert np.allclose(t.mean(axis=0) - offset, canonical.SIZE / 2, atol=1e-3)


# The recut crop went through JPEG: float features keep cosine > 0.99 with the photo's; int8
# ones are a little more sensitive to such pixel changes (lowest measured 0.984).
@pytest.mark.parametrize("inference,bound", [("float", 0.99), ("int8", 0.975)])
@pytest.mark.parametrize("upscale", [1.0, 4.0])  # 4x: the canvas scales down (pre-shrunk path)
def test_sface_crop_recut_from_the_stored_crop_matches_the_photo(upscale, inference, bound):
    engine = pipeline()
    direct, recut = [], []
    for path in PHOTOS:
        pixels, face = detected(path, upscale)
        crop, landmarks = canonical.canonical_crop(pixels, face.landmarks)
        stored = canonical.decode_crop(canonical.encode_crop(crop))
        direct.append(engine.aligned_crop(pixels, face, "3.0"))
        recut.append(realign(stored, landmarks))
        assert np.abs(recut[-1].astype(int) - direct[-1]).mean() < 8
    sface = ModelZoo(inference=inference).get("sface")
    cosines = np.sum(sface.embed(direct) * sface.embed(recut), axis=1)
    assert cosines.min() > bound, cosines


def test_crop_bytes_are_jpeg_and_old_png_crops_still_decode():
    pixels, face = detected(PHOTOS[0])
    crop, _ = canonical.canonical_crop(pixels, face.landmarks)
    data = canonical.encode_crop(crop)
    assert data[:2] == b"\xff\xd8"
    assert canonical.decode_crop(data).shape == crop.shape
    old = cv2.imencode(".png", pipeline().aligned_crop(pixels, face, "3.0"))[1].tobytes()  # 0002
    assert canonical.decode_crop(old).shape == (112, 112, 3)
    with pytest.raises(ValueError):
        canonical.decode_crop(b"not an image")


def test_a_face_partly_outside_the_photo_gets_black_borders():
    pixels, face = detected(PHOTOS[1])
    shifted = face.landmarks - np.array([face.landmarks[:, 0].min() + 5, 0], np.float32)
    crop, _ = canonical.canonical_crop(pixels, shifted)
    assert not crop[:, :40].any() and crop[:, -40:].any()
