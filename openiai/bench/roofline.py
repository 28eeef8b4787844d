"""How close the recognizer runs to this CPU's arithmetic limit (``openiai bench engine``).

Issue 15 asks for SFace at <= 8 ms per face. Whether any setting can reach that is a question
of arithmetic, so this module measures both sides on the machine it runs on:

* the work: multiply-adds per face, counted from the graph's own shapes (every Conv, Gemm and
  MatMul; batch 1), split into 1x1 convolutions, other convolutions and the embedding layer;
* the limit: the best rate onnxruntime itself reaches here on a large matrix product (fp32
  ``MatMul``, and u8 x s8 ``MatMulInteger`` for int8), one thread, median of several runs;
* the recognizer's actual rate: onnxruntime's profiler over the float session, per node, so
  the 1x1 convolutions (three quarters of the work) get their own GFLOPS figure.

Nothing here changes how the server runs; the figures explain its speed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

# The shapes the limit is measured on: large enough that packing and loop overheads vanish,
# small enough to stay a second's work. A 1x1 convolution (onnxruntime's blocked NCHWc kernel,
# the one SFace's convolutions run in) and a plain matrix product; the faster one counts.
PEAK_CONV = (512, 512, 28)  # (in channels, out channels, side)
PEAK_MATMUL = (1024, 1024, 1024)  # (m, k, n)
def multiply_adds(model: onnx.ModelProto) -> dict[str, float]:
    """Multiply-adds per input at batch 1, by kind: ``conv1x1``, ``conv`` (every other
    convolution: the 3x3 depthwise ones and the stem), ``dense`` (Gemm/MatMul)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for inp in m.graph.input:  # batch 1 everywhere, so shapes infer to numbers
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    m = shape_inference.infer_shapes(m)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input)}
    weights = {t.name: tuple(t.dims) for t in m.graph.initializer}
    out: dict[str, float] = defaultdict(float)
    for node in m.graph.node:
        w = weights.get(node.input[1]) if len(node.input) > 1 else None
        if w is None:
            continue
        if node.op_type == "Conv":
            oh, ow = shapes[node.output[0]][2:4]
            kind = "conv1x1" if w[2:] == (1, 1) and w[1] > 1 else "conv"
            out[kind] += float(np.prod(w)) * oh * ow
        elif node.op_type in ("Gemm", "MatMul"):
            out["dense"] += float(np.prod(w))
    return dict(out)


def _session(model: onnx.ModelProto, threads: int, profile: bool = False):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if profile:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tempfile.gettempdir(), "openiai-roofline")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _best_seconds(run, repeats: int) -> float:
    """The fastest of ``repeats`` runs: a limit is what the kernel does when nothing else on
    the machine gets in its way (a median would fold other processes' load into it)."""
    run()  # first run packs weights and sizes buffers
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return float(min(times))


OUT_TYPE = {"Conv": TensorProto.FLOAT, "MatMul": TensorProto.FLOAT,
            "QLinearConv": TensorProto.UINT8, "MatMulInteger": TensorProto.INT32}


