"""Bounds checked before work: sizes qloom refuses before it allocates, proves or emits
anything, so that no model hangs it or exhausts memory.

Each bound is a :class:`Limit` with a default and the environment variable that raises it
(``QLOOM_MAX_…=N``).  ``check_graph`` runs on the QGraph before any proof (tensor sizes,
window generators' beats, the memory the design must hold at least, channels, the
requantization planner's work), ``check_dataflow`` on the Dataflow graph before its timing is
followed or its circuit emitted (beats per frame, memory bits, estimated LUTs).  ``inspect``
reports a model beyond them instead: the layers it would not prove are marked, and
``violations`` are its notes.

The design bounds are a few times what the largest device qloom builds for holds (the
ECP5-85F: 83,640 LUTs, 208 blocks of 18 kbit); the shipped and benchmark models stay well
inside every one (the closest, the AD MLP's proofs, at 110 M of 268 M steps).
"""
import math
import os
from dataclasses import dataclass

import numpy as np

from . import qgraph as qg, targets
from .errors import QloomError, UnsupportedError
from .folding import is_depthwise, reads_in_order
from .numeric import signed_bits

# the largest device qloom builds for, from the target registry
LARGEST = targets.largest()
LARGEST_DEVICE = targets.TARGETS[LARGEST]["device"]
LARGEST_LUTS = targets.TARGETS[LARGEST]["available"]["lut"]
LARGEST_BRAM_BITS = (targets.TARGETS[LARGEST]["available"]["bram"]
                     * targets.TARGETS[LARGEST]["bram_bits"])

# planner work per channel (requant.plan): interval matrices of (levels + 1)² entries, and a
# fixed cost of the per-channel searches, about 2,048 such steps (0.3–1 µs each, measured)
CHANNEL_STEPS = 2048


class LimitError(UnsupportedError):
    """A size beyond one of qloom's bounds (this module)."""


@dataclass(frozen=True)
class Limit:
    what: str
    env: str
    default: int

    @property
    def value(self):
        """The bound: ``$env`` when set (a positive integer, ``_`` allowed), else the default."""
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise QloomError(f"environment variable {self.env}={text!r}: must be a positive whole "
                             f"number (the most {self.what}; default {self.default:,}). Set it to "
                             "a number or unset it.")
        return value

    def raise_it(self):
        """How to raise the bound, for the end of a message."""
        return f"set {self.env}=N to raise the limit"


TENSOR_ELEMENTS = Limit("elements per frame of a tensor", "QLOOM_MAX_TENSOR_ELEMENTS", 1 << 22)
CHANNELS = Limit("output channels of a layer", "QLOOM_MAX_CHANNELS", 1 << 16)
PLANNER_STEPS = Limit("steps of requantization proof", "QLOOM_MAX_PLANNER_STEPS", 1 << 28)
MEMORY_BITS = Limit("bits of memory", "QLOOM_MAX_MEMORY_BITS", 1 << 23)
LUTS = Limit("estimated LUTs", "QLOOM_MAX_LUTS", 350_000)
BEATS = Limit("stream beats per frame of a kernel", "QLOOM_MAX_BEATS", 1 << 23)

ALL = (TENSOR_ELEMENTS, CHANNELS, PLANNER_STEPS, MEMORY_BITS, LUTS, BEATS)


def device_bound(limit, have, unit, of):
    return (f"more than any device qloom builds for: the limit is {limit.value:,} {unit}, "
            f"{limit.value / have:.2g}× the {have:,} {of} of the {LARGEST_DEVICE}, the largest")


def _memory_bound():
    return device_bound(MEMORY_BITS, LARGEST_BRAM_BITS, "bits", "bits of block RAM")


def _dims(shape):
    return "×".join(str(int(d)) for d in shape)


# ---- the QGraph: before any proof -------------------------------------------------------------

def _at(source):
    return f"{source}: " if source else ""


