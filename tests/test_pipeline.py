"""The face pipeline composes only the models a request needs, loads each once, and is the one
path from a face to its feature (every image action's features equal the pipeline's own)."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from conftest import TESTDATA
from openiai.api.dispatch import dispatch
from openiai.core.settings import Settings
from openiai.core.timing import begin
from openiai.services import Services
from openiai.vision.image import decode_bytes

PHOTO = "lfw/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    s = Services(Settings.from_env(data_dir=tmp_path_factory.mktemp("pipeline")), background=False)
    yield s
    s.close()


def call(services: Services, action: str, **params) -> tuple[dict, dict]:
    """Run one action in-process; returns (output, seconds per stage it went through)."""
    stages = begin()
    out = dispatch(services, services.keys.ensure_account("pipeline"), "2020-03-03", action,
                   params)
    stages.pop("serialise", None)  # every action has it; the models are what matter here
    return out, stages


def photo() -> str:
    return base64.b64encode((TESTDATA / PHOTO).read_bytes()).decode()


def test_detect_face_runs_only_the_models_it_needs(services):
    zoo = services.faces.zoo
    assert not any(zoo.loaded(n) for n in zoo.names())  # lazy: nothing loaded at start
    out, stages = call(services, "DetectFace", Image=photo())
    assert len(out["FaceInfos"]) == 1
    assert [n for n in zoo.names() if zoo.loaded(n)] == ["yunet"]
    assert set(stages) == {"decode", "detect"}

    _, stages = call(services, "DetectFace", Image=photo(), NeedQualityDetection=1)
    assert set(stages) == {"decode", "detect", "quality"}  # a measured rule: no model
    assert not zoo.loaded("face_mesh") and not zoo.loaded("sface")

    _, stages = call(services, "DetectFaceAttributes", Image=photo(), FaceAttributesType="Headpose")
    assert "landmarks" in stages and zoo.loaded("face_mesh")
    assert not any(zoo.loaded(n) for n in ("sface", "sface_appearance", "iris", "age", "gender",
                                           "expression", "mask"))

    out, stages = call(services, "DetectFace", Image=photo(), NeedFaceAttributes=1)
    assert {"landmarks", "attributes"} <= set(stages)
    assert all(zoo.loaded(n) for n in ("face_mesh", "iris", "sface_appearance", "age", "gender",
                                       "expression"))  # expression: Expression (smile)
    # The recognizer and the mask SSD are not needed for attributes (Mask is an appearance head).
    assert not zoo.loaded("sface") and not zoo.loaded("mask")
    assert out["FaceInfos"][0]["FaceAttributesInfo"]["Yaw"] != 0 or \
        out["FaceInfos"][0]["FaceAttributesInfo"]["Roll"] != 0


def test_models_load_once_per_process(services):
    first = services.faces.zoo.get("yunet")
    call(services, "DetectFace", Image=photo())
    assert services.faces.zoo.get("yunet") is first


def test_compare_face_scores_the_pipelines_features(services):
    """CompareFace of a photo with itself: the pipeline's feature, compared with itself."""
    out, stages = call(services, "CompareFace", ImageA=photo(), ImageB=photo())
    assert out["Score"] == 100.0 and "embed" in stages
    pixels = decode_bytes((TESTDATA / PHOTO).read_bytes()).pixels
    face = services.faces.detect(pixels)[0]
    feature = services.faces.feature(pixels, face, "3.0")
    assert feature.shape == (128,) and abs(float(np.linalg.norm(feature)) - 1) < 1e-5
    batch = services.faces.features_of([(pixels, face), (pixels, face)], "3.0")
    assert np.abs(batch - feature).max() < 1e-4


def test_analyze_face_needs_landmarks_but_no_recognizer(tmp_path):
    s = Services(Settings.from_env(data_dir=tmp_path), background=False)
    try:
        out, stages = call(s, "AnalyzeFace", Image=photo())
        assert len(out["FaceShapeSet"]) == 1 and len(out["FaceShapeSet"][0]["FaceProfile"]) == 21
        assert s.faces.zoo.loaded("face_mesh") and not s.faces.zoo.loaded("sface")
        assert {"detect", "landmarks"} <= set(stages) and "embed" not in stages
    finally:
        s.close()
