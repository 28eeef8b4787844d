"""flush_subnormal_weights: subnormal float32 weights set to zero at load, nothing else moved."""

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from conftest import TESTDATA, needs_dir
from openiai.vision.models import ModelZoo
from openiai.vision.models.age_gender import AgeNet, _blob
from openiai.vision.onnx_graph import flush_subnormal_weights

TINY = np.finfo(np.float32).tiny


def _subnormals(model: onnx.ModelProto) -> int:
    count = 0
    for t in model.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            a = numpy_helper.to_array(t)
            count += int(((a != 0) & (np.abs(a) < TINY)).sum())
    return count


def test_only_subnormal_entries_become_zero():
    w = np.array([1.0, -2.5e-39, 3e-40, TINY, -TINY, 0.0, 1e-30], np.float32)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Mul", ["x", "w"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [7])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [7])],
        [numpy_helper.from_array(w, "w"),
         numpy_helper.from_array(np.array([5, 6], np.int64), "unread")])
    flushed = numpy_helper.to_array(flush_subnormal_weights(onnx.helper.make_model(graph))
                                    .graph.initializer[0])
    np.testing.assert_array_equal(flushed, np.array([1.0, 0, 0, TINY, -TINY, 0, 1e-30], np.float32))


@needs_dir(TESTDATA / "lfw" / "images")
def test_the_age_net_loses_its_subnormals_and_keeps_its_answers():
    # The shipped age net's first convolution holds subnormal weights: what made it 8x slower
    # on Intel cores. Flushed, its probabilities on a real face chip are the same to rounding.
    path = ModelZoo().path("age")
    model = onnx.load(str(path))
    assert _subnormals(model) > 1000
    assert _subnormals(flush_subnormal_weights(onnx.load(str(path)))) == 0
    pixels = cv2.imread(str(sorted((TESTDATA / "lfw" / "images").glob("*/*_0001.jpg"))[0]))
    chip = cv2.resize(pixels[70:180, 70:180], (64, 64), interpolation=cv2.INTER_AREA)
    untouched = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expect = untouched.run(None, {untouched.get_inputs()[0].name: _blob([chip], 64)})[0]
    np.testing.assert_allclose(AgeNet(path).probabilities([chip]), expect, atol=1e-6)
