"""Running onnxruntime the way the numeric contract demands (DESIGN.md §2):
ORT_ENABLE_ALL, int8 QDQ fusion allowed, and a check on the optimized model
that no float matrix product is left (its results would not be reproducible).
When onnxruntime cannot load or run a model, that is said as a QloomError."""
import os
import re
import tempfile

import numpy as np
import onnx

from .errors import QloomError


class OnnxruntimeError(QloomError):
    """onnxruntime, the oracle qloom compares with, cannot load or run the model."""


_NOISE = [
    (re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : "), ""),
    (re.compile(r"Load model from \S+ failed: ?"), ""),
    (re.compile(r"This is an invalid model\. "), ""),
    (re.compile(r"Non-zero status code returned while running \w+ node\. Name:'[^']*' Status Message: "), ""),
    (re.compile(r"In Node, \(\"[^\"]*\", \w+, \"[^\"]*\", -?\d+\) : \(.*?\) -> \(.*?\) , Error "), ""),
    # a C++ source location and the function it is in: "/onnxruntime_src/...cc:52 virtual ... const "
    (re.compile(r"/\S+\.(?:cc|h|cpp):\d+ (?:[\w:<>*&]+ [\w:<>*&, ]*\([^()]*\)(?: const)? )?"), ""),
]
_NODE = [(re.compile(p), name, op) for p, name, op in (     # (pattern, group of the node's name, of its op)
    (r"In Node, \(\"([^\"]+)\", (\w+),", 1, 2), (r"running (\w+) node\. Name:'([^']+)'", 2, 1),
    (r"for (\w+)\(\d+\) node with name '([^']+)'", 2, 1), (r"in node \(([^)]+)\)", 1, None),
    (r"Node \(([^)]+)\)", 1, None))]


def describe(e):
    """onnxruntime's message as one paragraph without its C++ locations, and the node it names
    (``(name, op)``, op may be None), or None."""
    text = str(e)
    node = None
    for p, name, op in _NODE:
        m = p.search(text)
        if m:
            node = (m.group(name), m.group(op) if op else None)
            break
    for p, sub in _NOISE:
        text = p.sub(sub, text)
    text = " ".join(text.split()).strip() or type(e).__name__
    return text, node


def _fail(verb, model_path, e, advice):
    text, node = describe(e)
    where = ""
    if node:
        where = f" (at {node[1]} node '{node[0]}')" if node[1] else f" (at node '{node[0]}')"
    return OnnxruntimeError(f"onnxruntime cannot {verb} {model_path}{where}: {text.rstrip('.')}. {advice}")


LOAD_ADVICE = ("qloom compares its integer reference with onnxruntime, so it cannot check a model onnxruntime "
               "refuses; fix the model (export or quantize it again) so that onnxruntime loads it.")
RUN_ADVICE = ("qloom's reference computes this model, but onnxruntime, which qloom compares it with, cannot; "
              "there is nothing to check it against.")

FLOAT_PRODUCTS = {"MatMul", "Gemm", "Conv", "FusedConv", "FusedMatMul", "FusedGemm",
                  "MatMulIntegerToFloat", "ConvTranspose"}


def _options(optimized_path=None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    so.log_severity_level = 3
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return so


def _session(model_path, options):
    import onnxruntime as ort
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as e:      # onnxruntime raises its own Fail, InvalidGraph, ... (and RuntimeError)
        raise _fail("load", model_path, e, LOAD_ADVICE) from None


def session(model_path):
    return _session(model_path, _options())


def float_products_left(model_path):
    """Names of float MatMul/Gemm/Conv nodes ORT leaves in the optimized model."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "optimized.onnx")
        _session(model_path, _options(out))
        optimized = onnx.load(out)
    return [f"{n.op_type} '{n.name}'" for n in optimized.graph.node if n.op_type in FLOAT_PRODUCTS]


def run(model_path, x, sess=None):
    """Outputs of the model for a batch ``x`` (one frame at a time if the batch is fixed to 1)."""
    sess = sess or session(model_path)
    inp = sess.get_inputs()[0]
    batch = inp.shape[0] if inp.shape else None
    try:
        if isinstance(batch, int) and batch == 1 and len(x) != 1:
            outs = [sess.run(None, {inp.name: x[i:i + 1]}) for i in range(len(x))]
            return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]
        return sess.run(None, {inp.name: x})
    except Exception as e:
        raise _fail("run", model_path, e, RUN_ADVICE) from None


def calibration_frames(input_name, x):
    """An onnxruntime.quantization CalibrationDataReader giving the frames of ``x`` one by one."""
    from onnxruntime.quantization import CalibrationDataReader

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.rows = iter([{input_name: x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.rows, None)
    return Frames()
