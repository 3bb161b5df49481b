"""The frontend's interpreter: the ONNX graph walked in order, each node dispatched to the
``op_<OpType>`` handler of a format mixin (qdq, qoperator, layout), its output given the
symbolic value the handler returns (values.py); the QGraph is what the handlers emitted, with
the graph output dequantized or reshaped.  Whatever cannot be mapped is refused, naming the
ONNX node."""
import numpy as np
import onnx

from . import loading, op_types
from .. import numeric, qgraph as qg
from ..errors import NotQuantizedError, ShapeError, UnsupportedError, onnx_node_label
from ..numeric import F32
from .checks import Checks
from .layers import Layers
from .layout import Layout
from .qdq import QDQ
from .qoperator import QOperator
from .qonnx import DOMAINS as QONNX_DOMAINS, OPS as QONNX_OPS, QONNX
from .values import Affine, Codes, Const, Deq, FloatInput

SUPPORTED = ("QuantizeLinear, DequantizeLinear, MatMul and Gemm between "
             "DequantizeLinear/QuantizeLinear (QDQ), Relu, Add of a quantized constant, "
             "QLinearMatMul, com.microsoft.QGemm, com.microsoft.QLinearAdd, MatMulInteger or "
             "ConvInteger → Cast → Mul → Add, Conv between DequantizeLinear/QuantizeLinear "
             "(QDQ), QLinearConv, MaxPool, AveragePool (QDQ, QLinearAveragePool), "
             "GlobalAveragePool (QDQ, QLinearGlobalAveragePool), Concat (QDQ, QLinearConcat), "
             "Transpose, Add of two quantized tensors (QDQ, QLinearAdd), Flatten, Reshape, "
             "Identity; QONNX: Quant (qonnx.custom_op.general) on the input, weights, biases "
             "and after MatMul/Gemm/Conv (+ bias Add) (+ Relu), BipolarQuant on weights and "
             "after MatMul/Gemm/Conv (+ bias Add), MaxPool, Flatten, Reshape")
FLOAT_COMPUTE = {"MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN", "Einsum"}


