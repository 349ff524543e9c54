"""ONNX export: `fastnn.onnx.export(model, "m.onnx")` writes any fastnn model (Sequential,
functional, subclassed, fastnn.keras) as an ONNX graph (opset 17 by default) with a
dynamic batch dimension, for onnxruntime and other runtimes. Needs the optional `onnx`
package (pip install "fastnn[onnx]").

The model's graph (fastnn.nn.graph, the layers as called, before the runtime's fused
rewrites) maps node by node: Linear -> Gemm, Conv2d -> Conv (after a Pad for
padding_mode; circular from opset 19), ConvTranspose2d -> ConvTranspose, MaxPool2d /
AvgPool2d -> MaxPool / AveragePool
(ceil_mode as end padding, count_include_pad), AdaptiveAvgPool2d -> GlobalAveragePool,
an AveragePool when the sizes divide, else two averaging MatMuls, BatchNorm -> an
eval-mode BatchNormalization on the running statistics (on the batch's, ReduceMean,
without them), LayerNorm -> LayerNormalization, activations (GELU as Erf or Tanh and
arithmetic, SiLU as x * Sigmoid, ELU -> Elu), Flatten, Add (+), Concat, Keras' other
merges (Sub, Mul, Mean, Max, Min), Dropout/Identity -> Identity, and fastnn.keras' layout
Transpose -> Transpose, 'same' padding Pad2d -> Pad, Reshape -> Reshape and Rescaling ->
Mul, Add."""
import numpy as np

from . import nn
from ._core import as_sample_shape, is_int

__all__ = ["export"]

DEFAULT_OPSET = 17


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("fastnn.onnx.export needs the onnx package: pip install onnx "
                          "(or pip install 'fastnn[onnx]')") from None
    return onnx, helper, numpy_helper


class _Builder:
    """Collects ONNX nodes and initializers (weights) for one graph."""

    def __init__(self, helper, numpy_helper, opset):
        self.helper, self.numpy_helper, self.opset = helper, numpy_helper, opset
        self.nodes, self.inits = [], []

    def weight(self, name, array):
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, output, name, **attrs):
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=name, **attrs))


def _pads(top_left, bottom_right=(0, 0)):
    return [top_left[0], top_left[1], top_left[0] + bottom_right[0],
            top_left[1] + bottom_right[1]]


def _averaging(n, o):
    """(o, n) matrix averaging torch's adaptive pooling windows: row i over
    floor(i * n / o) to ceil((i + 1) * n / o)."""
    matrix = np.zeros((o, n), np.float32)
    for i in range(o):
        begin, end = i * n // o, -(-(i + 1) * n // o)
        matrix[i, begin:end] = 1.0 / (end - begin)
    return matrix


def _mean(b, x, axes, out, keepdims):
    """A ReduceMean node over axes (an attribute before opset 18, an input from it)."""
    if b.opset < 18:
        b.node("ReduceMean", [x], out, out, axes=axes, keepdims=keepdims)
    else:
        b.node("ReduceMean", [x, b.weight(f"{out}.axes", np.array(axes, np.int64))], out,
               out, keepdims=keepdims)
    return out


