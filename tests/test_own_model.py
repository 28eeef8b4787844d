"""An operator's own ONNX recognizer as a FaceModelVersion (README "Your own recognizer").

The model is one the project has: SFace, copied into a temporary data directory under the
version name 9.0 with a config describing it. Over HTTP with the official SDK: `openiai
calibrate --model-version 9.0 --folders DIR --extrapolate` on a folder per LFW person writes
9.0's score table; then a 9.0 group enrols and searches (SearchPersons finds the right
person), and CompareFace on 9.0 maps the very cosine 3.0 sees (same network, same alignment)
through 9.0's own table, within 3 points of 3.0's score. In-process: every kind of broken
config is one line naming the file, and `openiai serve` prints that line and exits instead of
starting; the pre-processing and alignment follow the config.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest

from harness import OPENIAI, REPO, Api, Server
from images import LFW, b64, lfw

SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
CONFIG = """# FaceModelVersion 9.0: SFace under another name
file = "mine.onnx"
sha256 = "{sha}"
embedding_size = 128
description = "SFace 2021dec, a test copy"

[input]
size = [112, 112]
channels = "RGB"
layout = "NCHW"
mean = [0, 0, 0]
std = [1, 1, 1]

[alignment]
template = "arcface112"
"""


def sface_file() -> Path:
    from openiai.vision.models import ModelZoo

    return ModelZoo(inference="float").path("sface").with_name("face_recognition_sface_2021dec_int8bq.onnx")


def own_data_dir(root: Path, config: str = CONFIG, name: str = "9.0.toml", link: bool = False) -> Path:
    """A data directory whose models/ holds the SFace file as mine.onnx and ``config``."""
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    if link:  # the in-process checks only read it
        (models / "mine.onnx").symlink_to(sface_file())
    else:
        shutil.copy(sface_file(), models / "mine.onnx")
    (models / name).write_text(config.format(sha=SFACE_SHA256), encoding="utf-8")
    return root


def lfw_folders(root: Path, people: int = 30, photos: int = 4) -> dict[str, list[Path]]:
    """root/<person>/ with ``photos`` LFW photos each (links), for the first ``people`` LFW
    people that have one more (kept out of the folders, for search probes); returns each
    person's photos, the probe last."""
    chosen = {}
    for person in sorted(LFW.iterdir()):
        files = sorted(person.glob("*.jpg"))
        if len(files) < photos + 1:
            continue
        (root / person.name).mkdir(parents=True)
        for f in files[:photos]:
            (root / person.name / f.name).symlink_to(f)
        chosen[person.name] = files[:photos + 1]
        if len(chosen) == people:
            break
    return chosen


@pytest.fixture
def own_versions_restored():
    """In-process installs change the process's version registry: back to the built-ins."""
    from openiai.core import versions
    from openiai.vision import scores

    yield
    versions.install_own([])
    scores.forget_tables()


