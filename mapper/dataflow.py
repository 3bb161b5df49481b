"""Dataflow graph: how the hardware computes the QGraph (DESIGN.md §3).

Kernels (mapper/kernels/, one module per family beside its twin in hdl/) carry their folding,
widths, cycles per frame, latency and estimated resources; width converters and FIFOs are
explicit kernels.  ``build`` makes the graph (mapper/builder.py); ``beat_times`` follows a
frame's beats through it.  The lowering only connects what this graph says."""
import functools
from dataclasses import dataclass, field, replace

import numpy as np

from . import qgraph as qg
from .builder import (HARDWARE_NODES, _Chain, branch_paths, conv_matrix, graph_code,
                      partial_sum_range, stream_positions)
from .errors import UnsupportedError
from .resources import blocks, dsp_cell_for, dsp_kernels, placement, spram_geometry
from .targets import TARGETS
from .kernels import (AddKernel, ConcatKernel, DepthwiseKernel, FifoKernel, FloatSumKernel,
                      IOFormat, Join, Kernel, MaxPoolKernel, MVUKernel, RequantKernel,
                      ResidualKernel, SumPoolKernel, WidthConverterKernel, WindowKernel,
                      adder_levels, dsp_slices, fifo_depth, flat, mvu_latency, mvu_tree_stages,
                      path_needs, produced, requant_latency, row_schedule, window_schedule,
                      window_timing)
from .kernels.base import chain_beat_times

__all__ = ["AddKernel", "ConcatKernel", "Dataflow", "DepthwiseKernel", "FifoKernel",
           "FloatSumKernel", "IOFormat", "Join", "Kernel", "MVUKernel", "MaxPoolKernel",
           "RequantKernel", "ResidualKernel", "SumPoolKernel", "WidthConverterKernel",
           "WindowKernel", "adder_levels", "beat_times", "branch_paths", "build", "check_hardware",
           "conv_matrix", "dsp_slices", "fifo_depth", "flat", "graph_code", "mvu_latency",
           "mvu_tree_stages", "partial_sum_range", "path_needs", "produced", "requant_latency",
           "row_schedule", "stream_positions", "window_schedule", "window_timing"]


def beat_times(kernels, arrive):
    """When each output beat of a frame leaves a chain of ``kernels`` whose input beat i
    arrives at ``arrive[i - 1]``, without back-pressure: each kernel's ``beat_times`` (a beat
    leaves its latency after the input beats it needs are in, and no sooner than its issue
    interval after the beat before; a join's beat when the beats it takes from both paths are
    there).  A kernel of more than limits.BEATS beats per frame is refused before its arrays
    are made."""
    return chain_beat_times(kernels, arrive)


@dataclass(frozen=True)
class Dataflow:
    """The kernels of a design in stream order (a residual block one ResidualKernel holding its
    paths), its input and output formats and its folding (fold.json); its cycles per frame,
    latency, multipliers and estimate follow from the kernels' protocol."""
    kernels: tuple
    input: IOFormat
    output: IOFormat
    source: str = ""
    folding: dict = field(default_factory=dict)

    @property
    def all_kernels(self):
        return tuple(flat(self.kernels))

    @property
    def cycles_per_frame(self):
        return max(k.cycles_per_frame for k in self.all_kernels)

    @property
    def bottleneck(self):
        return max(self.all_kernels, key=lambda k: k.cycles_per_frame)

    @functools.cached_property
    def latency(self):
        """Cycles from the first input beat of a frame to its last output beat, the input
        offered every cycle and the output taken: beat_times through the whole graph.  For a
        chain of dense layers this is the pipeline latencies, the first MVU's whole frame and
        every later MVU's output tiles after its last input beat (exact, tested in RTL); with
        windows and branches back-pressure is left out (equal to the simulation on the digits
        CNN, 1–3 cycles above it on the residual CNNs and ResNet-8)."""
        beats = self.input.beats
        return int(round(beat_times(self.kernels, np.arange(beats, dtype=float))[-1])) + 1

    @property
    def latency_exact(self):
        """The latency model is exact for chains of dense layers; with windows and branches a
        model without back-pressure (Kernel.exact_timing)."""
        return all(k.exact_timing for k in self.all_kernels)

    @property
    def multipliers(self):
        return sum(k.multipliers for k in self.all_kernels)

    @property
    def load_words(self):
        """16-bit words the design takes through its load stream after reset, before its first
        frame: the weights of its MVUs in SPRAM (hdl.spram.image), none without."""
        return sum(tiles * rows for k in self.all_kernels if getattr(k, "spram_cell", None)
                   for _, tiles, rows, _ in [spram_geometry(*_weight_memory(k))])

    def estimate(self):
        total = {"lut": 0, "ff": 0, "dsp": 0, "bram_bits": 0}
        for k in self.all_kernels:
            for key, v in k.resources().items():
                total[key] += v
        return total

    def to_json(self):
        return {"source": self.source, "cycles_per_frame": self.cycles_per_frame,
                "bottleneck": self.bottleneck.name, "latency_cycles": self.latency,
                "latency_exact": self.latency_exact,
                "multipliers": self.multipliers, "estimate": self.estimate(), "load_words": self.load_words,
                "input": self.input.to_json(), "output": self.output.to_json(),
                "folding": self.folding, "kernels": [k.to_json() for k in self.all_kernels]}


