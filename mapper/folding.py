"""Folding: how many multipliers each matrix-vector unit gets (``pe`` outputs × ``simd`` inputs)."""
import json

from . import qgraph as qg
from .errors import QloomError

DEFAULT_MAX_MULTIPLIERS = 32


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def cheapest_for(dense, cycles):
    """(pe, simd) with the fewest multipliers that computes a frame in at most ``cycles``;
    among equals, the one with more simd (fewer output tiles re-reading the input buffer)."""
    best = None
    for pe in divisors(dense.out_features):
        for simd in divisors(dense.in_features):
            if (dense.out_features // pe) * (dense.in_features // simd) <= cycles:
                key = (pe * simd, -simd)
                if best is None or key < best[0]:
                    best = (key, (pe, simd))
    return best[1]


def for_cycles(graph, cycles):
    return {d.name: cheapest_for(d, cycles) for d in graph.layers(qg.Dense)}


def balanced(graph, max_multipliers=DEFAULT_MAX_MULTIPLIERS):
    """The fastest balanced folding whose MVUs use at most ``max_multipliers`` multipliers
    (never fewer than one per layer)."""
    dense = graph.layers(qg.Dense)
    candidates = sorted({(d.out_features // pe) * (d.in_features // simd) for d in dense
                         for pe in divisors(d.out_features) for simd in divisors(d.in_features)})
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
    for d in graph.layers(qg.Dense):
        entry = spec.get(d.name)
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), int) for k in ("pe", "simd")):
            raise QloomError(f"{path}: layer '{d.name}' (ONNX node '{d.onnx_node}') needs an entry "
                             '{"pe": P, "simd": S} with integers.')
        pe, simd = entry["pe"], entry["simd"]
        if d.out_features % pe or pe < 1:
            raise QloomError(f"{path}: layer '{d.name}' (ONNX node '{d.onnx_node}'): pe {pe} does not divide "
                             f"its {d.out_features} outputs; choose one of {divisors(d.out_features)}.")
        if d.in_features % simd or simd < 1:
            raise QloomError(f"{path}: layer '{d.name}' (ONNX node '{d.onnx_node}'): simd {simd} does not divide "
                             f"its {d.in_features} inputs; choose one of {divisors(d.in_features)}.")
        folding[d.name] = (pe, simd)
    extra = set(spec) - set(folding)
    if extra:
        raise QloomError(f"{path}: unknown layers {sorted(extra)}; the layers are {sorted(folding)}.")
    return folding


def to_json(folding):
    return {name: {"pe": pe, "simd": simd} for name, (pe, simd) in folding.items()}
