"""Dataflow graph: how the hardware computes the QGraph (DESIGN.md §3).

Kernels carry their folding, widths, cycles per frame, latency and estimated
resources; width converters and FIFOs are explicit kernels.  The lowering only
connects what this graph says."""
import math
from dataclasses import dataclass, field, replace

import numpy as np

from . import qgraph as qg
from .errors import UnsupportedError
from .resources import Memory
from .requant import signed_bits

MVU_LEVELS_PER_STAGE = 2      # adder-tree levels per pipeline stage (hdl.mvu.MVU.LEVELS_PER_STAGE)


def mvu_tree_stages(simd):
    return max(1, -(-(simd - 1).bit_length() // MVU_LEVELS_PER_STAGE))


def mvu_latency(simd):
    """Cycles from an MVU step to its output: memory read, operand registers, products, the
    adder tree (two levels per stage), the accumulator, the output's register slice
    (mirrors hdl.mvu.MVU.latency)."""
    return 5 + mvu_tree_stages(simd)

PRODUCT_CHUNK = 2    # bits of the constant operand per partial product (hdl.requant.CHUNK)


def adder_levels(operands):
    levels = 0
    while operands > 1:
        operands, levels = -(-operands // 2), levels + 1
    return levels


def requant_latency(kind, mul_bits=0, tables=0):
    """Cycles through a requantization unit (mirrors hdl.requant.Requant.latency): the input
    register, the parameter register, the stages of the circuit, one per table ROM, and two
    through the output queue."""
    stages = {"shift": 1, "thresholds": 1,
              "mul-add-shift": 2 + adder_levels(-(-mul_bits // PRODUCT_CHUNK) + 1),
              "float-emulation": 12 + adder_levels(-(-25 // PRODUCT_CHUNK))}[kind]
    return 4 + stages + tables


def dsp_slices(a_bits, b_bits, slice_bits=16):
    """Hard multipliers (16×16 on iCE40; 18×18 counted the same) one a×b product needs."""
    return -(-a_bits // slice_bits) * -(-b_bits // slice_bits)


def window_schedule(shape, lanes, kernel, strides, pads, dilations, order="taps"):
    """The beats a window generator sends for a channels-last (H, W, C) frame stored as beats
    of ``lanes`` channels: per output pixel, the taps (ky, kx) × channel groups ("taps": the
    conv vector order, tap-major) or channel groups × taps ("channels": runs of taps for a
    pool).  Each entry is a stored beat index, or None for padding.  Output sizes as
    onnxruntime computes them (qgraph.windows)."""
    c, h, w = shape
    groups = c // lanes
    (pt, _), (pl, _) = qg._pads(pads, kernel)
    oh, ow = qg.window_out_size((h, w), kernel, strides, pads, dilations)
    kh, kw = kernel
    out = []
    for oy in range(oh):
        for ox in range(ow):
            def beat(ky, kx, g):
                iy, ix = oy * strides[0] + ky * dilations[0] - pt, ox * strides[1] + kx * dilations[1] - pl
                return (iy * w + ix) * groups + g if 0 <= iy < h and 0 <= ix < w else None
            taps = [(ky, kx) for ky in range(kh) for kx in range(kw)]
            if order == "taps":
                out += [beat(ky, kx, g) for ky, kx in taps for g in range(groups)]
            else:
                out += [beat(ky, kx, g) for g in range(groups) for ky, kx in taps]
    return out


def fifo_depth(pe, simd, in_features, out_features):
    """Beats the FIFO in front of an MVU must hold so that its producer never waits.

    An MVU reads its input vector (in_fold beats) during its first output tile and then
    computes the other out_fold - 1 tiles without reading; meanwhile the producer keeps
    producing at most one frame, so one frame of beats (+2 for the stage registers) is
    enough, and anything less can stall the producer."""
    in_fold = in_features // simd
    return in_fold + 2 if out_features // pe > 1 else 3     # a SyncFIFOBuffered of 2 runs at half rate


@dataclass(frozen=True)
class IOFormat:
    """How frames cross the host boundary: ``lanes`` codes per beat, lane 0 in the low bits,
    channels-last order, ``beats`` beats per frame."""
    shape: tuple
    lanes: int
    bits: int
    signed: bool
    scale: float
    zero_point: int

    @property
    def beats(self):
        return math.prod(self.shape) // self.lanes

    def to_json(self):
        return {"shape": list(self.shape), "lanes": self.lanes, "bits": self.bits, "signed": self.signed,
                "beats_per_frame": self.beats, "scale": self.scale, "zero_point": self.zero_point,
                "order": "channels-last; lane 0 in the low bits of a beat"}


@dataclass(frozen=True, eq=False)
class MVUKernel:
    name: str
    dense: qg.Dense
    pe: int
    simd: int
    in_code: qg.CodeType
    acc_lo: int
    acc_hi: int
    vectors: int = 1          # matrix-vector products per frame (output pixels of a conv)

    @property
    def in_fold(self):
        return self.dense.in_features // self.simd

    @property
    def out_fold(self):
        return self.dense.out_features // self.pe

    @property
    def cycles_per_frame(self):
        return self.vectors * self.in_fold * self.out_fold

    @property
    def macs(self):
        return self.vectors * self.dense.macs

    @property
    def latency(self):
        return mvu_latency(self.simd)

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)

    @property
    def weight_bits(self):
        return signed_bits(min(0, int(self.dense.weight.min())), max(0, int(self.dense.weight.max())))

    def memories(self):
        """Weights (one word per step), the kept input vector and the biases of the tiles."""
        mems = []
        if self.in_fold * self.out_fold > 1:
            mems.append(Memory("weights", self.pe * self.simd * self.weight_bits, self.in_fold * self.out_fold))
        if self.out_fold > 1:
            mems += [Memory("buffer", self.simd * self.in_code.bits, self.in_fold, writable=True),
                     Memory("bias", self.pe * self.acc_bits, self.out_fold)]
        return mems

    @property
    def multiplier_luts(self):
        """LUTs of the products when built in logic (none when they go to DSP blocks)."""
        return self.pe * self.simd * (self.weight_bits * self.in_code.bits + self.weight_bits + self.in_code.bits)

    def resources(self):
        """Structural count (mirrors hdl.mvu.MVU): counters; operand, product, adder-tree and
        accumulator registers; the output register slice; adders one LUT per bit."""
        pe, simd, acc, xb, wb = self.pe, self.simd, self.acc_bits, self.in_code.bits, self.weight_bits
        prod = wb + xb
        counters = 2 * (math.ceil(math.log2(max(self.in_fold * self.out_fold, 2))) + 2)
        tree_regs = sum(-(-simd // (4 ** (s + 1))) if s + 1 < mvu_tree_stages(simd) else 1
                        for s in range(mvu_tree_stages(simd)))
        ff = (counters + 2 * simd * xb + pe * simd * (wb + prod + 2 * xb) + pe * tree_regs * acc + pe * acc
              + 2 * pe * acc + 16)
        lut = (self.multiplier_luts + 2 * counters + simd * xb * (self.out_fold > 1)
               + pe * (simd - 1) * acc + 2 * pe * acc + pe * acc + 20)
        return {"lut": lut, "ff": ff, "dsp": pe * simd * dsp_slices(wb, xb),
                "bram_bits": sum(m.bits for m in self.memories() if m.style == "block")}

    def to_json(self):
        return {"kind": "MVU", "name": self.name, "layer": self.dense.name, "onnx_node": self.dense.onnx_node,
                "in_features": self.dense.in_features, "out_features": self.dense.out_features,
                "pe": self.pe, "simd": self.simd, "input_bits": self.in_code.bits, "input_signed": self.in_code.signed,
                "weight_bits": self.weight_bits, "acc_bits": self.acc_bits, "cycles_per_frame": self.cycles_per_frame,
                "vectors": self.vectors, "latency": self.latency, "macs": self.macs, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class RequantKernel:
    name: str
    node: qg.Requant
    plan: object
    pe: int
    acc_bits: int
    vectors: int = 1

    @property
    def channels(self):
        return self.node.channels

    @property
    def cycles_per_frame(self):
        return self.vectors * self.channels // self.pe

    @property
    def mul_bits(self):
        """Width of the multiplier constant M of a mul-add-shift circuit (0 for other kinds)."""
        return signed_bits(0, int(max(self.plan.impl.mul))) if self.plan.kind == "mul-add-shift" else 0

    @property
    def latency(self):
        return requant_latency(self.plan.kind, self.mul_bits, len(getattr(self.plan.impl, "tables", ())))

    PARAMS = {"shift": ("exponent",), "mul-add-shift": ("mul", "add", "fix_acc", "fix_code"),
              "thresholds": ("base", "thresholds"), "float-emulation": ("mantissa", "exponent")}

    @property
    def param_bits(self):
        """Bits of one lane's parameter word (mirrors hdl.requant.Requant._field_shape)."""
        bits = 0
        for name in self.PARAMS[self.plan.kind]:
            v = getattr(self.plan.impl, name, None)
            if v is None:
                continue
            v = np.asarray(v)
            if name in ("thresholds", "fix_acc", "fix_code"):
                bits += (self.acc_bits if name != "fix_code" else self.node.code.bits) * max(v.shape[1], 1)
            else:
                bits += 25 if name == "mantissa" else signed_bits(min(int(v.min()), 0), max(int(v.max()), 0))
        return bits

    def memories(self):
        """Per-channel parameters, code tables, and the output queue (latency + 1 beats)."""
        fold = self.channels // self.pe
        mems = [Memory("params", self.pe * self.param_bits, fold)] if fold > 1 else []
        for i, t in enumerate(getattr(self.plan.impl, "tables", ())):
            mems += [Memory(f"table{i}_{p}", self.node.code.bits, fold * t.table.shape[1]) for p in range(self.pe)]
        return mems + [Memory("queue", self.pe * self.node.code.bits, self.latency, fifo=True)]

    def _lane(self):
        """(LUT, FF) of one lane's circuit (mirrors hdl.requant.Requant's stages)."""
        acc, out, kind = self.acc_bits, self.node.code.bits, self.plan.kind
        if kind == "shift":
            return 4 * acc, 2 * acc
        if kind == "thresholds":
            return self.plan.levels * (acc // 2 + 2) + 2 * out, 2 * acc
        if kind == "mul-add-shift":
            fixes = self.plan.impl.fixes
            parts = -(-self.mul_bits // PRODUCT_CHUNK)
            width = acc + self.mul_bits + 1
            lut = parts * (acc + PRODUCT_CHUNK) + parts * width * 3 // 2 + fixes * (acc // 2 + out) + 3 * out
            ff, operands = 2 * acc + parts * (acc + PRODUCT_CHUNK) + fixes * (out + 1), parts + 1
            while operands > 1:          # partial sums are narrower than the total early on
                operands = -(-operands // 2)
                ff += operands * width * 3 // 4 + fixes * (out + 1)
            return lut, ff
        # float emulation: 24×25-bit product as partial products, an adder tree, two roundings
        parts = -(-25 // PRODUCT_CHUNK)
        lut = acc + parts * (24 + PRODUCT_CHUNK) + parts * 49 + 49 * 4 + 25 * 18 + 4 * out
        ff = 2 * acc + parts * (24 + PRODUCT_CHUNK) + 49 * (adder_levels(parts) + 5) + 25 * 12
        return lut, ff

    def resources(self):
        lut, ff = self._lane()
        return {"lut": self.pe * lut + 30, "ff": self.pe * ff + self.pe * self.param_bits + 20,
                "dsp": 0, "bram_bits": sum(m.bits for m in self.memories() if m.style == "block")}

    def to_json(self):
        return {"kind": "Requant", "name": self.name, "layer": self.node.name, "onnx_node": self.node.onnx_node,
                "implementation": self.plan.kind, "channels": self.channels, "pe": self.pe,
                "acc_bits": self.acc_bits, "out_bits": self.node.code.bits, "out_signed": self.node.code.signed,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class WidthConverterKernel:
    name: str
    code: qg.CodeType
    lanes_in: int
    lanes_out: int
    length: int

    @property
    def cycles_per_frame(self):
        return self.length // min(self.lanes_in, self.lanes_out)

    @property
    def latency(self):
        return 1

    def memories(self):
        return []

    def resources(self):
        bits = max(self.lanes_in, self.lanes_out) * self.code.bits
        return {"lut": bits, "ff": 2 * bits, "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": "WidthConverter", "name": self.name, "lanes_in": self.lanes_in, "lanes_out": self.lanes_out,
                "bits": self.code.bits, "cycles_per_frame": self.cycles_per_frame, "latency": self.latency,
                "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class WindowKernel:
    """Stores a channels-last frame and sends its windows (hdl.window.WindowGen)."""
    name: str
    code: qg.CodeType
    shape: tuple              # (C, H, W)
    lanes: int
    schedule: tuple
    pad: int
    what: str                 # "conv" or "pool"

    @property
    def in_beats(self):
        return math.prod(self.shape) // self.lanes

    @property
    def cycles_per_frame(self):
        return self.in_beats + len(self.schedule) + 1

    @property
    def latency(self):
        return 3

    def memories(self):
        addr_bits = max(self.in_beats - 1, 1).bit_length() + 1
        return [Memory("frame", self.lanes * self.code.bits, self.in_beats, writable=True),
                Memory("schedule", addr_bits, len(self.schedule))]

    def resources(self):
        bits = self.lanes * self.code.bits
        return {"lut": bits + 40, "ff": 2 * bits + 40, "dsp": 0,
                "bram_bits": sum(m.bits for m in self.memories() if m.style == "block")}

    def to_json(self):
        return {"kind": "Window", "name": self.name, "for": self.what, "shape": list(self.shape),
                "lanes": self.lanes, "beats_out": len(self.schedule), "cycles_per_frame": self.cycles_per_frame,
                "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class PoolKernel:
    """Maximum over runs of ``taps`` beats (hdl.window.MaxPoolUnit)."""
    name: str
    code: qg.CodeType
    lanes: int
    taps: int
    beats_in: int

    @property
    def cycles_per_frame(self):
        return self.beats_in

    @property
    def latency(self):
        return 1

    def memories(self):
        return []

    def resources(self):
        bits = self.lanes * self.code.bits
        return {"lut": 2 * bits + 10, "ff": 2 * bits + 10, "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": "MaxPool", "name": self.name, "lanes": self.lanes, "taps": self.taps,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class SumPoolKernel:
    """Global sum per channel (hdl.window.SumPoolUnit); a Requant follows, as after an MVU."""
    name: str
    node: qg.SumPool
    code: qg.CodeType
    pe: int                   # lanes in and out
    acc_lo: int
    acc_hi: int
    vectors: int = 1

    @property
    def groups(self):
        return self.node.in_shape[0] // self.pe

    @property
    def cycles_per_frame(self):
        return self.node.count * self.groups

    @property
    def latency(self):
        return 1

    @property
    def acc_bits(self):
        return signed_bits(self.acc_lo, self.acc_hi)

    def memories(self):
        return []

    def resources(self):
        """The ring of partial sums, the output register, one adder per lane, two counters."""
        acc = self.pe * self.acc_bits
        counters = 2 * max(self.node.count, self.groups, 2).bit_length()
        return {"lut": acc + self.pe * self.code.bits + 2 * counters + 4, "ff": (self.groups + 1) * acc + counters + 1,
                "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": "GlobalSum", "name": self.name, "layer": self.node.name, "onnx_node": self.node.onnx_node,
                "lanes": self.pe, "pixels": self.node.count, "acc_bits": self.acc_bits,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True, eq=False)
class FifoKernel:
    name: str
    code: qg.CodeType
    lanes: int
    depth: int
    length: int

    @property
    def cycles_per_frame(self):
        return self.length // self.lanes

    @property
    def latency(self):
        return 2

    def memories(self):
        return [Memory("storage", self.lanes * self.code.bits, self.depth - 1, fifo=True)]

    def resources(self):
        """Control and the output register of an amaranth.lib.fifo.SyncFIFOBuffered (the
        storage is a memory, see memories())."""
        bits, count = self.lanes * self.code.bits, math.ceil(math.log2(self.depth + 1))
        return {"lut": bits + 8 * count, "ff": bits + 4 * count, "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": "FIFO", "name": self.name, "lanes": self.lanes, "bits": self.code.bits, "depth": self.depth,
                "cycles_per_frame": self.cycles_per_frame, "latency": self.latency, "estimate": self.resources()}


@dataclass(frozen=True)
class Dataflow:
    kernels: tuple
    input: IOFormat
    output: IOFormat
    source: str = ""
    folding: dict = field(default_factory=dict)

    @property
    def cycles_per_frame(self):
        return max(k.cycles_per_frame for k in self.kernels)

    @property
    def bottleneck(self):
        return max(self.kernels, key=lambda k: k.cycles_per_frame)

    @property
    def latency(self):
        """Cycles from the first input beat of a frame to its last output beat, without stalls:
        the pipeline latencies, the first MVU's whole frame, and for every later MVU the
        output tiles it still computes after its last input beat arrives."""
        if not self.latency_exact:    # windows: a bound, every kernel's whole frame in turn
            return sum(k.latency + k.cycles_per_frame for k in self.kernels)
        mvus = [k for k in self.kernels if isinstance(k, MVUKernel)]
        return (sum(k.latency for k in self.kernels) + mvus[0].cycles_per_frame
                + sum(k.in_fold * (k.out_fold - 1) for k in mvus[1:]))

    @property
    def latency_exact(self):
        """The latency model is exact for chains of dense layers; with windows it is a bound."""
        return not any(isinstance(k, WindowKernel) for k in self.kernels)

    @property
    def multipliers(self):
        return sum(k.pe * k.simd for k in self.kernels if isinstance(k, MVUKernel))

    def estimate(self):
        total = {"lut": 0, "ff": 0, "dsp": 0, "bram_bits": 0}
        for k in self.kernels:
            for key, v in k.resources().items():
                total[key] += v
        return total

    def to_json(self):
        return {"source": self.source, "cycles_per_frame": self.cycles_per_frame,
                "bottleneck": self.bottleneck.name, "latency_cycles": self.latency,
                "latency_exact": self.latency_exact,
                "multipliers": self.multipliers, "estimate": self.estimate(),
                "input": self.input.to_json(), "output": self.output.to_json(),
                "folding": self.folding, "kernels": [k.to_json() for k in self.kernels]}


HARDWARE_NODES = (qg.Quantize, qg.Dense, qg.Conv, qg.MaxPool, qg.SumPool, qg.Requant, qg.Reshape, qg.Dequantize)


def check_hardware(graph, source="model"):
    """Refuse, before any folding, a graph with a node no hardware kernel exists for."""
    for node in graph.nodes:
        if not isinstance(node, HARDWARE_NODES):
            raise UnsupportedError(f"{node.label} in {source}: no hardware kernel for {type(node).__name__} "
                                   "yet; `qloom inspect` and `qloom check` work on this model.")
    if not graph.layers(qg.Dense) and not graph.layers(qg.Conv):
        raise UnsupportedError(f"{source}: the model has no quantized matrix product to build hardware for.")


def chain_of(graph):
    """The QGraph as a chain (MLPs); refuse branching graphs with the node that branches."""
    for node in graph.nodes:
        if len(graph.consumers(node.output)) > 1:
            raise UnsupportedError(f"{node.label}: its output feeds {len(graph.consumers(node.output))} layers; "
                                   "hardware for branching graphs (residual, concat) is not supported yet.")
    return list(graph.nodes)


def conv_matrix(conv):
    """A Conv as the matrix an MVU multiplies each window by: (out, kh·kw·C) in the window's
    order (tap-major, channels last); groups become a block-diagonal matrix."""
    o, cg, kh, kw = conv.weight.shape
    c, g = conv.in_shape[0], conv.groups
    full = np.zeros((o, kh, kw, c), np.int64)
    for k in range(g):
        rows = slice(k * (o // g), (k + 1) * (o // g))
        full[rows, :, :, k * cg:(k + 1) * cg] = np.transpose(conv.weight[rows], (0, 2, 3, 1))
    return qg.Dense(conv.name, conv.onnx_node, conv.inputs, conv.output, weight=full.reshape(o, -1),
                    bias=np.asarray(conv.bias, np.int64))


def channels_last_order(shape):
    """For a flattened (C, H, W) tensor: the ONNX (C-major) index of each channels-last position."""
    c, h, w = shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def build(graph, folding, plans, source=""):
    """Lower the QGraph to a Dataflow graph with the given folding {layer name: (pe, simd)}.
    Streams are channels-last; a conv is a window generator feeding an MVU."""
    nodes = chain_of(graph)
    quantize = nodes[0]
    kernels, lanes, code, count = [], None, quantize.code, {"fifo": 0, "width": 0}
    in_format, order = None, None          # order: a flatten's column permutation for the next Dense

    def add_converter(lanes_in, lanes_out, length, code):
        if lanes_in != lanes_out:
            kernels.append(WidthConverterKernel(f"width{count['width']}", code, lanes_in, lanes_out, length))
            count["width"] += 1

    def add_fifo(lanes, depth, length):
        kernels.append(FifoKernel(f"fifo{count['fifo']}", code, lanes, depth, length))
        count["fifo"] += 1

    def feed(simd, length):
        """Bring the stream to ``simd`` lanes (the input format for the first layer)."""
        nonlocal in_format
        if in_format is None:
            in_format = IOFormat(quantize.shape, simd, code.bits, code.signed, quantize.scale, quantize.zero_point)
        else:
            add_converter(lanes, simd, length, code)

    def add_mvu(node, dense, pe, simd, vectors, lo, hi):
        w = dense.weight.astype(np.int64)
        low = np.minimum(np.minimum(w * lo, w * hi), 0).sum(axis=1) + dense.bias
        high = np.maximum(np.maximum(w * lo, w * hi), 0).sum(axis=1) + dense.bias
        kernels.append(MVUKernel(f"mvu_{node.name}", dense, pe, simd, graph_code(graph, node.inputs[0]),
                                 int(min(low.min(), dense.bias.min())), int(max(high.max(), dense.bias.max())),
                                 vectors))

    for node in nodes[1:]:
        if isinstance(node, qg.Dense):
            pe, simd = folding[node.name]
            dense = node if order is None else replace(node, weight=node.weight[:, order])
            order = None
            feed(simd, node.in_features)
            add_fifo(simd, fifo_depth(pe, simd, node.in_features, node.out_features), node.in_features)
            add_mvu(node, dense, pe, simd, 1, *graph.code_range(node.inputs[0]))
        elif isinstance(node, qg.Conv):
            pe, simd = folding[node.name]
            shape = tuple(node.in_shape)
            beats = math.prod(shape)
            first = in_format is None
            feed(simd, beats)
            if not first:                   # the whole frame buffered, so the producer never waits
                add_fifo(simd, beats // simd + 2, beats)
            schedule = window_schedule(shape, simd, node.kernel, node.strides, node.pads, node.dilations)
            kernels.append(WindowKernel(f"window_{node.name}", code, shape, simd, tuple(schedule),
                                        node.zero_point, "conv"))
            dense = conv_matrix(node)
            add_fifo(simd, fifo_depth(pe, simd, dense.in_features, dense.out_features), len(schedule) * simd)
            lo, hi = graph.code_range(node.inputs[0])
            add_mvu(node, dense, pe, simd, math.prod(node.out_shape[1:]), min(lo, node.zero_point),
                    max(hi, node.zero_point))
        elif isinstance(node, qg.MaxPool):
            shape = graph.shapes[node.inputs[0]]
            beats = math.prod(shape)
            add_fifo(lanes, beats // lanes + 2, beats)
            schedule = window_schedule(shape, lanes, node.kernel, node.strides, node.pads, node.dilations,
                                       order="channels")
            kernels.append(WindowKernel(f"window_{node.name}", code, shape, lanes, tuple(schedule), code.qmin,
                                        "pool"))
            taps = math.prod(node.kernel)
            kernels.append(PoolKernel(f"pool_{node.name}", code, lanes, taps, len(schedule)))
        elif isinstance(node, qg.SumPool):
            lo, hi = node.acc_range(*graph.code_range(node.inputs[0]))
            kernels.append(SumPoolKernel(f"sum_{node.name}", node, code, lanes, int(lo.min()), int(hi.max())))
        elif isinstance(node, qg.Requant):
            mvu = kernels[-1]
            kernels.append(RequantKernel(f"requant_{node.name}", node, plans[node.name], mvu.pe, mvu.acc_bits,
                                         mvu.vectors))
            lanes, code = mvu.pe, node.code
        elif isinstance(node, qg.Reshape):
            before = graph.shapes.get(node.inputs[0], ())
            if len(before) == 3 and len(node.shape) == 1:
                order = channels_last_order(before)
            elif tuple(before) != tuple(node.shape) and len(node.shape) != 1 and node is not nodes[-1]:
                raise UnsupportedError(f"{node.label}: only flattening (C, H, W) activations is supported "
                                       "in hardware.")
        elif isinstance(node, qg.Dequantize):
            continue
        else:
            raise UnsupportedError(f"{node.label}: no hardware kernel for {type(node).__name__} yet.")
    if in_format is None:
        raise UnsupportedError(f"{source}: the model has no quantized matrix product to build hardware for.")
    last = nodes[-1]
    out_scale = last.scale if isinstance(last, qg.Dequantize) else 1.0
    out_zero = last.zero_point if isinstance(last, qg.Dequantize) else 0
    out_shape = graph.shapes[graph.outputs[0]]
    output = IOFormat(tuple(out_shape), lanes, code.bits, code.signed, float(out_scale), int(out_zero))
    return Dataflow(tuple(kernels), in_format, output, source, {k: {"pe": v[0], "simd": v[1]} for k, v in folding.items()})


def graph_code(graph, tensor):
    node = graph.producer(tensor)
    while isinstance(node, (qg.Reshape, qg.MaxPool)):
        node = graph.producer(node.inputs[0])
    return node.code