def _weight_memory(k):
    mem = next(m for m in k.memories() if m.name == "weights")
    return mem.width, mem.depth


def pin_rams(dataflow):
    """``dataflow`` with every kernel's RAMs (MVU input buffers, line buffers; not FIFO
    storage) in block RAM wherever they are worth a block (resources.Memory.pinned), not where
    Yosys finds them cheapest: the same timing, LUTs traded for block RAMs."""
    return map_kernels(dataflow, lambda k: replace(k, block_rams=True) if hasattr(k, "block_rams") else k)


def in_spram(dataflow, layers, target, source="model"):
    """``dataflow`` with the weights of the MVUs of ``layers`` (layer names, as fold.json names
    them) in ``target``'s SPRAMs (its "spram_cell"; hdl.spram: loaded at run time, read with
    block RAM's timing), and fold.json saying so (``"weights": "spram"``).  Refused, naming the
    layer, where the target has no SPRAM or the layer keeps no weight memory."""
    cell = TARGETS[target]["spram_cell"] if target else None
    mvus = {k.name: k for k in dataflow.all_kernels if isinstance(k, MVUKernel)}
    for layer in layers:
        k = mvus.get(f"mvu_{layer}")
        where = f"{source}: layer '{layer}'" + (f" (ONNX node '{k.dense.onnx_node}')" if k else "")
        if cell is None:
            why = f"which the {TARGETS[target]['device']} has none of" if target else "but no --target is given"
            raise UnsupportedError(f"{where}: its weights are asked for in SPRAM, {why}; build for a target with "
                                   "SPRAM (" + ", ".join(t for t, v in TARGETS.items() if v["spram_cell"])
                                   + ') or drop "weights".')
        if k is None or k.in_fold * k.out_fold == 1:
            raise UnsupportedError(f"{where}: keeps no weight memory to put in SPRAM ("
                                   + ("it is not a matrix layer" if k is None else
                                      f"at {k.pe}×{k.simd} its weights are one step, built as constants")
                                   + '); drop its "weights".')
    names = {f"mvu_{layer}" for layer in layers}
    moved = map_kernels(dataflow, lambda k: replace(k, spram_cell=cell) if k.name in names else k)
    folding = {name: ({**v, "weights": "spram"} if name in layers else v) for name, v in dataflow.folding.items()}
    return replace(moved, folding=folding)


def spram_candidates(dataflow, target):
    """The layers whose weights could move from block RAM to ``target``'s SPRAMs, the most
    block RAMs first: the MVUs whose weight memory is in block RAM there."""
    found = []
    for k in dataflow.all_kernels:
        if isinstance(k, MVUKernel) and k.spram_cell is None:
            for mem in k.memories():
                if mem.name == "weights" and placement(mem, target) == "block":
                    found.append((-blocks(mem.width, mem.depth, target), k.name[len("mvu_"):]))
    return [layer for _, layer in sorted(found)]


def map_kernels(dataflow, change):
    """``dataflow`` with ``change(kernel)`` in place of each kernel, those inside forks' paths too."""
    def each(chain):
        return tuple(replace(k, paths=tuple(each(p) for p in k.children)) if k.children else change(k)
                     for k in chain)
    return replace(dataflow, kernels=each(dataflow.kernels))


NO_PRODUCT = "the model has no quantized matrix product to build hardware for."


def check_hardware(graph, source="model"):
    """Refuse, before any folding, a graph with a node no hardware kernel exists for."""
    for node in graph.nodes:
        if not isinstance(node, HARDWARE_NODES):
            raise UnsupportedError(f"{node.label} in {source}: no hardware kernel for "
                                   f"{type(node).__name__} yet; `qloom inspect` and `qloom check` "
                                   "work on this model.")
    if not graph.layers(qg.Dense) and not graph.layers(qg.Conv):
        raise UnsupportedError(f"{source}: {NO_PRODUCT}")


