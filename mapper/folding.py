"""Folding: how many multipliers each matrix-vector unit gets (``pe`` outputs × ``simd`` inputs)."""
import json
from dataclasses import dataclass

import numpy as np

from . import qgraph as qg
from .errors import QloomError
from .frontend.files import option_file

DEFAULT_MAX_MULTIPLIERS = 32


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class MatrixLayer:
    """A layer as a matrix-vector unit sees it: ``vectors`` products of an out × in matrix per
    frame; ``simd`` one of ``simds``: a divisor of the input features, or of a conv's input
    channels C (a window's beat holds one tap of C / simd groups), or C times the taps one beat
    of its window carries (``tap_blocks``)."""
    name: str
    onnx_node: str
    out_features: int
    in_features: int
    vectors: int
    simds: tuple
    channels: int = 0         # a conv's input channels (0: a dense or depthwise layer): a simd above them takes several taps a beat

    def taps(self, simd):
        """Taps a beat of its window carries at ``simd`` (1 but for a conv's simd above its channels)."""
        return simd // self.channels if 0 < self.channels < simd else 1

    def cycles(self, pe, simd):
        return self.vectors * (self.out_features // pe) * (self.in_features // simd)

    @property
    def simd_rule(self):
        """The legal simds, said for a message."""
        if self.vectors == 1:
            return f"the divisors of its {self.in_features} inputs"
        if not self.channels:
            return "1: a depthwise layer takes one tap a cycle"
        return "the divisors of its input channels, and those channels times the taps one beat of its window carries"


def tap_blocks(kernel):
    """The numbers of taps beyond one that a window generator's beat can carry (hdl.window.
    tap_block): divisors of a kernel row, or whole rows, a divisor of the kernel's rows."""
    kh, kw = kernel
    return [t for t in divisors(kw)[1:]] + [kw * r for r in divisors(kh)[1:]]


def is_depthwise(conv):
    """One filter per channel (groups = in = out channels): built as a vector unit."""
    return conv.groups > 1 and conv.groups == conv.in_shape[0] == conv.out_channels


def reads_in_order(conv):
    """A 1×1 conv of stride 1 without padding: every pixel is its own window, read in stream
    order, so it needs no window generator."""
    return conv.kernel == (1, 1) and tuple(conv.strides) == (1, 1) and not any(conv.pads)


def matrix_layers(graph):
    out = []
    for node in graph.nodes:
        if isinstance(node, qg.Dense):
            out.append(MatrixLayer(node.name, node.onnx_node, node.out_features, node.in_features, 1,
                                   tuple(divisors(node.in_features))))
        elif isinstance(node, qg.Conv) and is_depthwise(node):
            # a vector unit: pe channels in parallel, one tap per cycle (simd 1)
            out.append(MatrixLayer(node.name, node.onnx_node, node.out_channels, int(np.prod(node.kernel)),
                                   int(np.prod(node.out_shape[1:])), (1,)))
        elif isinstance(node, qg.Conv):
            c = node.in_shape[0]
            taps = [] if reads_in_order(node) else tap_blocks(tuple(node.kernel))
            out.append(MatrixLayer(node.name, node.onnx_node, node.out_channels, c * int(np.prod(node.kernel)),
                                   int(np.prod(node.out_shape[1:])), tuple(divisors(c) + [c * t for t in taps]), c))
    return out


def cheapest_for(layer, cycles):
    """(pe, simd) with the fewest multipliers that computes a frame in at most ``cycles``;
    among equals, the one with fewer taps a beat (each a copy of the line buffer), then more
    simd (fewer output tiles re-reading the input buffer)."""
    best = None
    for pe in divisors(layer.out_features):
        for simd in layer.simds:
            if layer.cycles(pe, simd) <= cycles:
                key = (pe * simd, layer.taps(simd), -simd)
                if best is None or key < best[0]:
                    best = (key, (pe, simd))
    return best[1] if best else (layer.out_features, layer.simds[-1])


def candidates(graph):
    """Every frame time of some layer at some legal fold, fastest first."""
    return sorted({d.cycles(pe, simd) for d in matrix_layers(graph)
                   for pe in divisors(d.out_features) for simd in d.simds})


def for_cycles(graph, cycles):
    return {d.name: cheapest_for(d, cycles) for d in matrix_layers(graph)}


def balanced(graph, max_multipliers=DEFAULT_MAX_MULTIPLIERS):
    """The fastest balanced folding whose MVUs use at most ``max_multipliers`` multipliers
    (never fewer than one per layer)."""
    every = candidates(graph)
    for cycles in every:
        folding = for_cycles(graph, cycles)
        if sum(pe * simd for pe, simd in folding.values()) <= max_multipliers:
            return folding
    return for_cycles(graph, every[-1])


MAX_FOLD_BYTES = 1 << 20        # a folding file is a few lines per layer
MAX_FIFO_DEPTH = 1 << 20        # beats


def _example(graph):
    layers = matrix_layers(graph)
    first = layers[0].name if layers else "dense0"
    return '{"%s": {"pe": 1, "simd": 1}, ...}' % first


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"the key {twice[0]!r} appears twice in one object")
    return dict(pairs)


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def read_spec(path, example='{"dense0": {"pe": 4, "simd": 8}, ...}'):
    """The folding file's JSON object: a regular file of at most MAX_FOLD_BYTES, strict JSON
    (no NaN, no key twice), an object at the top."""
    want = f"give --fold a JSON file like {example}, as qloom compile writes to DIR/fold.json"
    where = f"--fold {path}"
    st = option_file(path, where, want)
    if st.st_size > MAX_FOLD_BYTES:
        raise QloomError(f"{where}: is {st.st_size:,} bytes, more than the {MAX_FOLD_BYTES:,} a folding file "
                         f"may have (a few lines a layer); {want}.")
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_FOLD_BYTES + 1).decode("utf-8")
    except OSError as e:
        raise QloomError(f"{where}: cannot be read ({e.strerror or e}); {want}.") from None
    except UnicodeDecodeError:
        raise QloomError(f"{where}: is not UTF-8 text; {want}.") from None
    try:
        spec = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise QloomError(f"{where}: is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                         f"{want}.") from None
    except ValueError as e:
        raise QloomError(f"{where}: is not valid JSON ({e}); {want}.") from None
    except RecursionError:
        raise QloomError(f"{where}: nests its JSON too deeply; {want}.") from None
    if not isinstance(spec, dict):
        raise QloomError(f"{where}: holds {_json_kind(spec)} at the top, not an object of layers; {want}.")
    return spec


def _json_kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return json.dumps(v)
    return {list: "a list", str: "a string", int: "a number", float: "a number", dict: "an object"}[type(v)]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _factor(path, d, key, v):
    """pe (a divisor of the outputs) or simd (one of the layer's simds)."""
    if key == "pe":
        choices, why = divisors(d.out_features), f"the divisors of its {d.out_features} outputs"
        wrong = f"does not divide its {d.out_features} outputs"
    else:
        choices, why = list(d.simds), d.simd_rule
        wrong = f"does not divide its {d.in_features} inputs" if d.vectors == 1 else "is not one of them"
    where = f"--fold {path}: layer '{d.name}' (ONNX node '{d.onnx_node}')"
    choose = f"choose one of {choices}"
    if v is None:
        raise QloomError(f'{where} has no "{key}"; {choose} ({why}).')
    if not _is_int(v):
        raise QloomError(f"{where}: {key} {json.dumps(v)} is not a whole number; {choose} ({why}).")
    if v < 1:
        raise QloomError(f"{where}: {key} {v} is not a positive whole number; {choose} ({why}).")
    if v not in choices:
        raise QloomError(f"{where}: {key} {v} {wrong}; {choose}.")
    return v


WEIGHT_MEMORIES = ("auto", "spram")


def load(path, graph):
    """A folding file {"dense0": {"pe": 4, "simd": 8}, ...}; every layer must be present, and
    may say where its weights go ("weights": "spram" or "auto": spram_layers)."""
    spec = read_spec(path, _example(graph))
    layers = matrix_layers(graph)
    names = [d.name for d in layers]
    extra = [k for k in spec if k not in names and k != "fifo_depths"]
    if extra:
        raise QloomError(f"--fold {path}: {', '.join(map(repr, extra))} {'is not a layer' if len(extra) == 1 else 'are not layers'} "
                         f"of this model; its layers are {', '.join(map(repr, names))}"
                         + (' (and "fifo_depths" for join FIFOs).' if names else "."))
    folding = {}
    for d in layers:
        entry = spec.get(d.name)
        if not isinstance(entry, dict):
            has = "the file has none" if d.name not in spec else f"not {json.dumps(entry)[:40]}"
            raise QloomError(f"--fold {path}: layer '{d.name}' (ONNX node '{d.onnx_node}') needs an entry "
                             f'{{"pe": P, "simd": S}} with whole numbers; {has}.')
        unknown = sorted(set(entry) - {"pe", "simd", "weights"})
        if unknown:
            raise QloomError(f"--fold {path}: layer '{d.name}' (ONNX node '{d.onnx_node}'): unknown key "
                             f'{unknown[0]!r}; an entry has "pe" and "simd", and may have "weights".')
        if entry.get("weights", "auto") not in WEIGHT_MEMORIES:
            raise QloomError(f"--fold {path}: layer '{d.name}' (ONNX node '{d.onnx_node}'): \"weights\" is "
                             f"{json.dumps(entry['weights'])[:40]}; give \"spram\" (its weights in the target's "
                             "SPRAMs, loaded at run time) or \"auto\" (block RAM or logic, as qloom chooses).")
        folding[d.name] = (_factor(path, d, "pe", entry.get("pe")), _factor(path, d, "simd", entry.get("simd")))
    _depths(path, spec)
    return folding


def _depths(path, spec):
    depths = spec.get("fifo_depths", {})
    want = (f'"fifo_depths" maps join FIFO names to depths in beats, whole numbers from 1 to {MAX_FIFO_DEPTH:,}, '
            'e.g. {"join_add0_b": 300} (or leave it out: qloom computes them)')
    if not isinstance(depths, dict):
        raise QloomError(f"--fold {path}: \"fifo_depths\" is {_json_kind(depths)}; {want}.")
    for name, v in depths.items():
        if not _is_int(v) or not 1 <= v <= MAX_FIFO_DEPTH:
            raise QloomError(f"--fold {path}: \"fifo_depths\": FIFO {name!r} has depth {json.dumps(v)[:40]}; {want}.")
    return dict(depths)


def spram_layers(path):
    """The layers a folding file puts in SPRAM (``"weights": "spram"``), in its order."""
    return tuple(name for name, entry in read_spec(path).items()
                 if isinstance(entry, dict) and entry.get("weights") == "spram")


def fifo_depths(path):
    """The optional "fifo_depths" of a folding file: {join FIFO name: depth}."""
    return _depths(path, read_spec(path))


def to_json(folding):
    return {name: {"pe": pe, "simd": simd} for name, (pe, simd) in folding.items()}