BROKEN = {
    "missing file": (CONFIG.replace('"mine.onnx"', '"gone.onnx"'), "9.0.toml", "does not exist"),
    "wrong digest": (CONFIG.replace("{sha}", "0" * 64), "9.0.toml", "has sha256"),
    "unknown field": (CONFIG.replace("layout =", "layuot ="), "9.0.toml", "unknown field"),
    "bad value": (CONFIG.replace('"NCHW"', '"CHW"'), "9.0.toml", "layout must be one of"),
    "shape": (CONFIG.replace('"NCHW"', '"NHWC"'), "9.0.toml", "input is"),
    "embedding size": (CONFIG.replace("= 128", "= 512"), "9.0.toml", "embedding_size says 512"),
    "built-in name": (CONFIG, "3.0.toml", "built-in"),
    "bad name": (CONFIG, "nine.toml", "must be N.M"),
    "syntax": (CONFIG + "[input\n", "9.0.toml", "9.0.toml"),
    "no table": (CONFIG, "9.0.toml", "no score table"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_config_is_one_line(tmp_path, case, own_versions_restored):
    from openiai.core import versions
    from openiai.vision.models import own

    config, name, expected = BROKEN[case]
    own.install(own_data_dir(tmp_path / "good", link=True), require_tables=False)
    data = own_data_dir(tmp_path / "broken", config, name, link=True)
    with pytest.raises(own.OwnModelError) as caught:
        own.install(data)
    message = str(caught.value)
    assert expected in message and str(data / "models" / name) in message
    assert "\n" not in message
    assert versions.own_names() == ()  # nothing half-installed, nothing left from before
    assert "9.0" not in versions.names()


def test_config_installs_a_version_beside_the_built_ins(tmp_path, own_versions_restored):
    from openiai.core import versions
    from openiai.vision import scores
    from openiai.vision.models import own

    data = own_data_dir(tmp_path, link=True)
    classes = own.install(data, require_tables=False)  # what `openiai calibrate` does
    assert versions.names() == ("2.0", "3.0", "9.0") and versions.own_names() == ("9.0",)
    spec = versions.get("9.0")
    assert (spec.recognizer, spec.dim, spec.person_search) == ("own-9.0", 128, True)
    assert spec.anchor_scores == versions.get("3.0").anchor_scores
    # 3.0's table (measured on this very file) stands in for a calibration; a table of
    # another file is refused.
    table = json.loads(scores.calibration_path("sface").read_text())
    assert table["recognizer_sha256"] == SFACE_SHA256
    (data / "models" / "9.0.calibration.json").write_text(
        json.dumps(dict(table, recognizer_sha256="e" * 64)), encoding="utf-8")
    with pytest.raises(own.OwnModelError, match="measured on another file"):
        own.install(data)
    (data / "models" / "9.0.calibration.json").write_text(json.dumps(table), encoding="utf-8")
    own.install(data)
    assert scores.score(0.4, "9.0") == scores.score(0.4, "3.0")
    # Same network, same template: the own recognizer's crop and vector are float SFace's.
    from openiai.services.faces import FacePipeline
    from openiai.vision.models import ModelZoo

    sface_pipe = FacePipeline(ModelZoo(inference="float"))
    rec = classes["own-9.0"](data / "models" / "mine.onnx")
    img = sface_pipe.load(lfw("Aaron_Peirsol", 1), None)
    face = sface_pipe.find_faces(img)[0]
    sface = sface_pipe.zoo.get("sface")
    assert np.array_equal(rec.align(img.pixels, face), sface.align(img.pixels, face))
    mine = rec.embed([rec.align(img.pixels, face)] * 2)
    assert mine.shape == (2, 128)
    assert float(mine[0] @ sface.embed([sface.align(img.pixels, face)])[0]) > 0.9999
    # A JSON config with the same fields defines a version too.
    json_config = dict(tomllib.loads(CONFIG.format(sha=SFACE_SHA256)), file=str(data / "models" / "mine.onnx"))
    (tmp_path / "json" / "models").mkdir(parents=True)
    (tmp_path / "json" / "models" / "10.1.json").write_text(json.dumps(json_config))
    own.install(tmp_path / "json", require_tables=False)
    assert versions.own_names() == ("10.1",)
    # A data directory without configs takes the own version away again.
    own.install(tmp_path / "elsewhere")
    assert versions.names() == ("2.0", "3.0")


def _table_knots(table_path: Path, version_anchors: dict) -> tuple[np.ndarray, np.ndarray]:
    table = json.loads(table_path.read_text())
    knots = [(-1.0, 0.0), (1.0, 100.0)] + [(r["cosine"], version_anchors[r["far"]])
                                           for r in table["anchors"]]
    knots.sort()
    return np.array([k[0] for k in knots]), np.array([k[1] for k in knots])


def test_own_version_over_http(tmp_path):
    from openiai.core import versions
    from openiai.vision import scores

    data = own_data_dir(tmp_path / "data")
    people = lfw_folders(tmp_path / "folders")
    # 9.0 is a copy of the float SFace file: compared below with 3.0 run in float.
    srv = Server(data, extra_env={"OPENIAI_INFERENCE": "float"})
    out = srv.cli("calibrate", "--model-version", "9.0", "--folders", str(tmp_path / "folders"),
                  "--extrapolate")
    table_path = data / "models" / "9.0.calibration.json"
    table = json.loads(table_path.read_text())
    assert f"wrote {table_path}" in out and table["recognizer_sha256"] == SFACE_SHA256
    assert table["genuine_pairs"] == 30 * 6 and table["impostor_pairs"] == 120 * 119 // 2 - 180
    # ~7,000 impostor pairs measure FAR 0.5 and 0.1 (100 pairs above each); the rest is fitted.
    rows = {r["far"]: r for r in table["anchors"]}
    assert set(rows) == {0.5, 0.1, 1e-2, 1e-3, 1e-4, 1e-5}
    assert [far for far, r in rows.items() if "extrapolated" not in r] == [0.5, 0.1]

    srv.start()
    try:
        api = Api(srv, *srv.create_key("own"))
        enrolled = list(people)[:10]

        def photo(name: str, k: int) -> str:  # k-th photo; 4 (the fifth): not calibrated on
            return b64(people[name][k])

        api.call("CreateGroup", GroupId="g9", GroupName="Nine", FaceModelVersion="9.0")
        api.call("CreateGroup", GroupId="g3", GroupName="Three", FaceModelVersion="3.0")
        assert api.call("GetGroupInfo", GroupId="g9")["FaceModelVersion"] == "9.0"
        for name in enrolled:
            made = api.call("CreatePerson", GroupId="g9", PersonId=name, PersonName=name,
                            Image=photo(name, 0))
            assert made["FaceModelVersion"] == "9.0"
        api.call("CreatePerson", GroupId="g3", PersonId="three", PersonName="T",
                 Image=photo(enrolled[0], 0))
        assert api.call("CreateFace", PersonId=enrolled[0], Images=[photo(enrolled[0], 1)],
                        FaceMatchThreshold=30)["SucFaceNum"] == 1
        for name in enrolled[:4]:
            found = api.call("SearchPersons", GroupIds=["g9"], Image=photo(name, 4), MaxPersonNum=3)
            assert found["FaceModelVersion"] == "9.0"
            cands = found["Results"][0]["Candidates"]
            assert cands[0]["PersonId"] == name and cands[0]["Score"] > cands[1]["Score"]
        hit = api.call("SearchFaces", GroupIds=["g9"], Image=photo(enrolled[1], 4))
        assert hit["Results"][0]["Candidates"][0]["PersonId"] == enrolled[1]
        face = api.call("VerifyFace", PersonId=enrolled[3], Image=photo(enrolled[3], 4))
        person = api.call("VerifyPerson", PersonId=enrolled[3], Image=photo(enrolled[3], 4))
        assert face["IsMatch"] and person["IsMatch"] and person["FaceModelVersion"] == "9.0"
        assert api.code("SearchPersons", GroupIds=["g9", "g3"], Image=photo(enrolled[0], 4)) == \
            "FailedOperation.AcrossVersionsError"

        # CompareFace: 9.0 maps the cosine 3.0 sees (the same network) through its own table.
        pairs = [(enrolled[0], 0, enrolled[0], 2), (enrolled[1], 1, enrolled[1], 3),
                 (enrolled[0], 0, enrolled[1], 0), (enrolled[2], 0, enrolled[3], 1),
                 (enrolled[4], 0, enrolled[4], 4)]
        s9, s3 = [], []
        for a, i, b, j in pairs:
            for version, out_scores in (("9.0", s9), ("3.0", s3)):
                res = api.call("CompareFace", ImageA=photo(a, i), ImageB=photo(b, j),
                               FaceModelVersion=version)
                assert res["FaceModelVersion"] == version
                out_scores.append(res["Score"])
        assert np.argsort(s9).tolist() == np.argsort(s3).tolist()
        # ... and a table fitted on 120 photos lands near 3.0's, fitted on all of LFW.
        print(f"CompareFace 9.0 {s9} 3.0 {s3}")
        assert np.allclose(s9, s3, atol=3), (s9, s3)
        xs, ys = _table_knots(table_path, versions.get("3.0").anchor_scores)
        cos9 = np.interp(s9, ys, xs)
        cos3 = [scores.cosine_for_score(s, "3.0") for s in s3]
        assert np.allclose(cos9, cos3, atol=2e-3), (cos9, cos3)

        # Only configured versions are accepted.
        err = api.error("CompareFace", ImageA=photo(enrolled[0], 0), ImageB=photo(enrolled[0], 1),
                        FaceModelVersion="9.1")
        assert err.code == "InvalidParameterValue.FaceModelVersionIllegal"
        assert "9.0" in err.message
    finally:
        srv.stop()

    # A broken config stops `openiai serve` with one line, and so does a config removed while
    # groups still use its version.
    config = data / "models" / "9.0.toml"
    good = config.read_text()
    config.write_text(good.replace(SFACE_SHA256, "f" * 64))
    for expected in ("has sha256", "no config in"):
        run = subprocess.run([*OPENIAI, "serve", "--port", "0"], env=srv.env, cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in run.stderr, run.stderr
        config.unlink(missing_ok=True)


def test_preprocessing_and_a_graph_fixed_to_batch_one(tmp_path, own_versions_restored):
    """A tiny NHWC/BGR network whose Reshape fixes the batch to 1: the recognizer feeds it
    (pixel - mean) / std in the configured order and layout, face by face, and L2-normalises."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from openiai.vision.models import own

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(16 * 16 * 3, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["emb"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 16, 3])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array([1, 768], np.int64), "shape"),
         numpy_helper.from_array(weights, "w")])
    models = tmp_path / "models"
    models.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              models / "tiny.onnx")
    from openiai.vision.models.files import sha256_of

    points = "[[5, 6], [11, 6], [8, 9], [6, 12], [10, 12]]"
    (models / "11.0.toml").write_text(
        f'file = "tiny.onnx"\nsha256 = "{sha256_of(models / "tiny.onnx")}"\nembedding_size = 4\n'
        f'[input]\nsize = 16\nchannels = "BGR"\nlayout = "NHWC"\nmean = 127.5\nscale = 0.5\n'
        f'[alignment]\npoints = {points}\n')
    rec = own.install(tmp_path, require_tables=False)["own-11.0"](models / "tiny.onnx")
    crops = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    got = rec.embed(crops)
    assert not rec.batched  # the batch of 3 failed once; one crop a run since
    want = np.stack([((c.astype(np.float32) - 127.5) * 0.5).reshape(-1) @ weights for c in crops])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.allclose(got, want, atol=1e-4)
    # The configured points are where the landmarks land.
    from openiai.vision.types import Face

    landmarks = np.array([[50, 60], [110, 60], [80, 90], [60, 120], [100, 120]], np.float32)
    pixels = np.zeros((200, 200, 3), np.uint8)
    pixels[88:93, 78:83] = 255  # a white dot on the nose tip
    crop = rec.align(pixels, Face(box=np.array([40, 40, 100, 100], np.float32), score=1.0,
                                  landmarks=landmarks))
    assert crop.shape == (16, 16, 3)
    assert np.unravel_index(int(crop[:, :, 0].argmax()), (16, 16)) == (9, 8)
