"""rewrite_prelu: per-channel PRelu replaced by depthwise 1x1 convolutions, same outputs."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from openiai.vision.onnx_graph import create_session, rewrite_prelu


def _graph(slopes: list[np.ndarray], channels: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for k, s in enumerate(slopes):
        w = rng.normal(size=(channels, channels if k else 3, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{k}"),
                  numpy_helper.from_array(s.reshape(channels, 1, 1).astype(np.float32), f"s{k}")]
        nodes += [helper.make_node("Conv", [prev, f"w{k}"], [f"c{k}"], pads=[1, 1, 1, 1]),
                  helper.make_node("PRelu", [f"c{k}", f"s{k}"], [f"p{k}"])]
        prev = f"p{k}"
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [1, 3, 20, 20])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_rewrite_matches_prelu_for_slopes_below_and_above_one():
    rng = np.random.default_rng(1)
    slopes = [rng.uniform(-0.6, 0.9, 16), rng.uniform(-0.5, 1.4, 16)]  # 2-pass, then 3-pass form
    model = _graph(slopes, 16)
    x = rng.normal(size=(1, 3, 20, 20)).astype(np.float32)
    expect = _run(model, x)
    rewritten = rewrite_prelu(_graph(slopes, 16))
    assert not [n for n in rewritten.graph.node if n.op_type == "PRelu"]
    np.testing.assert_allclose(_run(rewritten, x), expect, rtol=1e-5, atol=1e-4)
    session = create_session(_graph(slopes, 16), {})  # the path every model takes
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expect, rtol=1e-5, atol=1e-4)


def test_rewrite_leaves_unsupported_prelu_alone():
    model = rewrite_prelu(_graph([np.full(12, 0.25)], 12))  # 12 channels: not a block multiple
    assert [n.op_type for n in model.graph.node] == ["Conv", "PRelu"]