def tensor_violations(graph, source=""):
    """The first tensor (the input included) of more than TENSOR_ELEMENTS elements per frame."""
    limit = TENSOR_ELEMENTS.value
    for node in graph.nodes:
        shape = node.shape if isinstance(node, qg.Quantize) else graph.shapes.get(node.output, ())
        n = math.prod(int(d) for d in shape)
        if n > limit:
            dims = f"{_dims(shape)} = " if len(shape) > 1 else ""
            yield LimitError(f"{_at(source)}{node.label} produces a tensor of {dims}{n:,} elements "
                             f"per frame; qloom holds at most {limit:,} (its timing model and "
                             "references hold a frame whole). Use a smaller input or reduce it "
                             f"earlier (stride, pooling), or {TENSOR_ELEMENTS.raise_it()}.")
            return


def channel_violation(channels, label):
    """The LimitError for a layer (``label``, with the file when known) of more channels than
    CHANNELS, or None."""
    if channels <= CHANNELS.value:
        return None
    return LimitError(f"{label} has {channels:,} output channels; qloom proves the requantization "
                      f"of at most {CHANNELS.value:,} channels per layer (each channel on its own, "
                      f"in about a millisecond). Use fewer channels, or {CHANNELS.raise_it()}.")


def planner_steps(target, acc_lo, acc_hi):
    """The planner's work for ``target`` over [acc_lo_c, acc_hi_c] (requant.plan): per channel
    (levels + 1)² + CHANNEL_STEPS, the levels counted exactly (Target.levels)."""
    levels = np.asarray(target.levels(acc_lo, acc_hi), np.int64)
    return int(((levels + 1) ** 2).sum()) + CHANNEL_STEPS * target.channels


WEIGHTS_AT_ONCE = 1 << 20      # weights per slice of a layer whose accumulator ranges are computed


@dataclass(frozen=True)
class _Rows:
    """Some output channels of a Dense or Conv: what their acc_range reads."""
    weight: np.ndarray
    bias: np.ndarray
    zero_point: int

    @property
    def out_channels(self):
        return self.weight.shape[0]