def _emit(b, layer, name, ins, out, in_shapes):
    """The ONNX node(s) of one fastnn layer."""
    from .keras.layers import Pad2d, ReshapeTo, ScaleShift, Transpose
    kind = type(layer)
    x = ins[0]
    if kind is nn.Linear and len(in_shapes[0]) > 2:  # Gemm is 2-D: MatMul, then the bias
        weight_t = b.weight(f"{name}.weight_t", layer.weight.data.T)
        if layer.bias is None:
            b.node("MatMul", [x, weight_t], out, name)
        else:
            b.node("MatMul", [x, weight_t], f"{name}:matmul", f"{name}:matmul")
            b.node("Add", [f"{name}:matmul", b.weight(f"{name}.bias", layer.bias.data)], out,
                   name)
    elif kind is nn.Linear:
        inputs = [x, b.weight(f"{name}.weight", layer.weight.data)]
        if layer.bias is not None:
            inputs.append(b.weight(f"{name}.bias", layer.bias.data))
        b.node("Gemm", inputs, out, name, transB=1)
    elif kind is nn.Conv2d:
        if layer.padding_mode != "zeros":  # a Pad node first, then an unpadded Conv
            if layer.padding_mode == "circular" and b.opset < 19:
                raise ValueError(f"export: {name} ({layer!r}): circular padding has no ONNX "
                                 f"Pad mode before opset 19 (pass opset=19)")
            (ph, pw), (eh, ew) = layer._pad, layer._extra
            pads = np.array([0, 0, ph, pw, 0, 0, ph + eh, pw + ew], np.int64)
            b.node("Pad", [x, b.weight(f"{name}.pads", pads)], f"{name}:padded",
                   f"{name}:pad", mode={"reflect": "reflect", "replicate": "edge",
                                        "circular": "wrap"}[layer.padding_mode])
            x = f"{name}:padded"
        inputs = [x, b.weight(f"{name}.weight", layer.weight.data)]
        if layer.bias is not None:
            inputs.append(b.weight(f"{name}.bias", layer.bias.data))
        b.node("Conv", inputs, out, name, kernel_shape=list(layer.kernel_size),
               strides=list(layer.stride), dilations=list(layer.dilation),
               pads=_pads(layer._pad, layer._extra) if layer.padding_mode == "zeros"
               else _pads((0, 0)), group=layer.groups)
    elif kind is nn.ConvTranspose2d:
        # onnxruntime refuses an output_padding not below the stride (torch takes one below
        # the dilation): such a one comes off the end padding as far as that goes, and
        # what is left, rows and columns of the bias alone, is padded onto the output
        out_pad, end = list(layer.output_padding), [0, 0]
        if any(o >= s for o, s in zip(out_pad, layer.stride)):
            end = [min(p, o) for p, o in zip(layer.padding, out_pad)]
            out_pad = [o - e for o, e in zip(out_pad, end)]
        tail = out_pad if any(o >= s for o, s in zip(out_pad, layer.stride)) else [0, 0]
        out_pad = [o - t for o, t in zip(out_pad, tail)]
        inputs = [x, b.weight(f"{name}.weight", layer.weight.data)]
        if layer.bias is not None and not any(tail):
            inputs.append(b.weight(f"{name}.bias", layer.bias.data))
        conv = f"{name}:unpadded" if any(tail) else out
        b.node("ConvTranspose", inputs, conv, name if conv == out else conv,
               kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
               dilations=list(layer.dilation),
               pads=_pads(layer.padding, [-e for e in end]), output_padding=out_pad,
               group=layer.groups)
        if any(tail):
            padded = out if layer.bias is None else f"{name}:padded"
            b.node("Pad", [conv, b.weight(f"{name}.pads", np.array([0, 0, 0, 0, 0, 0, *tail],
                                                                   np.int64))], padded,
                   f"{name}:pad")
            if layer.bias is not None:
                b.node("Add", [padded, b.weight(f"{name}.bias",
                                                layer.bias.data.reshape(-1, 1, 1))], out, name)
    elif kind in (nn.MaxPool2d, nn.AvgPool2d):
        # ceil_mode as padding at the end, none of it counted: ONNX's shape inference
        # keeps a last window starting in the right padding, which torch drops
        n, o = in_shapes[0][2:], layer.output_shape(in_shapes[0])[2:]
        ends = [max(0, (o[i] - 1) * layer.stride[i] + layer.kernel_size[i] - n[i] -
                    2 * layer.padding[i]) for i in range(2)]
        pads = _pads(layer.padding, ends)
        count_pad = kind is nn.AvgPool2d and layer.count_include_pad
        if count_pad and any(ends) and any(layer.padding):  # torch counts these zeros
            (ph, pw), padded = layer.padding, f"{name}:padded"
            b.node("Pad", [x, b.weight(f"{name}.pads", np.array(
                [0, 0, ph, pw, 0, 0, ph, pw], np.int64))], padded, f"{name}:pad")
            x, pads = padded, _pads((0, 0), ends)
        attrs = {"count_include_pad": int(count_pad and not any(ends))} \
            if kind is nn.AvgPool2d else {}
        b.node("MaxPool" if kind is nn.MaxPool2d else "AveragePool", [x], out, name,
               kernel_shape=list(layer.kernel_size), strides=list(layer.stride), pads=pads,
               **attrs)
    elif kind is nn.AdaptiveAvgPool2d:
        h, w = in_shapes[0][2:]
        oh = h if layer.output_size[0] is None else layer.output_size[0]
        ow = w if layer.output_size[1] is None else layer.output_size[1]
        if (oh, ow) == (1, 1):
            b.node("GlobalAveragePool", [x], out, name)
        elif h % oh == 0 and w % ow == 0:
            k = [h // oh, w // ow]
            b.node("AveragePool", [x], out, name, kernel_shape=k, strides=k)
        else:  # windows of different sizes: x @ columns, then rows @ that
            b.node("MatMul", [x, b.weight(f"{name}.columns", _averaging(w, ow).T)],
                   f"{name}:columns", f"{name}:columns")
            b.node("MatMul", [b.weight(f"{name}.rows", _averaging(h, oh)), f"{name}:columns"],
                   out, name)
    elif kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        c = layer.num_features
        scale = np.ones(c, np.float32) if layer.weight is None else layer.weight.data
        bias = np.zeros(c, np.float32) if layer.bias is None else layer.bias.data
        if layer.track_running_stats:
            stats = [b.weight(f"{name}.running_mean", layer.running_mean),
                     b.weight(f"{name}.running_var", layer.running_var)]
        else:  # the batch's (biased) statistics, as torch.onnx.export writes them
            axes = [0] + list(range(2, len(in_shapes[0])))
            stats = [_mean(b, x, axes, f"{name}:mean", 0)]
            b.node("Sub", [x, _mean(b, x, axes, f"{name}:mean_kept", 1)],
                   f"{name}:centred", f"{name}:centred")
            b.node("Mul", [f"{name}:centred", f"{name}:centred"], f"{name}:squared",
                   f"{name}:squared")
            stats.append(_mean(b, f"{name}:squared", axes, f"{name}:var", 0))
        b.node("BatchNormalization", [x, b.weight(f"{name}.weight", scale),
                                      b.weight(f"{name}.bias", bias), *stats], out, name,
               epsilon=layer.eps)
    elif kind is nn.ReLU:
        b.node("Relu", [x], out, name)
    elif kind is nn.LeakyReLU:
        b.node("LeakyRelu", [x], out, name, alpha=layer.negative_slope)
    elif kind is nn.Sigmoid:
        b.node("Sigmoid", [x], out, name)
    elif kind is nn.Tanh:
        b.node("Tanh", [x], out, name)
    elif kind is nn.GELU:
        _gelu(b, x, out, name, layer.approximate)
    elif kind is nn.SiLU:
        b.node("Sigmoid", [x], f"{name}:sigmoid", f"{name}:sigmoid")
        b.node("Mul", [x, f"{name}:sigmoid"], out, name)
    elif kind is nn.ELU:
        b.node("Elu", [x], out, name, alpha=layer.alpha)
    elif kind is nn.LayerNorm:
        shape = layer.normalized_shape
        scale = layer.weight.data if layer.weight is not None else np.ones(shape, np.float32)
        bias = [] if layer.bias is None else [b.weight(f"{name}.bias", layer.bias.data)]
        b.node("LayerNormalization", [x, b.weight(f"{name}.weight", scale), *bias], out, name,
               axis=-len(shape), epsilon=layer.eps)
    elif kind is nn.Softmax:
        b.node("Softmax", [x], out, name, axis=layer._dim_for(len(in_shapes[0])))
    elif kind is nn.LogSoftmax:
        b.node("LogSoftmax", [x], out, name, axis=layer._dim_for(len(in_shapes[0])))
    elif kind is nn.Flatten and (layer.start_dim, layer.end_dim) == (1, -1):
        b.node("Flatten", [x], out, name, axis=1)
    elif kind is nn.Flatten:  # 0 keeps the batch and leading dimensions, -1 takes the
        # joined ones; the later ones are written out (a 0 there would copy the input's
        # dimension at that index, not the one it came from)
        shape = in_shapes[0]
        start, end = (d + len(shape) if d < 0 else d for d in (layer.start_dim, layer.end_dim))
        shape = np.array([0] * start + [-1] + list(shape[end + 1:]), np.int64)
        b.node("Reshape", [x, b.weight(f"{name}.shape", shape)], out, name)
    elif kind in (nn.Identity, nn.Dropout):
        b.node("Identity", [x], out, name)
    elif kind is nn.Add:
        b.node("Sum", list(ins), out, name)
    elif kind is nn.Subtract:
        b.node("Sub", list(ins), out, name)
    elif kind is nn.Multiply:  # Mul is binary: a chain
        for k in range(1, len(ins)):
            b.node("Mul", [x, ins[k]], out if k == len(ins) - 1 else f"{name}:product{k}",
                   f"{name}:product{k}")
            x = f"{name}:product{k}"
    elif kind in (nn.Average, nn.Maximum, nn.Minimum):
        b.node({nn.Average: "Mean", nn.Maximum: "Max", nn.Minimum: "Min"}[kind], list(ins),
               out, name)
    elif kind is ReshapeTo:  # 0 keeps the batch
        b.node("Reshape", [x, b.weight(f"{name}.shape", np.array((0,) + layer.shape,
                                                                 np.int64))], out, name)
    elif kind is ScaleShift:
        b.node("Mul", [x, b.weight(f"{name}.scale", np.array(layer.scale, np.float32))],
               f"{name}:scaled", f"{name}:scaled")
        b.node("Add", [f"{name}:scaled", b.weight(f"{name}.offset",
                                                  np.array(layer.offset, np.float32))],
               out, name)
    elif kind is nn.Concatenate:
        b.node("Concat", list(ins), out, name, axis=layer.axis)
    elif kind is Transpose:
        b.node("Transpose", [x], out, name, perm=list(layer.axes))
    elif kind is Pad2d:
        top, bottom, left, right = layer.padding
        pads = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
        b.node("Pad", [x, b.weight(f"{name}.pads", pads),
                       b.weight(f"{name}.value", np.array(layer.value, np.float32))],
               out, name, mode="constant")
    else:
        raise TypeError(f"export: layer {name} is a {kind.__name__}, which has no ONNX form "
                        f"here")


def _gelu(b, x, out, name, approximate):
    """GELU from opset-17 operators (Gelu itself is opset 20): 0.5 x (1 + erf(x / sqrt2)),
    or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) for approximate='tanh'."""
    def const(key, value):
        return b.weight(f"{name}.{key}", np.array(value, np.float32))

    def op(kind, inputs, key):
        b.node(kind, inputs, f"{name}:{key}", f"{name}:{key}")
        return f"{name}:{key}"

    if approximate == "tanh":
        cube = op("Mul", [op("Mul", [x, x], "square"), x], "cube")
        inner = op("Add", [x, op("Mul", [cube, const("kappa", 0.044715)], "kappa_cube")],
                   "inner")
        phi2 = op("Tanh", [op("Mul", [inner, const("beta", np.sqrt(2 / np.pi))], "scaled")],
                  "tanh")
    else:
        phi2 = op("Erf", [op("Div", [x, const("sqrt2", np.sqrt(2))], "scaled")], "erf")
    half_x = op("Mul", [x, const("half", 0.5)], "half_x")
    b.node("Mul", [half_x, op("Add", [phi2, const("one", 1.0)], "one_plus")], out, name)


def export(model, path, input_shape=None, opset=DEFAULT_OPSET):
    """Write `model` (its eval-mode forward, whatever its mode) to path as ONNX (opset
    >= 17), inputs "input" (one model input) or "input_0", "input_1", ...; outputs
    likewise; the batch dimension is dynamic ("N"). input_shape (per sample) is needed
    for a model that does not know its own."""
    onnx, helper, numpy_helper = _onnx()
    if not isinstance(model, nn.Module) or model._is_layer():
        raise TypeError(f"export: model must be a fastnn model (Sequential, Model, a Module "
                        f"subclass or a fastnn.keras model), got {type(model).__name__}")
    newest = onnx.defs.onnx_opset_version()  # a later one: runtimes refuse the file
    if not is_int(opset) or not 17 <= opset <= newest:
        raise ValueError(f"export: opset must be an int from 17 to {newest} (the installed "
                         f"onnx's newest), got {opset!r}")
    if hasattr(model, "_ensure_built"):  # a fastnn.keras Sequential: built for input_shape
        model._ensure_built(None if input_shape is None
                            else as_sample_shape(input_shape, "input_shape", "export"))
    shapes = model._input_shapes(input_shape, "export")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # the eval-mode forward, as torch.onnx.export writes by default
    try:
        graph = model._graph_for(shapes)
    finally:
        for m, training in modes:
            m.training = training
    b = _Builder(helper, numpy_helper, opset)
    single_in, single_out = len(graph.input_values) == 1, len(graph.output_values) == 1
    names = {}
    for k, v in enumerate(graph.input_values):
        names[id(v)] = "input" if single_in else f"input_{k}"
    output_names = ["output"] if single_out else [
        f"output_{k}" for k in range(len(graph.output_values))]
    outputs = {}  # a value among the outputs twice is named after its first place
    for v, output in zip(graph.output_values, output_names):
        outputs.setdefault(id(v), output)
    known = {id(v): (1,) + tuple(s[1:]) for v, s in zip(graph.input_values, shapes)}
    for i, (node, name) in enumerate(zip(graph.nodes, graph.names)):
        ins = [names[id(v)] for v in node.inputs]
        in_shapes = [known[id(v)] for v in node.inputs]
        out = outputs.get(id(node.output), f"{name}:{i}")
        if id(node.output) in names:  # an output that is also used elsewhere keeps one name
            out = names[id(node.output)]
        _emit(b, node.module, f"{name}:{i}", ins, out, in_shapes)
        names[id(node.output)] = out
        known[id(node.output)] = node.module.output_shape(in_shapes if node.merge
                                                          else in_shapes[0])
    for v, output in zip(graph.output_values, output_names):  # an input, a value twice
        if names[id(v)] != output:
            b.node("Identity", [names[id(v)]], output, f"{output}:identity")

    def value_info(name, shape):
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                             ["N"] + list(shape[1:]))

    onnx_graph = helper.make_graph(
        b.nodes, type(model).__name__,
        [value_info(names[id(v)], s) for v, s in zip(graph.input_values, shapes)],
        [value_info(output, known[id(v)])
         for v, output in zip(graph.output_values, output_names)],
        b.inits)
    proto = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastnn")
    proto.ir_version = min(proto.ir_version, 8)  # readable by older runtimes
    onnx.checker.check_model(proto)
    from .serialization import atomic_write
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    return proto
