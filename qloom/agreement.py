"""Reference vs onnxruntime on the same inputs: the tier-0 proof for a user's model."""
from dataclasses import dataclass

import numpy as np

from .mapper import ort_check


@dataclass
class Agreement:
    frames: int
    outputs: int
    mismatches: int
    float_left: list
    reference: np.ndarray
    onnxruntime: np.ndarray


def compare(graph, model_path, x):
    ref = graph.reference({graph.inputs[0]: x})[graph.outputs[0]]
    ort_out = ort_check.run(model_path, x)[0]
    if ref.shape != ort_out.shape:
        ort_out = ort_out.reshape(ref.shape)
    return Agreement(len(x), int(ref.size), int(np.sum(ref != ort_out)),
                     ort_check.float_products_left(model_path), ref, ort_out)


def random_inputs(graph, count, seed=0):
    """Floats spanning the whole input code range, plus saturation on both sides."""
    q = graph.nodes[0]
    rng = np.random.default_rng(seed)
    codes = rng.uniform(q.code.qmin - 4, q.code.qmax + 4, size=(count,) + tuple(q.shape))
    return ((codes - q.zero_point) * q.scale).astype(np.float32)
