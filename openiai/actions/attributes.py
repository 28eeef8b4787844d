"""DetectFaceAttributes, and the attribute fields DetectFace fills with NeedFaceAttributes=1.

The estimates come from :class:`openiai.services.attributes.AttributeEstimator`; this module
only turns them into the documented wire fields. A family that was not requested, a face past
the 5th, or a field no model estimates credibly gets the documented "meaningless" default
(0 / ``{"Type": 0, "Probability": 0}``, or null where the spec allows it): the README's
attribute table says which fields those are and why.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ApiError, value
from ..services.attributes import DETECT_FACE_FAMILIES, FAMILIES, FaceAttributes
from ..vision.appearance import HAIR_CLASSES, HAIR_COLOR
from ..vision.models.expression import api_emotion
from . import imaging
from .registry import Context, action

ATTRIBUTES_FOR = 5  # the docs: attributes of the 5 largest faces; the rest are meaningless
ONLY_VERSION = "3.0"  # the docs: "You can enter only 3.0 for this API"
_BY_LOWER = {f.lower(): f for f in FAMILIES}


def parse_families(raw: str | None) -> set[str]:
    """FaceAttributesType: comma-separated, case-insensitive; empty or "None" means none."""
    families: set[str] = set()
    for item in (raw or "").split(","):
        name = item.strip().lower()
        if not name or name == "none":
            continue
        if name not in _BY_LOWER:
            raise ApiError("InvalidParameterValue", f"FaceAttributesType contains `{item.strip()}`, which is not an "
                          f"attribute type; use None or any of {', '.join(FAMILIES)}.")
        families.add(_BY_LOWER[name])
    return families


# ------------------------------------------------------------------ AttributeItem helpers
def _none() -> dict:
    """Not requested, past the 5th face, or not estimated: the documented default."""
    return {"Type": 0, "Probability": 0.0}


def _yes_no(p: float | None, yes: int = 1, no: int = 0) -> dict:
    """A yes/no estimate as an AttributeItem: the more likely answer and its probability."""
    if p is None:
        return _none()
    p = float(p)
    return {"Type": yes, "Probability": p} if p >= 0.5 else {"Type": no, "Probability": 1.0 - p}


def _argmax(probs) -> dict:
    if probs is None:
        return _none()
    probs = np.asarray(probs, np.float64)
    k = int(np.argmax(probs))
    return {"Type": k, "Probability": float(probs[k])}


def _emotion(probs) -> dict:
    if probs is None:
        return _none()
    kind, p = api_emotion(probs)  # the model's classes -> the documented Emotion types
    return {"Type": kind, "Probability": p}


def _hair_colors(a: FaceAttributes) -> list[float] | None:
    """P(black, blond, brown, grey): the API's Color order (0-3) is the head's class order."""
    probs = a.appearance.get(HAIR_COLOR)
    return None if probs is None else [probs[c] for c in HAIR_CLASSES]


def _percent(p: float | None) -> int:
    return 0 if p is None else int(round(100.0 * float(p)))


def _age(years: float | None, top: int) -> int:
    return 0 if years is None else int(min(max(round(years), 0), top))


def _eye_open_item(p_open: float | None) -> dict:
    # One answer for both eyes: the rule averages their lid openings (vision.mesh).
    if p_open is None:
        return _none()
    return _yes_no(1.0 - p_open, yes=1, no=0)  # Type 0 open, 1 closed


# ------------------------------------------------------------------ DetectFaceAttributes
def detail_attributes(a: FaceAttributes | None, families: set[str]) -> dict:
    """FaceDetailAttributesInfo for one face (``a`` None: past the 5th face)."""
    fam = families if a is not None else set()
    a = a or FaceAttributes()
    has = fam.__contains__
    pose = a.pose if has("Headpose") and a.pose else (0, 0, 0)
    bald = a.head("bald") if has("Hair") else None
    return {
        "Age": _age(a.age, 65) if has("Age") else 0,  # 65 means "65 or older"
        "Beauty": _percent(a.head("attractive")) if has("Beauty") else 0,
        "Emotion": _emotion(a.emotion) if has("Emotion") else _none(),
        "Eye": {
            # Sunglasses are not told apart from glasses (CelebA's Eyeglasses label has both),
            # so Type is 0 or 1, never 2.
            "Glass": _yes_no(a.head("eyeglasses")) if has("Eye") else _none(),
            "EyeOpen": _eye_open_item(a.p_eyes_open) if has("Eye") else _none(),
            "EyelidType": _none(),  # not estimated: no labelled data for double eyelids
            "EyeSize": ({"Type": a.eye_size[0], "Probability": float(a.eye_size[1])}
                        if has("Eye") and a.eye_size else _none()),
        },
        "Eyebrow": {
            "EyebrowDensity": _yes_no(a.head("bushy_eyebrows")) if has("Eyebrow") else _none(),
            "EyebrowCurve": _yes_no(a.head("arched_eyebrows")) if has("Eyebrow") else _none(),
            "EyebrowLength": _none(),  # not estimated
        },
        "Gender": _yes_no(a.p_male, yes=0, no=1) if has("Gender") else _none(),  # 0 male
        "Hair": {
            # Only "bald" (Type 0) is estimated of the five lengths; otherwise the default.
            "Length": ({"Type": 0, "Probability": bald} if bald is not None and bald >= 0.5
                       else _none()),
            "Bang": _yes_no(a.head("bangs")) if has("Hair") else _none(),
            "Color": _argmax(_hair_colors(a)) if has("Hair") else _none(),
        },
        "Hat": {
            "Style": _yes_no(a.head("hat")) if has("Hat") else _none(),  # 1: a hat of any kind
            "Color": _none(),  # not estimated
        },
        "HeadPose": {"Pitch": pose[0], "Yaw": pose[1], "Roll": pose[2]},
        # The detector says mask or no mask; the documented partial levels (1-3) are not told
        # apart, so a mask is reported as 4 (worn).
        "Mask": _yes_no(a.p_mask, yes=4, no=0) if has("Mask") else _none(),
        "Mouth": {"MouthOpen": _yes_no(a.p_mouth_open) if has("Mouth") else _none()},
        "Moustache": _yes_no(a.head("beard")) if has("Moustache") else _none(),
        "Nose": _none(),  # not estimated
        "Shape": _none(),  # not estimated
        "Skin": _none(),  # not estimated
        "Smile": _percent(a.p_smiling) if has("Smile") else 0,
    }


@action("DetectFaceAttributes")
def detect_face_attributes(ctx: Context, req) -> dict:
    max_faces = imaging.max_face_num(req.MaxFaceNum)
    if req.FaceModelVersion not in (None, "", ONLY_VERSION):
        raise value("FaceModelVersionIllegal",
                    f"DetectFaceAttributes supports only FaceModelVersion {ONLY_VERSION}.")
    families = parse_families(req.FaceAttributesType)
    found = imaging.find_faces(ctx, req.Image, req.Url, max_faces=max_faces,
                               rotate=imaging.flag(req.NeedRotateDetection))
    first = found.faces[:ATTRIBUTES_FOR]
    estimates = ctx.services.attributes.estimate(found.image.pixels, first, families)
    infos = []
    for i, face in enumerate(found.faces):
        a = estimates[i] if i < ATTRIBUTES_FOR else None
        infos.append({"FaceRect": imaging.face_rect(face),
                      "FaceDetailAttributesInfo": detail_attributes(a, families)})
    return {"ImageWidth": found.image.width, "ImageHeight": found.image.height,
            "FaceDetailInfos": infos, "FaceModelVersion": ONLY_VERSION}


# ------------------------------------------------------------------ DetectFace
def empty_face_attributes() -> dict:
    # Returned but "meaningless" when not requested (and past the 5th face), as the docs say.
    return {"Gender": 0, "Age": 0, "Expression": 0, "Glass": False, "Pitch": 0, "Yaw": 0,
            "Roll": 0, "Beauty": 0, "Hat": False, "Mask": False,
            "Hair": {"Length": 0, "Bang": 0, "Color": 0}, "EyeOpen": False}


def face_attributes(a: FaceAttributes) -> dict:
    """DetectFace's FaceAttributesInfo from the DETECT_FACE_FAMILIES estimates."""
    pose = a.pose or (0, 0, 0)
    bald = a.head("bald")
    colors = _hair_colors(a)
    return {
        "Gender": _percent(a.p_male),  # 0-49 female, 50-100 male; the further, the surer
        "Age": _age(a.age, 100),
        "Expression": _percent(a.p_smiling),  # 0 neutral .. 100 laughing: 100 x P(smiling)
        "Glass": bool((a.head("eyeglasses") or 0.0) >= 0.5),
        "Pitch": pose[0], "Yaw": pose[1], "Roll": pose[2],
        "Beauty": _percent(a.head("attractive")),
        "Hat": bool((a.head("hat") or 0.0) >= 0.5),
        "Mask": bool((a.p_mask or 0.0) >= 0.5),
        "Hair": {
            # Length may be null ("no valid value"): only baldness is estimated.
            "Length": 0 if bald is not None and bald >= 0.5 else None,
            "Bang": 0 if (a.head("bangs") or 0.0) >= 0.5 else 1,  # here 0 = bangs, 1 = none
            "Color": None if colors is None else int(np.argmax(colors)),
        },
        "EyeOpen": None if a.p_eyes_open is None else bool(a.p_eyes_open >= 0.5),
    }


def detect_face_attributes_for(ctx: Context, pixels, faces) -> list[dict]:
    """FaceAttributesInfo for DetectFace's faces: estimated for the 5 largest."""
    first = faces[:ATTRIBUTES_FOR]
    estimates = ctx.services.attributes.estimate(pixels, first, set(DETECT_FACE_FAMILIES))
    return ([face_attributes(a) for a in estimates]
            + [empty_face_attributes() for _ in faces[ATTRIBUTES_FOR:]])
