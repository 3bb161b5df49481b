"""Folding: how many multipliers each matrix-vector unit gets (``pe`` outputs × ``simd`` inputs)."""
import json
from dataclasses import dataclass

import numpy as np

from . import qgraph as qg
from .errors import QloomError

DEFAULT_MAX_MULTIPLIERS = 32


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class MatrixLayer:
    """A layer as a matrix-vector unit sees it: ``vectors`` products of an out × in matrix per
    frame; ``simd`` must divide ``simd_of`` (the input features, or a conv's input channels,
    so that a window's beats never mix taps)."""
    name: str
    onnx_node: str
    out_features: int
    in_features: int
    vectors: int
    simd_of: int

    def cycles(self, pe, simd):
        return self.vectors * (self.out_features // pe) * (self.in_features // simd)


def is_depthwise(conv):
    """One filter per channel (groups = in = out channels): built as a vector unit."""
    return conv.groups > 1 and conv.groups == conv.in_shape[0] == conv.out_channels


def matrix_layers(graph):
    out = []
    for node in graph.nodes:
        if isinstance(node, qg.Dense):
            out.append(MatrixLayer(node.name, node.onnx_node, node.out_features, node.in_features, 1,
                                   node.in_features))
        elif isinstance(node, qg.Conv) and is_depthwise(node):
            # a vector unit: pe channels in parallel, one tap per cycle (simd 1)
            out.append(MatrixLayer(node.name, node.onnx_node, node.out_channels, int(np.prod(node.kernel)),
                                   int(np.prod(node.out_shape[1:])), 1))
        elif isinstance(node, qg.Conv):
            c = node.in_shape[0]
            out.append(MatrixLayer(node.name, node.onnx_node, node.out_channels, c * int(np.prod(node.kernel)),
                                   int(np.prod(node.out_shape[1:])), c))
    return out


def cheapest_for(layer, cycles):
    """(pe, simd) with the fewest multipliers that computes a frame in at most ``cycles``;
    among equals, the one with more simd (fewer output tiles re-reading the input buffer)."""
    best = None
    for pe in divisors(layer.out_features):
        for simd in divisors(layer.simd_of):
            if layer.cycles(pe, simd) <= cycles:
                key = (pe * simd, -simd)
                if best is None or key < best[0]:
                    best = (key, (pe, simd))
    return best[1] if best else (layer.out_features, layer.simd_of)


def for_cycles(graph, cycles):
    return {d.name: cheapest_for(d, cycles) for d in matrix_layers(graph)}


def balanced(graph, max_multipliers=DEFAULT_MAX_MULTIPLIERS):
    """The fastest balanced folding whose MVUs use at most ``max_multipliers`` multipliers
    (never fewer than one per layer)."""
    layers = matrix_layers(graph)
    candidates = sorted({d.cycles(pe, simd) for d in layers
                         for pe in divisors(d.out_features) for simd in divisors(d.simd_of)})
    for cycles in candidates:
        folding = for_cycles(graph, cycles)
        if sum(pe * simd for pe, simd in folding.values()) <= max_multipliers:
            return folding
    return for_cycles(graph, candidates[-1])


def load(path, graph):
    """A folding file {"dense0": {"pe": 4, "simd": 8}, ...}; every layer must be present."""
    try:
        spec = json.loads(open(path).read())
    except (OSError, ValueError) as e:
        raise QloomError(f"{path}: cannot read the folding file ({e}). It must be JSON like "
                         '{"dense0": {"pe": 4, "simd": 8}}.') from None
    folding = {}
    for d in matrix_layers(graph):
        entry = spec.get(d.name)
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), int) for k in ("pe", "simd")):
            raise QloomError(f"{path}: layer '{d.name}' (ONNX node '{d.onnx_node}') needs an entry "
                             '{"pe": P, "simd": S} with integers.')
        pe, simd = entry["pe"], entry["simd"]
        if d.out_features % pe or pe < 1:
            raise QloomError(f"{path}: layer '{d.name}' (ONNX node '{d.onnx_node}'): pe {pe} does not divide "
                             f"its {d.out_features} outputs; choose one of {divisors(d.out_features)}.")
        if d.simd_of % simd or simd < 1:
            what = "inputs" if d.vectors == 1 else "input channels"
            raise QloomError(f"{path}: layer '{d.name}' (ONNX node '{d.onnx_node}'): simd {simd} does not divide "
                             f"its {d.simd_of} {what}; choose one of {divisors(d.simd_of)}.")
        folding[d.name] = (pe, simd)
    extra = set(spec) - set(folding) - {"fifo_depths"}
    if extra:
        raise QloomError(f"{path}: unknown layers {sorted(extra)}; the layers are {sorted(folding)}.")
    return folding


def fifo_depths(path):
    """The optional "fifo_depths" of a folding file: {join FIFO name: depth}."""
    spec = json.loads(open(path).read())
    depths = spec.get("fifo_depths", {})
    if not isinstance(depths, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                               for v in depths.values()):
        raise QloomError(f'{path}: "fifo_depths" must map FIFO names to positive integers, e.g. '
                         '{"join_add0_b": 300}.')
    return depths


def to_json(folding):
    return {name: {"pe": pe, "simd": simd} for name, (pe, simd) in folding.items()}
