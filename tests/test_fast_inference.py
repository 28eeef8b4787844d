"""The int8 recognizer (issue 15) and the truncated 96 px appearance graph (issue 10): they
load from verified files, agree with the float path within the measured bound, and
OPENIAI_INFERENCE picks the path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openiai.core.settings import Settings, SettingsError
from openiai.services.faces import APPEARANCE, FacePipeline
from openiai.vision.image import decode_bytes
from openiai.vision.models import ModelZoo
from openiai.vision.models.sface import (INT8_FILE, INT8_MIXABLE, SFace, SFaceAppearance, SFaceInt8,
                                         choose_recognizer, cpu_int8_is_faster)

TESTDATA = Settings.from_env().testdata_dir
# The lowest float-vs-int8 cosine of one face measured by `openiai bench engine` on 100 LFW
# faces was 0.959 (median 0.981); a face below this bound means the int8 file or its
# arithmetic changed.
MIN_COSINE = 0.90


@pytest.fixture(scope="module")
def faces():
    """Aligned crops of a few LFW faces (different people)."""
    pipe = FacePipeline(ModelZoo(inference="float"))
    paths = sorted((TESTDATA / "lfw" / "images").glob("*/*_0001.jpg"))[:40:8]
    out = []
    for p in paths:
        pixels = decode_bytes(Path(p).read_bytes()).pixels
        found = pipe.detect(pixels)
        if found:
            out.append((pixels, found[0]))
    assert len(out) >= 4
    return out


def test_int8_recognizer_agrees_with_float_within_the_measured_bound(faces):
    zf, zq = ModelZoo(inference="float"), ModelZoo(inference="int8")
    f, q = zf.get("sface"), zq.get("sface")
    assert type(f) is SFace and type(q) is SFaceInt8
    assert zq.path("sface").name == "face_recognition_sface_2021dec_int8static.onnx"
    crops = [f.align(px, face) for px, face in faces]
    ef, eq = f.embed(crops), q.embed(crops)
    assert ef.shape == eq.shape == (len(crops), 128)
    assert np.allclose(np.linalg.norm(eq, axis=1), 1, atol=1e-5)
    same = np.einsum("ij,ij->i", ef, eq)
    assert same.min() >= MIN_COSINE, same
    # ... and the int8 path still tells people apart: each face is nearest its own float self.
    assert np.array_equal(np.argmax(eq @ ef.T, axis=1), np.arange(len(crops)))


def test_int8_recognizer_runs_the_int8_file_as_built(faces):
    """The session computes what onnxruntime computes on the shipped file itself, whose weights'
    DequantizeLinear nodes it fuses into int8 convolutions; folding them into fp32 weights (as
    the zoo's int8bq files are) would give a float network with fake-quantised activations."""
    import onnx
    import onnxruntime as ort

    from openiai.vision.onnx_graph import is_static_int8, make_dynamic

    q = ModelZoo(inference="int8").get("sface")
    model = onnx.load(str(q.path))
    assert is_static_int8(model)
    assert not any(n.op_type == "PRelu" for n in model.graph.node)  # rewritten before quantising
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    plain = ort.InferenceSession(make_dynamic(model, {0: "batch"}).SerializeToString(), opts,
                                 providers=["CPUExecutionProvider"])
    crops = [q.align(px, face) for px, face in faces]
    blob = np.ascontiguousarray(np.stack(crops)[:, :, :, ::-1].transpose(0, 3, 1, 2),
                                dtype=np.float32)
    raw = plain.run(None, {plain.get_inputs()[0].name: blob})[0]
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    assert np.allclose(q.embed(crops), raw, atol=1e-5)


def test_inference_setting_forces_each_path():
    for mode, cls in (("float", SFace), ("int8", SFaceInt8)):
        settings = Settings.from_env({"OPENIAI_INFERENCE": mode})
        assert settings.inference == mode
        assert FacePipeline.from_settings(settings).zoo.classes["sface"] is cls
    auto = FacePipeline.from_settings(Settings.from_env({})).zoo.classes["sface"]
    # auto is int8 exactly where int8 is faster here (and mixable with stored float features).
    assert auto is choose_recognizer("auto")
    assert auto is (SFaceInt8 if INT8_MIXABLE and cpu_int8_is_faster() else SFace)
    with pytest.raises(SettingsError, match="OPENIAI_INFERENCE"):
        Settings.from_env({"OPENIAI_INFERENCE": "fp16"})


def test_appearance_graph_is_truncated_and_runs_on_96_px_crops(faces):
    model = ModelZoo().get(APPEARANCE)
    assert isinstance(model, SFaceAppearance) and model.SIZE == 96
    # The heads are trained on the int8 file's vectors, so it is that file whatever the
    # recognizer's arithmetic.
    assert model.path.name == INT8_FILE.names[0]
    for inference in ("float", "int8", "auto"):
        zoo = FacePipeline.from_settings(Settings.from_env({"OPENIAI_INFERENCE": inference})).zoo
        assert zoo.path(APPEARANCE).name == INT8_FILE.names[0]
    ops = {n.op_type for n in __import__("onnx").load(str(model.path)).graph.node}
    assert "Gemm" in ops  # the file is the full recognizer ...
    outputs = [o.name for o in model.session.get_outputs()]
    assert outputs == ["conv_12_relu", "conv_14_relu"]  # ... the session stops at conv_14
    crops = [model.align(px, face) for px, face in faces]
    assert crops[0].shape == (96, 96, 3)
    vectors = model.appearance(crops)
    assert vectors.shape == (len(crops), SFaceAppearance.DIM) and np.isfinite(vectors).all()
    # One batched run gives what one run per face gives.
    assert np.allclose(vectors[:1], model.appearance(crops[:1]), atol=1e-4)


def test_openiai_quantize_rebuilds_the_shipped_int8_file(tmp_path):
    """The shipped int8 file is what `openiai quantize` builds (README "Fast inference"), on
    the releases its digest was recorded with; other releases may store the same graph in other
    bytes, so there the test does not apply."""
    import onnx
    import onnxruntime

    if (onnxruntime.__version__, onnx.__version__) != ("1.32.0", "1.23.2"):
        pytest.skip(f"digest recorded with onnxruntime 1.32.0 / onnx 1.23.2, not "
                    f"{onnxruntime.__version__} / {onnx.__version__}")
    from openiai.bench import quantize
    from openiai.vision.models.files import sha256_of

    assert quantize.main(["--out", str(tmp_path)]) == 0
    built = tmp_path / INT8_FILE.names[0]
    assert sha256_of(built) == INT8_FILE.sha256[INT8_FILE.names[0]]
