"""Face quality (DetectFace ``FaceQualityInfo``) from measurable image properties, and the
``QualityControl`` levels 0-4.

Every number is an int in 0-100. The face is first mapped onto the 112 x 112 ArcFace/SFace
template (least-squares similarity from the five landmarks), so the measures do not depend on
the face's size, position or in-plane tilt; the measuring window is the inner face
(template x 24-88, y 30-100: brows to lower lip, cheek to cheek).

Sharpness. Variance of the Laplacian of the window's grey levels after a sigma-0.8 Gaussian
(so sensor noise and JPEG blocking, worst in dark blurred shots, do not read as detail). A
face smaller than the template is upsampled into it, so a small face scores as soft, which is
what matters for recognition. Low-contrast windows (grey std below 40) are stretched to std 40
first so a dark but sharp face is not called blurred. Mapping:
``Sharpness = -35 + 58 * log10(var)``, clipped to 0-100, anchored on 120 LFW faces blurred on
purpose (Gaussian sigma in units of face width / 110 px): unblurred median var 76 -> 74
("fine"), sigma 1 (49) -> 63, sigma 1.5 (32) -> 52 ("blurry"), sigma 3 (10.5) -> 24 ("very
blurry"); the labelled ``blur.jpg`` reads 41, sharp photos 90-100. Doc bands: [0,40] very
blurry, [40,60] blurry, [60,80] fine, [80,100] sharp.

Brightness. Mean grey level (BT.601 luma, 0-255) over the window, linearly:
``Brightness = 100 * Y / 255``. So the doc's [30,70] "normal" band is luma 77-178 on the face,
[0,30] "dark" below 77 and [70,100] "bright" above 178 (1,007 LFW faces: median 51).

Completeness, in frame. A median 68-point face (dlib layout, 516 near-frontal LFW faces) is
stored in template coordinates and mapped back into the image with the inverse similarity.
Each part is a set of those points (Eyebrow 17-26, Eye 36-47, Nose 27-35, Mouth 48-67,
Cheek = jaw 1-5 / 11-15 plus points halfway to the nose wings, Chin = jaw 6-10 plus points
halfway to the lower lip). A point scores 1 inside the image, 0 outside, linearly across
+-0.05 inter-ocular distances around the border; a part's score is 100 x the mean over its
points, and for parts that come in pairs (brows, eyes, cheeks) the worse side counts: one cut
eye is a cut eye.

Completeness, covered. Masks and hands leave the lower face smooth. Edge energy in the
nostril band and vertical edge energy across the lips (template y 82-104, tall enough for an
open mouth) are divided by the same energy on both cheeks, so lighting, contrast and blur
cancel, and ramped to 0..1 (lips: ratio 0.25 -> 0, 0.55 -> 1; 1,812 LFW faces: 0.1st
percentile 0.48, median 2.15; the masked ``mask2.jpg`` 0.16). Mouth and Chin are capped at
100 x the lip value; Nose and Cheek at 100 x max(nostril, lip) value, because the nostril cue
alone misfires (sunglasses, flat light) while a mask hides both. Eyes, brows and partial
occlusions (a hand on one cheek) are not measured.

Score. ``Sharpness x brightness factor x completeness factor x pose factor``:
- brightness factor 1 inside [30,70], falling linearly to 0.6 at 0 or 100;
- completeness factor = weighted mean of the parts / 100 (Eye .25, Mouth .2, Nose .15,
  Cheek .15, Chin .15, Eyebrow .1);
- pose factor (``pose.head_pose_deg`` on the five landmarks) 1 inside the doc's recommended
  enrolment ranges, falling by 1/60 per degree of |Yaw| beyond 10 and of |Pitch| beyond 15
  (pitch from five points is noisy, so it gets 5 degrees of slack; floor 0.3 each) and by
  1/100 per degree of |Roll| beyond 20 (floor 0.5).
The API's own example (Sharpness 73, Brightness 47, Cheek 52, Chin 47, the rest 99, Pitch 17)
gives 59 here against its 63. Doc bands: [0,40] poor, [40,60] fine, [60,80] good, [80,100]
excellent; >= 70 recommended for enrolment (1,007 LFW faces: median 71).

QualityControl (``passes``), following the doc's level text, each level including the ones
below it (a problem is a field inside the doc's "bad" reference range):
- 0: no check.
- 1: reject any of: extreme blur (Sharpness < 40), covered eyes (Eye <= 80), covered nose
  (Nose <= 60), covered mouth (Mouth <= 50).
- 2: also reject 3 or more of: too bright (Brightness > 70), too dark (< 30), blurry
  (Sharpness < 60), covered eyebrows (Eyebrow <= 80), cheeks (Cheek <= 70), chin (Chin <= 70).
- 3: also reject 1 or more of those six.
- 4: "optimal in all dimensions or a slight problem in one": on top of 3, at most one of
  Sharpness < 80 (not in the "sharp" band), Brightness outside [35,65], Eyebrow/Eye/Nose/
  Cheek/Mouth/Chin < 95 (counted once per part).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from openiai.vision.pose import head_pose_deg
from openiai.vision.types import Face

# ArcFace/SFace 112x112 template, YuNet order (subject's right eye, i.e. picture-left, first).
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
CROP = 112
CROP_H = 128  # the aligned crop runs on below the template to hold the chin
WINDOW = (slice(30, 100), slice(24, 88))  # rows (y), cols (x) of the inner face in the template
DENOISE_SIGMA = 0.8  # template pixels
MIN_STD = 40.0  # grey std below which the window is contrast-stretched before the Laplacian
SHARP_A, SHARP_B = -35.0, 58.0  # Sharpness = A + B * log10(var(Laplacian))
# Occlusion: template-coordinate bands and the ratio ramps (ratio <= lo: covered, >= hi: clear).
NOSE_BAND = (slice(72, 84), slice(44, 68))  # nose tip and nostrils
LIP_BAND = (slice(82, 104), slice(40, 72))  # lips, tall enough to reach both lips of an open mouth
CHEEK_REFS = ((slice(62, 74), slice(24, 40)), (slice(62, 74), slice(72, 88)))
NOSE_RAMP = (0.42, 0.62)
MOUTH_RAMP = (0.25, 0.55)
BORDER_BAND = 0.05  # completeness ramp half-width, in inter-ocular distances

# Median dlib 68-point layout in template coordinates (see module docstring).
MEAN68 = np.array(
    [[14.5, 55.2], [15.2, 65.9], [16.4, 76.4], [17.8, 87.0], [21.3, 97.0], [27.6, 105.9], [35.4, 113.4],
     [44.7, 119.3], [55.5, 121.1], [66.4, 119.4], [75.8, 113.7], [84.0, 106.4], [90.2, 97.5], [94.0, 87.3],
     [95.8, 76.4], [96.8, 65.5], [97.2, 54.6], [21.9, 47.1], [26.8, 42.2], [33.6, 40.7], [41.1, 41.5],
     [47.9, 44.2], [61.6, 44.0], [68.8, 41.4], [76.1, 40.3], [83.3, 41.9], [88.4, 46.7], [54.9, 51.8],
     [54.9, 58.6], [54.9, 65.5], [54.8, 72.7], [46.8, 77.6], [50.7, 79.2], [55.0, 80.3], [59.4, 79.1],
     [63.3, 77.5], [30.3, 53.9], [34.5, 51.4], [39.6, 51.4], [44.3, 54.4], [39.4, 55.3], [34.4, 55.4],
     [65.9, 54.2], [70.4, 51.1], [75.5, 51.2], [79.9, 53.4], [75.7, 55.0], [70.7, 55.0], [39.0, 91.5],
     [44.6, 88.5], [50.6, 87.1], [55.2, 88.0], [59.7, 87.2], [65.9, 88.4], [71.9, 91.5], [66.1, 97.0],
     [60.1, 99.6], [55.2, 100.1], [50.2, 99.6], [44.4, 97.1], [41.3, 91.5], [50.5, 90.4], [55.1, 90.9],
     [59.7, 90.5], [69.4, 91.7], [59.8, 94.7], [55.1, 95.3], [50.4, 94.7]],
    dtype=np.float64,
)  # fmt: skip


def _mid(a: int, b: int) -> np.ndarray:
    return (MEAN68[a] + MEAN68[b]) / 2


# Each part: one or two point sets (two = left/right, the worse one counts).
PARTS: dict[str, list[np.ndarray]] = {
    "Eyebrow": [MEAN68[17:22], MEAN68[22:27]],
    "Eye": [MEAN68[36:42], MEAN68[42:48]],
    "Nose": [MEAN68[27:36]],
    "Cheek": [
        np.vstack([MEAN68[1:6], [_mid(2, 31), _mid(3, 31), _mid(4, 48)]]),
        np.vstack([MEAN68[11:16], [_mid(14, 35), _mid(13, 35), _mid(12, 54)]]),
    ],
    "Mouth": [MEAN68[48:68]],
    "Chin": [np.vstack([MEAN68[6:11], [_mid(7, 57), _mid(8, 57), _mid(9, 57)]])],
}
PART_WEIGHTS = {"Eyebrow": 0.10, "Eye": 0.25, "Nose": 0.15, "Cheek": 0.15, "Mouth": 0.20, "Chin": 0.15}
# The doc's "incomplete" reference ranges: a part at or below this is covered/cut.
INCOMPLETE = {"Eyebrow": 80, "Eye": 80, "Nose": 60, "Cheek": 70, "Mouth": 50, "Chin": 70}


def similarity_to_template(landmarks: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (no reflection) mapping the 5 landmarks onto TEMPLATE."""
    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    s = src[:, 0] + 1j * src[:, 1]
    d = TEMPLATE[:, 0] + 1j * TEMPLATE[:, 1]
    sm, dm = s.mean(), d.mean()
    den = np.vdot(s - sm, s - sm).real
    a = np.vdot(s - sm, d - dm) / den if den > 1e-9 else 1.0 + 0j
    b = dm - a * sm
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def aligned_gray(pixels: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Grey face in template coordinates, 112 wide and CROP_H tall (down past the chin)."""
    if pixels.ndim == 2:
        gray = pixels
    else:
        gray = cv2.cvtColor(pixels, cv2.COLOR_BGRA2GRAY if pixels.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    # Replicated border: a face running off the image reads as flat there, not as a black edge.
    crop = cv2.warpAffine(gray, m, (CROP, CROP_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop.astype(np.float32)


def uncovered(face_gray: np.ndarray) -> tuple[float, float]:
    """(nose, mouth) in 0..1: how much the nostril and lip structure is visible.

    A mask or a hand leaves the lower face smooth. Edge energy (Sobel, after a sigma-1 blur)
    in the nostril band and vertical edge energy across the lips are divided by the same
    energy on both cheeks beside the nose, so lighting, contrast and blur cancel out.
    """
    g = cv2.GaussianBlur(face_gray, (0, 0), 1.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1)
    gm, ay = np.hypot(gx, gy), np.abs(gy)

    def cheeks(a: np.ndarray) -> float:
        return float(sum(a[r].mean() for r in CHEEK_REFS) / len(CHEEK_REFS)) + 1.0

    nose = float(gm[NOSE_BAND].mean()) / cheeks(gm)
    mouth = float(ay[LIP_BAND].mean()) / cheeks(ay)

    def ramp(v: float, lo: float, hi: float) -> float:
        return float(np.clip((v - lo) / (hi - lo), 0.0, 1.0))

    return ramp(nose, *NOSE_RAMP), ramp(mouth, *MOUTH_RAMP)


def sharpness_raw(win: np.ndarray) -> float:
    """Variance of the Laplacian of the lightly smoothed window, low contrast lifted to MIN_STD."""
    std = float(win.std())
    if 0 < std < MIN_STD:
        win = (win - win.mean()) * (MIN_STD / std) + win.mean()
    # Smoothing first keeps sensor noise and JPEG blocking (strongest in dark, blurred
    # shots) from reading as fine detail.
    win = cv2.GaussianBlur(win, (0, 0), DENOISE_SIGMA)
    return float(cv2.Laplacian(win, cv2.CV_32F).var())


def sharpness_score(var: float) -> int:
    return _clip100(SHARP_A + SHARP_B * math.log10(max(var, 1e-6)))


def brightness_score(win: np.ndarray) -> int:
    return _clip100(100.0 * float(win.mean()) / 255.0)


def _clip100(v: float) -> int:
    return int(max(0, min(100, round(v))))


def completeness(landmarks: np.ndarray, image_shape) -> dict[str, int]:
    """Per-part in-frame completeness (0-100) for a face with these 5 landmarks."""
    h, w = int(image_shape[0]), int(image_shape[1])
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    inv = cv2.invertAffineTransform(similarity_to_template(lm))
    band = max(BORDER_BAND * float(np.hypot(*(lm[1] - lm[0]))), 1.0)
    out: dict[str, int] = {}
    for name, sides in PARTS.items():
        scores = []
        for pts in sides:
            img_pts = pts @ inv[:, :2].T + inv[:, 2]
            # Signed distance to the nearest border, positive inside the image.
            inside = np.minimum.reduce(
                [img_pts[:, 0], img_pts[:, 1], (w - 1) - img_pts[:, 0], (h - 1) - img_pts[:, 1]]
            )
            scores.append(float(np.clip(0.5 + inside / (2 * band), 0.0, 1.0).mean()))
        out[name] = _clip100(100.0 * min(scores))
    return out


def _brightness_factor(b: int) -> float:
    if b < 30:
        return 1.0 - 0.4 * (30 - b) / 30
    if b > 70:
        return 1.0 - 0.4 * (b - 70) / 30
    return 1.0


def _pose_factor(pitch: float, yaw: float, roll: float) -> float:
    fy = max(0.3, 1.0 - max(0.0, abs(yaw) - 10) / 60)
    # Pitch from five points is the least reliable angle (+-10 deg on frontal faces), so
    # it gets extra slack before it costs anything.
    fp = max(0.3, 1.0 - max(0.0, abs(pitch) - 15) / 60)
    fr = max(0.5, 1.0 - max(0.0, abs(roll) - 20) / 100)
    return fy * fp * fr


def combine(sharp: int, bright: int, comp: dict[str, int], pose_deg: tuple[float, float, float]) -> int:
    fc = sum(PART_WEIGHTS[k] * comp[k] for k in PART_WEIGHTS) / 100.0
    return _clip100(sharp * _brightness_factor(bright) * fc * _pose_factor(*pose_deg))


def assess(pixels: np.ndarray, face: Face) -> dict:
    """FaceQualityInfo for one face: Score, Sharpness, Brightness, Completeness{...}."""
    m = similarity_to_template(face.landmarks)
    face_gray = aligned_gray(pixels, m)
    win = face_gray[WINDOW]
    sharp = sharpness_score(sharpness_raw(win))
    bright = brightness_score(win)
    comp = completeness(face.landmarks, pixels.shape)
    nose_ok, mouth_ok = uncovered(face_gray)
    # A covered part is as missing as a cut one. The nostril cue alone is not reliable
    # (sunglasses, flat lighting), so the nose only counts as covered when the lips are too,
    # which is the mask case; a mask also covers chin and cheeks.
    masked_ok = max(nose_ok, mouth_ok)
    caps = {"Nose": masked_ok, "Mouth": mouth_ok, "Chin": mouth_ok, "Cheek": masked_ok}
    comp = {k: min(v, _clip100(100.0 * caps[k])) if k in caps else v for k, v in comp.items()}
    score = combine(sharp, bright, comp, head_pose_deg(face, pixels.shape))
    return {"Score": score, "Sharpness": sharp, "Brightness": bright, "Completeness": comp}


def problems(quality: dict) -> dict[str, bool]:
    """The doc's named quality problems, each from its field's reference range."""
    c = quality["Completeness"]
    s, b = quality["Sharpness"], quality["Brightness"]
    return {
        "extreme_blur": s < 40,
        "covered_eyes": c["Eye"] <= INCOMPLETE["Eye"],
        "covered_nose": c["Nose"] <= INCOMPLETE["Nose"],
        "covered_mouth": c["Mouth"] <= INCOMPLETE["Mouth"],
        "too_bright": b > 70,
        "too_dark": b < 30,
        "blurry": s < 60,
        "covered_eyebrows": c["Eyebrow"] <= INCOMPLETE["Eyebrow"],
        "covered_cheeks": c["Cheek"] <= INCOMPLETE["Cheek"],
        "covered_chin": c["Chin"] <= INCOMPLETE["Chin"],
    }


LEVEL1 = ("extreme_blur", "covered_eyes", "covered_nose", "covered_mouth")
LEVEL2 = ("too_bright", "too_dark", "blurry", "covered_eyebrows", "covered_cheeks", "covered_chin")


def passes(quality: dict, level: int) -> bool:
    """Whether a face's FaceQualityInfo meets QualityControl ``level`` (0-4)."""
    if level not in (0, 1, 2, 3, 4):
        raise ValueError(f"QualityControl must be 0-4, got {level!r}")
    if level == 0:
        return True
    p = problems(quality)
    if any(p[k] for k in LEVEL1):
        return False
    n2 = sum(p[k] for k in LEVEL2)
    if level >= 2 and n2 >= 3:
        return False
    if level >= 3 and n2 >= 1:
        return False
    if level >= 4:
        c = quality["Completeness"]
        slight = int(quality["Sharpness"] < 80) + int(not 35 <= quality["Brightness"] <= 65)
        slight += sum(1 for k in INCOMPLETE if c[k] < 95)
        if slight > 1:
            return False
    return True