class Frontend(Checks, Layers, Layout, QONNX, QDQ, QOperator):
    """One ONNX model interpreted node by node (``run``): ``values`` maps each ONNX tensor to
    its symbolic value, ``nodes`` and ``shapes`` collect the QGraph.  The op_* handlers come
    from the format mixins; a handler returns the value of the node's output."""

    def __init__(self, model, path):
        self.model, self.path = model, path
        self.inits = loading.initializers(model)
        self.qonnx = any(n.domain in QONNX_DOMAINS for n in model.graph.node)
        self.values = {name: Const(a) for name, a in self.inits.items()}
        self.nodes, self.shapes, self.counts = [], {}, {}
        self.stale = set()
        self.notes = []
        self.consumers = {}
        for node in model.graph.node:
            for k, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, k))

    def fresh(self, kind):
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        return f"{kind}{n}"

    def refuse(self, node, why):
        raise UnsupportedError(f"{onnx_node_label(node)} in {self.path}: {why}")

    def value(self, node, index):
        if index >= len(node.input) or node.input[index] == "":
            return None
        name = node.input[index]
        if name not in self.values:
            self.refuse(node, f"input '{name}' is produced by an operation qloom could not map.")
        v = self.values[name]
        if id(v.codes if isinstance(v, Deq) else v) in self.stale:
            self.refuse(node, f"input '{name}' is also used before a constant is added to it; "
                              "qloom folds that addition into the layer, so the value cannot be "
                              "shared.")
        return v

    def const(self, node, index, what):
        v = self.value(node, index)
        if not isinstance(v, Const):
            self.refuse(node, f"{what} (input {index}) must be a constant initializer.")
        return v.array

    def emit(self, node):
        self.nodes.append(node)
        return node

    def new_codes(self, node, shape, code, scale, zero_point):
        self.shapes[node.output] = shape
        return Codes(node.output, shape, code, float(F32(scale)), int(zero_point))

    def code_type(self, node, zero_point_array):
        dtype = np.asarray(zero_point_array).dtype
        if str(dtype) not in numeric.DTYPE_RANGES:
            self.refuse(node, f"quantized type {dtype} is not supported; use uint8 or int8.")
        return qg.CodeType.from_dtype(dtype)

    def producer(self, tensor):
        return next((n for n in self.nodes if n.output == tensor), None)

    def graph_so_far(self):
        return qg.QGraph(tuple(self.nodes), tuple(self.input_names), (), dict(self.shapes))

    def attrs(self, node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def run(self):
        """The QGraph of the model, or a QloomError naming what cannot be mapped."""
        graph = self.model.graph
        init_names = set(self.inits)
        inputs = [i for i in graph.input if i.name not in init_names]
        if len(inputs) != 1:
            raise UnsupportedError(f"{self.path}: the model has {len(inputs)} inputs "
                                   f"({', '.join(i.name for i in inputs)}); qloom supports exactly "
                                   "one.")
        if len(graph.output) != 1:
            names = ", ".join(f"'{o.name}'" for o in graph.output)
            raise UnsupportedError(f"{self.path}: the model has {len(graph.output)} "
                                   f"outputs{' (' + names + ')' if names else ''}; qloom builds "
                                   "circuits with exactly one output. Keep the one you need, e.g. "
                                   "with onnx.utils.extract_model(in, out, input_names, "
                                   "[output_name]).")
        self.types_check = op_types.TypeCheck(self.model, self.path)
        self.types = self.types_check.types
        x = inputs[0]
        if self.types.get(x.name) != "tensor(float)":
            got = self.types.get(x.name, "not a tensor").removeprefix("tensor(").removesuffix(")")
            raise UnsupportedError(f"{self.path}: the model's input '{x.name}' is {got}; qloom's "
                                   "circuits take float32 frames and quantize them with a "
                                   "QuantizeLinear. Export the model with a float32 input.")
        self.input_names = [x.name]
        shape = loading.static_input_shape(self.path, x)
        self.values[x.name] = FloatInput(x.name, shape)
        self.check_quantized()
        for node in graph.node:
            out = self.interpret(node)      # refused unless it has an output
            self.values[node.output[0]] = out
        self.check_input_quantized(x.name)
        outputs = [self.graph_output(o.name) for o in graph.output]
        try:
            return qg.QGraph(tuple(self.nodes), tuple(self.input_names), tuple(outputs),
                             dict(self.shapes), notes=tuple(self.notes))
        except qg.NodeError as e:
            raise ShapeError(f"{self.path}: {e}") from None

    def interpret(self, node):
        """The value of the output of ``node``, from its op_<OpType> handler."""
        contrib = node.domain == "com.microsoft"
        qonnx = node.domain in QONNX_DOMAINS
        handler = getattr(self, "op_" + node.op_type, None)
        if handler is None or node.domain not in ("", "ai.onnx", "com.microsoft", *QONNX_DOMAINS) \
                or contrib != (node.op_type in op_types.CONTRIB) or \
                qonnx != (node.op_type in QONNX_OPS):
            self.refuse(node, "operator "
                              f"{node.domain + '.' if node.domain else ''}{node.op_type} is "
                              f"not supported. Supported: {SUPPORTED}.")
        if not node.output or not node.output[0]:
            self.refuse(node, "it has no output.")
        try:
            return handler(node)
        except qg.NodeError as e:
            raise ShapeError(f"{onnx_node_label(node)} in {self.path}: {e}.") from None

    def check_quantized(self):
        ops = {n.op_type for n in self.model.graph.node}
        quantized = {"QuantizeLinear", "QLinearMatMul", "QGemm", "MatMulInteger", "QLinearConv",
                     "ConvInteger", "DynamicQuantizeLinear", "Quant", "BipolarQuant"}
        if not ops & quantized:
            float_ops = sorted(ops & FLOAT_COMPUTE) or sorted(ops)
            raise NotQuantizedError(
                f"{self.path} is a floating-point model ({', '.join(float_ops)} on float tensors); "
                "qloom compiles quantized models. Quantize it with onnxruntime first, e.g. "
                "onnxruntime.quantization.quantize_static(model_input, model_output, "
                "calibration_reader, quant_format=QuantFormat.QDQ, "
                "activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, "
                "per_channel=True).")
        if "DynamicQuantizeLinear" in ops:
            node = next(n for n in self.model.graph.node if n.op_type == "DynamicQuantizeLinear")
            raise NotQuantizedError(
                f"{onnx_node_label(node)} in {self.path}: the model is dynamically quantized "
                "(activation scales computed at run time), which fixed-function hardware cannot "
                "do. Quantize it statically with onnxruntime.quantization.quantize_static and a "
                "calibration reader.")

    def graph_output(self, name):
        v = self.values.get(name)
        if isinstance(v, Deq):
            out = self.emit(qg.Dequantize(self.fresh("dequantize"), name, (v.codes.tensor,), name,
                                          scale=v.codes.scale, zero_point=v.codes.zero_point))
            self.shapes[name] = v.codes.shape
            return out.output
        if isinstance(v, Codes):
            self.nodes.append(qg.Reshape(self.fresh("output"), name, (v.tensor,), name,
                                         shape=v.shape))
            self.shapes[name] = v.shape
            return name
        if isinstance(v, Affine):
            raise UnsupportedError(f"{onnx_node_label(v.node)} in {self.path}: graph output "
                                   f"'{name}' is its float result, with no Quant after it. Its "
                                   "sums are exact integers in qloom's circuit, but the float "
                                   "scale and bias after them are not, so qloom does not build "
                                   "them: end the model with a Quant (Brevitas: output_quant= "
                                   "on the last layer, or a QuantIdentity after it) and read the "
                                   "float output from its codes.")
        raise UnsupportedError(f"{self.path}: graph output '{name}' is not the result of a "
                               "quantized layer followed by DequantizeLinear; qloom cannot "
                               "produce it.")


def to_qgraph(model, path="model"):
    """Map a loaded, shape-inferred ONNX model to its QGraph."""
    return Frontend(model, path).run()


def load_qgraph(path):
    return to_qgraph(loading.load(path), str(path))
