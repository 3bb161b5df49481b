"""Reference vs onnxruntime on the same inputs: the tier-0 proof for a user's model."""
from dataclasses import dataclass

import numpy as np

from .mapper import ort_check, qgraph


@dataclass
class Agreement:
    frames: int
    outputs: int
    mismatches: int
    float_left: list
    reference: np.ndarray
    onnxruntime: np.ndarray


def compare(graph, model_path, x):
    """qloom's reference and onnxruntime on frames ``x``; onnxruntime's failures to load or run
    the model are ort_check.OnnxruntimeError."""
    ref = graph.reference({graph.inputs[0]: x})[graph.outputs[0]]
    outs = ort_check.run(model_path, x)
    if not outs:
        raise ort_check.OnnxruntimeError(f"onnxruntime gives no output for {model_path}; there is nothing to "
                                         "compare qloom's reference with.")
    ort_out = np.asarray(outs[0])
    if ref.shape != ort_out.shape:
        if ref.size != ort_out.size:
            raise ort_check.OnnxruntimeError(
                f"onnxruntime's output of {model_path} has shape {ort_out.shape}, qloom's reference "
                f"{ref.shape} for the same {len(x)} frames; they cannot be compared (please report this model).")
        ort_out = ort_out.reshape(ref.shape)
    return Agreement(len(x), int(ref.size), int(np.sum(ref != ort_out)),
                     ort_check.float_products_left(model_path), ref, ort_out)


def random_inputs(graph, count, seed=0):
    """Floats spanning the whole input code range, plus saturation on both sides."""
    q = next(n for n in graph.nodes if isinstance(n, qgraph.Quantize))
    rng = np.random.default_rng(seed)
    codes = rng.uniform(q.code.qmin - 4, q.code.qmax + 4, size=(count,) + tuple(q.shape))
    return ((codes - q.zero_point) * q.scale).astype(np.float32)