def acc_range(layer, lo, hi):
    """``layer.acc_range(lo, hi)``; a Dense or Conv of more than WEIGHTS_AT_ONCE weights is
    taken a slice of output channels at a time, so that the temporaries stay a few MiB."""
    weight = getattr(layer, "weight", None)
    if weight is None or weight.size <= WEIGHTS_AT_ONCE:
        return layer.acc_range(lo, hi)
    rows = max(1, WEIGHTS_AT_ONCE // max(1, weight.size // weight.shape[0]))
    zero_point = getattr(layer, "zero_point", 0)
    parts = [type(layer).acc_range(_Rows(weight[k:k + rows], layer.bias[k:k + rows], zero_point),
                                   lo, hi)
             for k in range(0, weight.shape[0], rows)]
    return tuple(np.concatenate([p[i] for p in parts]) for i in (0, 1))


def planner_jobs(graph):
    """(Requant node, the layer it requantizes, acc_lo, acc_hi) for every Requant, in graph
    order: what planning.plans proves."""
    for node in graph.nodes:
        if isinstance(node, qg.Requant):
            layer = graph.producer(node.inputs[0])
            lo, hi = graph.code_range(layer.inputs[0])
            yield (node, layer, *acc_range(layer, lo, hi))


def planner_violation(target, acc_lo, acc_hi, label, steps, total=None):
    """The LimitError of a proof beyond PLANNER_STEPS: ``steps`` for the layer ``label`` (the
    one with the most), ``total`` for the whole model when it has more than one."""
    levels = int(np.max(target.levels(acc_lo, acc_hi), initial=0))
    model = f"; {total:,} for the whole model" if total is not None and total != steps else ""
    return LimitError(f"{label}: proving its requantization takes about {steps:,} steps "
                      f"({target.channels:,} channels of up to {levels:,} output levels "
                      f"each{model}); qloom proves at most {PLANNER_STEPS.value:,} steps per model "
                      "(a few minutes). Use fewer channels or fewer output levels, or "
                      f"{PLANNER_STEPS.raise_it()}.")


def check_plan(target, acc_lo, acc_hi, label):
    """Refuse one layer's proof beyond CHANNELS or PLANNER_STEPS before it starts (requant.plan)."""
    error = channel_violation(target.channels, label)
    if error:
        raise error
    steps = planner_steps(target, acc_lo, acc_hi)
    if steps > PLANNER_STEPS.value:
        raise planner_violation(target, acc_lo, acc_hi, label, steps)


def planner_violations(graph, source="", jobs=None):
    """Beyond CHANNELS (the first such layer) or PLANNER_STEPS (the model's proofs in all);
    ``jobs``: planner_jobs(graph) when already computed."""
    found = []
    for node, layer, lo, hi in (planner_jobs(graph) if jobs is None else jobs):
        error = channel_violation(node.channels, _at(source) + layer.label)
        if error:
            yield error
            return
        found.append((planner_steps(node.target, lo, hi), node, layer, lo, hi))
    total = sum(j[0] for j in found)
    if total > PLANNER_STEPS.value:
        steps, node, layer, lo, hi = max(found, key=lambda j: j[0])
        yield planner_violation(node.target, lo, hi, _at(source) + layer.label, steps, total)


def weight_bits(node):
    """(entries, bits) of the weights the hardware stores for a Dense or Conv (an MVU's matrix,
    a grouped conv's block-diagonal; a depthwise unit's taps), in memory or in logic."""
    w = node.weight
    bits = signed_bits(min(0, int(w.min(initial=0))), max(0, int(w.max(initial=0))))
    if isinstance(node, qg.Conv) and not is_depthwise(node):
        return node.out_channels * math.prod(node.kernel) * node.in_shape[0], bits
    return w.size, bits


def _code_bits(graph, tensor):
    code = getattr(graph.source(tensor), "code", None)
    return code.bits if code is not None else 8


def _window(node):
    """(kernel, strides, dilations) of the window generator in front of ``node``, or None where
    the builder puts none (a conv that folding.reads_in_order, not depthwise)."""
    if isinstance(node, qg.Conv):
        if reads_in_order(node) and not is_depthwise(node):
            return None
        return (node.kernel, node.strides, node.dilations)
    if isinstance(node, qg.MaxPool):
        return node.kernel, node.strides, node.dilations
    if isinstance(node, qg.FloatSumPool):
        return node.kernel, node.strides, (1, 1)
    return None


def line_buffer_bits(node, graph):
    """At least the bits of the line buffer of the window generator in front of ``node``
    (dataflow.WindowKernel.depth: the rows a window spans, a stride's rows and one more, of
    W·C codes); 0 where there is none."""
    window = _window(node)
    if window is None:
        return 0
    kernel, strides, dilations = window
    c, _, w = (int(d) for d in graph.shapes[node.inputs[0]])
    span = (kernel[0] - 1) * dilations[0] + 1
    return (span + strides[0] + 1) * w * c * _code_bits(graph, node.inputs[0])


def window_violations(graph, source=""):
    """The first window generator that sends more than BEATS beats per frame whatever its lanes
    (WindowKernel.beats_out: output pixels × taps × channel groups, at least one group), before
    the Dataflow graph follows its rows (dataflow.window_timing)."""
    for node in graph.nodes:
        window = _window(node)
        if window is None:
            continue
        pixels, taps = math.prod(graph.shapes[node.output][1:]), math.prod(window[0])
        if pixels * taps > BEATS.value:
            yield LimitError(f"{_at(source)}{node.label} needs a window generator of at least "
                             f"{pixels * taps:,} beats per frame ({pixels:,} output pixels × "
                             f"{taps} taps); qloom's timing model follows at most {BEATS.value:,} "
                             "beats per frame of a kernel, one by one. Use a smaller input, or "
                             f"{BEATS.raise_it()}.")
            return


def memory_violations(graph, source=""):
    """The design must hold every weight and line buffer: refused when these alone are beyond
    MEMORY_BITS (check_dataflow counts the Dataflow graph's memories again, exactly)."""
    parts = []
    for node in graph.nodes:
        if isinstance(node, (qg.Dense, qg.Conv)):
            entries, bits = weight_bits(node)
            parts.append((entries * bits, f"{node.label}: {entries:,} weights of {bits} bits"))
        lines = line_buffer_bits(node, graph)
        if lines:
            parts.append((lines, f"{node.label}: a line buffer of at least {lines:,} bits"))
    total = sum(b for b, _ in parts)
    if total > MEMORY_BITS.value:
        _, what = max(parts, key=lambda p: p[0])
        yield LimitError(f"{_at(source)}the design must hold at least {total:,} bits of weights "
                         f"and line buffers (the most in {what}), "
                         f"{_memory_bound()}. Use a smaller model, or {MEMORY_BITS.raise_it()}.")


def violations(graph, source="", design=True):
    """Every kind of bound the model is beyond (LimitError), cheapest checks first; ``design``
    adds its window generators' beats and the memory its circuit must hold."""
    yield from tensor_violations(graph, source)
    if design:
        yield from window_violations(graph, source)
        yield from memory_violations(graph, source)
    yield from planner_violations(graph, source)


def check_graph(graph, source):
    """Refuse, before any proof, a model beyond the bounds of a design (the first found)."""
    for error in violations(graph, source):
        raise error


# ---- the Dataflow graph: before its timing is followed or its circuit emitted -----------------

def kernel_label(kernel, graph=None, before=None):
    """A kernel and the layer it computes, for messages (Kernel.own_label); a window generator
    or a join FIFO the QGraph node its name ends with (``graph`` given), another the kernel it
    feeds (``before``)."""
    kind = kernel.noun
    own = kernel.own_label()
    if own is not None:
        return own
    for node in (graph.nodes if graph is not None else ()):
        if kernel.name.endswith("_" + node.name) or kernel.name.startswith(f"join_{node.name}_"):
            return f"{kind} '{kernel.name}' of {node.label}"
    if before is not None:
        return f"{kind} '{kernel.name}' in front of {kernel_label(before, graph)}"
    return f"{kind} '{kernel.name}'"


def beats_violation(kernel, source="", graph=None, before=None):
    """The LimitError for a kernel of more than BEATS output beats per frame (dataflow.beat_times
    makes arrays of them), or None."""
    beats = int(kernel.beats_out)
    if beats <= BEATS.value:
        return None
    return LimitError(f"{_at(source)}{kernel_label(kernel, graph, before)} sends {beats:,} beats "
                      f"per frame; qloom's timing model follows at most {BEATS.value:,} beats per "
                      "frame of a kernel, one by one. Use a smaller input or more lanes (larger "
                      f"pe or simd), or {BEATS.raise_it()}.")


def check_dataflow(dataflow, source, graph=None):
    """Refuse a Dataflow graph beyond BEATS, MEMORY_BITS or LUTS (its estimate on the largest
    device), naming the kernel that holds the most; before its timing is followed (beat_times)
    or its circuit emitted."""
    from .resources import dsp_kernels, estimate_kernel
    kernels = dataflow.all_kernels
    after = dict(zip(kernels, kernels[1:]))
    for k in kernels:
        error = beats_violation(k, source, graph, after.get(k))
        if error:
            raise error
    bits = [(k.stored_bits(), k) for k in kernels]
    total = sum(b for b, _ in bits)
    if total > MEMORY_BITS.value:
        most, k = max(bits, key=lambda p: p[0])
        raise LimitError(f"{_at(source)}the design's memories and weights hold {total:,} bits (the "
                         f"most, {most:,}, in {kernel_label(k, graph, after.get(k))}), "
                         f"{_memory_bound()}. Use a smaller model or smaller FIFO depths, or "
                         f"{MEMORY_BITS.raise_it()}.")
    in_dsp = dsp_kernels(dataflow, LARGEST)
    luts = [(estimate_kernel(k, dataflow, LARGEST, in_dsp)["lut"], k) for k in kernels]
    total = sum(n for n, _ in luts)
    if total > LUTS.value:
        most, k = max(luts, key=lambda p: p[0])
        fold = f", pe {k.folding[0]} × simd {k.folding[1]}" if k.folding else ""
        raise LimitError(f"{_at(source)}the design is estimated at {total:,} LUTs on the "
                         f"{LARGEST_DEVICE} (the most, {most:,}, in "
                         f"{kernel_label(k, graph, after.get(k))}{fold}), "
                         f"{device_bound(LUTS, LARGEST_LUTS, 'LUTs', 'LUTs')}. Fold it more (a "
                         "smaller --max-multipliers, or smaller pe and simd in the folding file), "
                         f"or {LUTS.raise_it()}.")
