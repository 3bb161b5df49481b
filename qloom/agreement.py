"""Reference vs the model's oracle on the same inputs: the tier-0 proof for a user's model.
The oracle is onnxruntime, or qonnx's executor for QONNX models (DESIGN.md §2)."""
from dataclasses import dataclass

import numpy as np

from .mapper import ort_check, qgraph, qonnx_check


@dataclass
class Agreement:
    frames: int
    outputs: int
    mismatches: int
    float_left: list
    reference: np.ndarray
    oracle: np.ndarray
    oracle_name: str = "onnxruntime"


def oracle(graph):
    """(name, run) of the oracle of the model ``graph`` came from: qonnx's executor for a QONNX
    model (its input is quantized with a QONNX rounding mode), else onnxruntime
    (run(model_path, x) gives the list of outputs)."""
    q = next(n for n in graph.nodes if isinstance(n, qgraph.Quantize))
    if q.rounding is not None:
        return "qonnx's executor", qonnx_check.run
    return "onnxruntime", ort_check.run


def compare(graph, model_path, x):
    """qloom's reference and the model's oracle on frames ``x``; the oracle's failures to load or
    run the model are QloomErrors (ort_check.OnnxruntimeError, qonnx_check.QonnxError)."""
    ref = graph.reference({graph.inputs[0]: x})[graph.outputs[0]]
    name, run = oracle(graph)
    outs = run(model_path, x)
    if not outs:
        raise ort_check.OnnxruntimeError(f"{name} gives no output for {model_path}; there is nothing to "
                                         "compare qloom's reference with.")
    ort_out = np.asarray(outs[0])
    if ref.shape != ort_out.shape:
        if ref.size != ort_out.size:
            raise ort_check.OnnxruntimeError(
                f"{name}'s output of {model_path} has shape {ort_out.shape}, qloom's reference "
                f"{ref.shape} for the same {len(x)} frames; they cannot be compared (please report this model).")
        ort_out = ort_out.reshape(ref.shape)
    left = ort_check.float_products_left(model_path) if name == "onnxruntime" else []
    return Agreement(len(x), int(ref.size), int(np.sum(ref != ort_out)), left, ref, ort_out, name)


def random_inputs(graph, count, seed=0):
    """Floats spanning the whole input code range, plus saturation on both sides."""
    q = next(n for n in graph.nodes if isinstance(n, qgraph.Quantize))
    rng = np.random.default_rng(seed)
    codes = rng.uniform(q.code.qmin - 4, q.code.qmax + 4, size=(count,) + tuple(q.shape))
    return ((codes - q.zero_point) * q.scale).astype(np.float32)