def build(graph, folding, plans, source="", fifo_depths=None, target=None, split=True, spram=()):
    """Lower the QGraph to a Dataflow graph with the given folding {layer name: (pe, simd)}.
    Streams are channels-last; a conv is a window generator feeding an MVU; a residual block
    is a ResidualKernel whose join FIFOs are sized for full rate at the design's initiation
    interval, and requantizers that idle most of that interval are serial (so built twice: the
    interval depends on neither).  For a ``target``, the MVUs whose products are built in LUTs
    there (resources.dsp_kernels) split each product in two stages (MVUKernel.split_products:
    the multiply is their critical path; not without ``split``) and those whose products go to
    DSP blocks instantiate the target's primitive with its registers (dsp_cells), built a third
    time: latency changes, not the interval.  ``fifo_depths`` overrides those depths (refused
    when a depth could deadlock); the MVUs of the layers ``spram`` names keep their weights in
    the target's SPRAMs (in_spram)."""
    if spram:
        return in_spram(build(graph, folding, plans, source, fifo_depths, target, split), spram, target, source)
    # the first pass only finds the interval: the join FIFO depths asked for are held to the
    # design as built with it (a first-pass design, without serial requantizers, may need more)
    first = _build(graph, folding, plans, source, {}, None, True)
    ii, exact = first.cycles_per_frame, first.latency_exact
    built = _build(graph, folding, plans, source, dict(fifo_depths or {}), ii, exact)
    if target is None:
        return built
    lut, cells = lut_products(built, target) if split else frozenset(), dsp_cells(built, target)
    return _build(graph, folding, plans, source, dict(fifo_depths or {}), ii, exact, lut, cells) \
        if lut or cells else built


def lut_products(dataflow, target):
    """The MVUs of ``dataflow`` whose products are built in LUTs on ``target`` and are worth
    splitting (inputs of 4 bits or more)."""
    in_dsp = dsp_kernels(dataflow, target, planning=True)
    return frozenset(k.name for k in dataflow.all_kernels
                     if isinstance(k, MVUKernel) and k.name not in in_dsp and k.in_code.bits >= 4)


def dsp_cells(dataflow, target):
    """{kernel name: the primitive its products are instantiated as} for the MVUs and
    depthwise units of ``dataflow`` whose products go to DSP blocks on ``target`` (the target's
    "dsp_cell", with its operand and product registers: hdl.dsp), those whose operands fit its
    ports (resources.dsp_cell_for)."""
    in_dsp = dsp_kernels(dataflow, target, planning=True)
    return {k.name: cell for k in dataflow.all_kernels
            if k.name in in_dsp and (cell := dsp_cell_for(k, target)) is not None}


def _build(graph, folding, plans, source, fifo_depths, ii, latency_exact, split=frozenset(), dsp=None):
    nodes = list(graph.nodes)
    quantize = nodes[0]
    chain = _Chain(graph, folding, plans, fifo_depths, {}, None, quantize.code, quantize, ii,
                   latency_exact, split=split, dsp_cells=dsp)
    done = set()
    for node in nodes[1:]:
        if node in done:
            continue
        chain.node(node)
        while len(graph.consumers(node.output)) > 1:      # a block's output may fork again
            add, paths = branch_paths(graph, node)
            chain.fork(node, paths, add)
            done.update(n for p in paths for n in p)
            done.add(add)
            node = add
    if chain.in_format is None:
        raise UnsupportedError(f"{source}: {NO_PRODUCT}")
    if fifo_depths:
        raise UnsupportedError(f"{source}: \"fifo_depths\" names {sorted(fifo_depths)}, which are "
                               "not join FIFOs of this design; see fold.json for their names.")
    return Dataflow(tuple(chain.kernels), chain.in_format, _output_format(graph, chain), source,
                    _folding_json(folding, chain.joins))


def _output_format(graph, chain):
    """How the output frames leave: the last chain's lanes and codes, the model's output
    dequantization (none: scale 1, zero point 0)."""
    last = graph.nodes[-1]
    out_scale = last.scale if isinstance(last, qg.Dequantize) else 1.0
    out_zero = last.zero_point if isinstance(last, qg.Dequantize) else 0
    out_shape = graph.shapes[graph.outputs[0]]
    code = chain.code
    return IOFormat(tuple(out_shape), chain.lanes, code.bits, code.signed, float(out_scale),
                    int(out_zero))


def _folding_json(folding, joins):
    """fold.json: each layer's pe and simd, and the join FIFOs' depths."""
    fold = {k: {"pe": v[0], "simd": v[1]} for k, v in folding.items()}
    if joins:
        fold["fifo_depths"] = dict(joins)
    return fold
