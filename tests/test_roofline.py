"""The arithmetic ``openiai bench engine`` sets the recognizer's speed against."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from openiai.bench import roofline


def _graph() -> onnx.ModelProto:
    """A 1x1 conv (8 -> 16, 10x10), a 3x3 depthwise conv with stride 2 (16, -> 5x5) and a
    dense layer (400 -> 4): 12,800 + 3,600 + 1,600 multiply-adds."""
    rng = np.random.default_rng(0)
    w = lambda name, *shape: numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)  # noqa: E731
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="pw"),
             helper.make_node("BatchNormalization", ["a", "g", "b", "m", "v"], ["a2"], name="pw_bn"),
             helper.make_node("Conv", ["a2", "w2"], ["b_"], group=16, strides=[2, 2],
                              pads=[1, 1, 1, 1], name="dw"),
             helper.make_node("Flatten", ["b_"], ["f"]),
             helper.make_node("Gemm", ["f", "w3"], ["y"], transB=1)]
    inits = [w("w1", 16, 8, 1, 1), w("w2", 16, 1, 3, 3), w("w3", 4, 400),
             *(numpy_helper.from_array(np.ones(16, np.float32), n) for n in ("g", "v")),
             *(numpy_helper.from_array(np.zeros(16, np.float32), n) for n in ("b", "m"))]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         ["batch", 8, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_multiply_adds_are_counted_by_kind_at_batch_one():
    assert roofline.multiply_adds(_graph()) == {"conv1x1": 12_800.0, "conv": 3_600.0,
                                                "dense": 1_600.0}


def test_profiler_names_of_1x1_convolutions_follow_the_batchnorm_fusion():
    model = _graph()
    ones = roofline._one_by_one(model)
    assert [n.name for n in ones] == ["pw"]  # the depthwise conv has one input channel per group
    assert roofline._fused_names(model, ones) == {"pw_bn"}


def test_peak_kernels_run_and_report_a_rate():
    rates = roofline.peak_gflops(repeats=1)
    assert set(rates) == {"fp32 1x1 Conv", "fp32 MatMul", "int8 1x1 QLinearConv",
                          "int8 MatMulInteger"}
    assert all(np.isfinite(v) and v > 0 for v in rates.values())