def _peak_models() -> dict[str, tuple[onnx.ModelProto, dict[str, np.ndarray], float]]:
    """name -> (one-node graph, its input, FLOPs per run) for each measured kernel."""
    rng = np.random.default_rng(0)
    cin, cout, side = PEAK_CONV
    m, k, n = PEAK_MATMUL
    f32, u8 = TensorProto.FLOAT, TensorProto.UINT8
    scalar = lambda name, v, dt: numpy_helper.from_array(np.array(v, dtype=dt), name)  # noqa: E731
    conv_in = [1, cin, side, side]
    conv_w = rng.standard_normal((cout, cin, 1, 1)).astype(np.float32)
    specs = {
        "fp32 1x1 Conv": ([helper.make_node("Conv", ["x", "w"], ["y"])], f32, conv_in,
                          [numpy_helper.from_array(conv_w, "w")],
                          rng.standard_normal(conv_in).astype(np.float32), 2.0 * cin * cout * side * side),
        "fp32 MatMul": ([helper.make_node("MatMul", ["x", "w"], ["y"])], f32, [m, k],
                        [numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")],
                        rng.standard_normal((m, k)).astype(np.float32), 2.0 * m * k * n),
        "int8 1x1 QLinearConv": (
            [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"])],
            u8, conv_in,
            [numpy_helper.from_array(rng.integers(-127, 128, (cout, cin, 1, 1)).astype(np.int8), "w"),
             scalar("xs", 0.05, np.float32), scalar("xz", 128, np.uint8), scalar("ws", 0.01, np.float32),
             scalar("wz", 0, np.int8), scalar("ys", 0.5, np.float32), scalar("yz", 128, np.uint8)],
            rng.integers(0, 256, conv_in).astype(np.uint8), 2.0 * cin * cout * side * side),
        "int8 MatMulInteger": ([helper.make_node("MatMulInteger", ["x", "w"], ["y"])], u8, [m, k],
                               [numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), "w")],
                               rng.integers(0, 256, (m, k)).astype(np.uint8), 2.0 * m * k * n),
    }
    out = {}
    for name, (nodes, in_type, in_shape, inits, x, flops) in specs.items():
        graph = helper.make_graph(nodes, name.replace(" ", "_"),
                                  [helper.make_tensor_value_info("x", in_type, in_shape)],
                                  [helper.make_tensor_value_info("y", OUT_TYPE[nodes[0].op_type], None)],
                                  inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        out[name] = (model, {"x": x}, flops)
    return out


def peak_gflops(threads: int = 1, repeats: int = 10) -> dict[str, float]:
    """onnxruntime's rate on each large kernel of :func:`_peak_models`, GFLOPS (multiply-adds
    x 2 per second; for int8, integer operations), one thread by default."""
    out = {}
    for name, (model, feed, flops) in _peak_models().items():
        sess = _session(model, threads)
        out[name] = flops / _best_seconds(lambda: sess.run(None, feed), repeats) / 1e9
    return out


def profile(model: onnx.ModelProto, blob: np.ndarray, runs: int = 30) -> dict[str, float]:
    """Milliseconds of each node (onnxruntime's profiler, one thread), by node name: the
    fastest of ``runs`` runs for each node, measured like :func:`peak_gflops`."""
    sess = _session(model, 1, profile=True)
    name = sess.get_inputs()[0].name
    warmup = 3  # the first runs pack weights and size buffers: left out below
    for _ in range(warmup + runs):
        sess.run(None, {name: blob})
    path = sess.end_profiling()
    try:
        with open(path) as f:
            events = json.load(f)
    finally:
        os.remove(path)
    per_node: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[e["name"][: -len("_kernel_time")]].append(e["dur"] / 1000.0)
    return {k: min(v[warmup:] or v) for k, v in per_node.items()}


def sface(model_dir=None) -> dict:
    """The recognizer's work, this CPU's limit and the recognizer's measured rate."""
    from ..vision.models import files, sface as sface_model
    from ..vision.onnx_graph import fold_dequantization, make_dynamic, rewrite_prelu

    raw = fold_dequantization(onnx.load(str(files.locate(sface_model.FILE, model_dir))))
    work = multiply_adds(raw)
    # The graph as the server opens it (create_session's steps), so the profile is the server's.
    served = make_dynamic(rewrite_prelu(raw), {0: "batch"})
    blob = np.random.default_rng(0).integers(0, 256, (1, 3, 112, 112)).astype(np.float32)
    nodes = profile(served, blob)
    ones = _fused_names(raw, _one_by_one(raw))
    pw_ms = sum(ms for name, ms in nodes.items() if name.removesuffix("_nchwc") in ones)
    peak = peak_gflops(1)
    total_ms = sum(nodes.values())
    gflop = 2 * sum(work.values()) / 1e9
    return {
        "gflop": gflop,
        "work": {k: 2 * v / 1e9 for k, v in work.items()},
        "peak": peak,
        "measured_ms": total_ms,
        "conv1x1_ms": pw_ms,
        "conv1x1_gflops": 2 * work.get("conv1x1", 0.0) / 1e9 / (pw_ms / 1000) if pw_ms else 0.0,
        "fp32": max(v for k, v in peak.items() if k.startswith("fp32")),
        "int8": max(v for k, v in peak.items() if k.startswith("int8")),
    }


def _one_by_one(model: onnx.ModelProto) -> list:
    """The Conv nodes with 1x1 kernels over more than one input channel."""
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "Conv"
            and dims.get(n.input[1], (0, 0))[1:] in ((k, 1, 1) for k in range(2, 1 << 16))]


def _fused_names(model: onnx.ModelProto, convs: list) -> set[str]:
    """The names onnxruntime's profiler gives these convolutions: a Conv followed by a
    BatchNormalization is fused into one node that keeps the BatchNormalization's name."""
    bn_of = {n.input[0]: n.name for n in model.graph.node if n.op_type == "BatchNormalization"}
    return {bn_of.get(c.output[0], c.name) for c in convs}


def report(r: dict, target_ms: float = 8.0) -> None:
    w = r["work"]
    print(f"SFace arithmetic per face: {r['gflop']:.3f} GFLOP (1x1 convolutions "
          f"{w.get('conv1x1', 0):.3f}, other convolutions {w.get('conv', 0):.3f}, embedding "
          f"layer {w.get('dense', 0):.3f}), counted from the graph's shapes")
    rates = ", ".join(f"{k} {v:.1f}" for k, v in r["peak"].items())
    print(f"onnxruntime's best rate here on large kernels, one thread (GFLOPS): {rates}")
    print(f"SFace float, one thread, profiled (each node's fastest run): {r['measured_ms']:.2f} ms per face; its 1x1 "
          f"convolutions {r['conv1x1_ms']:.2f} ms at {r['conv1x1_gflops']:.1f} GFLOPS "
          f"({r['conv1x1_gflops'] / r['fp32']:.0%} of the best fp32 rate)")
    one, eight = r["gflop"] / r["fp32"] * 1000, r["gflop"] / r["int8"] * 1000
    print(f"SFace at the best rates: {one:.2f} ms per face on one core fp32 ({one / 2:.2f} on "
          f"two, perfectly split), {eight:.2f} int8 ({eight / 2:.2f} on two); {target_ms:g} ms "
          f"per face needs {r['gflop'] / target_ms * 1000:.0f} GFLOPS")
