"""QGraph: what the network computes, in integers (DESIGN.md §3).

Nodes are frozen dataclasses that check their invariants on construction and
carry an integer-exact ``reference()``.  Tensors are named; shapes exclude the
batch dimension, and every ``reference`` takes a leading batch axis.
"""
from dataclasses import dataclass, field

import numpy as np

from . import numeric
from .errors import ShapeError
from .requant_targets import Target


class NodeError(ShapeError, ValueError):
    """A node whose parts do not fit together (the frontend names the ONNX node it came from)."""


@dataclass(frozen=True)
class CodeType:
    """Integer codes of ``bits`` bits, two's complement when ``signed``."""
    bits: int
    signed: bool

    def __post_init__(self):
        if not (isinstance(self.bits, int) and 1 <= self.bits <= 32):
            raise NodeError(f"code width must be an integer number of bits in 1..32, not {self.bits!r}")

    @classmethod
    def from_dtype(cls, dtype):
        return {"uint8": cls(8, False), "int8": cls(8, True)}[str(dtype)]

    @property
    def qmin(self):
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self):
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def name(self):
        return f"{'int' if self.signed else 'uint'}{self.bits}"


@dataclass(frozen=True, eq=False)
class Node:
    name: str
    onnx_node: str
    inputs: tuple
    output: str

    @property
    def label(self):
        return f"{type(self).__name__} '{self.name}' (ONNX node '{self.onnx_node}')"


@dataclass(frozen=True, eq=False)
class Quantize(Node):
    """Host boundary in: float input → codes, exactly like ORT's QuantizeLinear, or with
    ``rounding`` (a QONNX rounding mode) like QONNX's Quant, into [``lo``, ``hi``] (a narrow
    range) when given."""
    shape: tuple
    scale: float
    zero_point: int
    code: CodeType
    rounding: str = None
    lo: int = None
    hi: int = None

    @property
    def code_range(self):
        return (self.code.qmin if self.lo is None else self.lo,
                self.code.qmax if self.hi is None else self.hi)

    def reference(self, x):
        lo, hi = self.code_range
        if self.rounding is None:
            return numeric.quantize_linear(x, self.scale, self.zero_point, lo, hi)
        return numeric.int_quant(x, self.scale, self.zero_point, lo, hi, self.rounding)


@dataclass(frozen=True, eq=False)
class Dense(Node):
    """``acc = x @ weight.T + bias`` on raw input codes.

    ``weight`` (out_features × in_features) already has the weight zero point
    subtracted; ``bias`` already has ``-zx · Σ weight`` folded in.
    """
    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self):
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[0],):
            raise NodeError(f"{self.label}: weight must be 2-D (out, in) and bias (out,), "
                            f"not {self.weight.shape} and {self.bias.shape}")
        for a in (self.weight, self.bias):
            a.setflags(write=False)

    @property
    def in_features(self):
        return self.weight.shape[1]

    @property
    def out_features(self):
        return self.weight.shape[0]

    @property
    def macs(self):
        return self.weight.size

    def acc_range(self, lo, hi):
        """Exact per-channel accumulator bounds for input codes in [lo, hi]."""
        w = self.weight.astype(np.int64)
        low = np.minimum(w * lo, w * hi).sum(axis=1) + self.bias
        high = np.maximum(w * lo, w * hi).sum(axis=1) + self.bias
        return low, high

    def reference(self, x):
        return x.astype(np.int64) @ self.weight.T.astype(np.int64) + self.bias


def _pads(pads, kernel):
    """ONNX pads (begin…, end…) as [(begin, end)] per spatial axis."""
    n = len(kernel)
    pads = tuple(pads) if pads else (0,) * (2 * n)
    return [(pads[i], pads[i + n]) for i in range(n)]


def window_out_size(size, kernel, strides, pads, dilations):
    """(OH, OW) of windows over an (H, W) plane, as onnxruntime computes them:
    ``(in + pads - extent) / stride + 1`` with C division (toward zero)."""
    return tuple(int((n + b + e - (d * (k - 1) + 1)) / s) + 1
                 for n, k, s, (b, e), d in zip(size, kernel, strides, _pads(pads, kernel), dilations))


def windows(x, kernel, strides, pads, dilations, fill):
    """Sliding windows of a (N, C, H, W) array padded with ``fill``: (N, C, OH, OW, kh, kw)
    (sizes by window_out_size: a last window reaching past the input is padded too)."""
    (pt, pb), (pl, pr) = _pads(pads, kernel)
    kh, kw = kernel
    dh, dw = dilations
    sh, sw = strides
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    oh, ow = window_out_size(x.shape[2:4], kernel, strides, pads, dilations)
    pb += max(0, (oh - 1) * sh + eh - (x.shape[2] + pt + pb))
    pr += max(0, (ow - 1) * sw + ew - (x.shape[3] + pl + pr))
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    idx_h = (np.arange(oh) * sh)[:, None] + np.arange(kh) * dh          # (oh, kh)
    idx_w = (np.arange(ow) * sw)[:, None] + np.arange(kw) * dw          # (ow, kw)
    return x[:, :, idx_h[:, None, :, None], idx_w[None, :, None, :]]    # (N, C, oh, ow, kh, kw)


@dataclass(frozen=True, eq=False)
class Conv(Node):
    """2-D convolution on raw input codes, NCHW: ``acc = Σ weight · x + bias``, the input padded
    with its zero point (so padding adds nothing once ``-zx · Σ weight`` is in the bias).

    ``weight`` (out, in/groups, kh, kw) has the weight zero point subtracted."""
    weight: np.ndarray
    bias: np.ndarray
    strides: tuple
    pads: tuple
    dilations: tuple
    groups: int
    zero_point: int
    in_shape: tuple           # (C, H, W)

    def __post_init__(self):
        if self.weight.ndim != 4 or len(self.in_shape) != 3 or not self.groups >= 1:
            raise NodeError(f"{self.label}: a 2-D convolution needs 4-D weights, a (C, H, W) input and a group "
                            f"of at least 1, not weights {self.weight.shape}, input {self.in_shape}, group {self.groups}")
        o, cg = self.weight.shape[:2]
        if self.bias.shape != (o,) or cg * self.groups != self.in_shape[0] or o % self.groups:
            raise NodeError(f"{self.label}: inconsistent weight {self.weight.shape}, bias {self.bias.shape}, "
                            f"groups {self.groups} for input {self.in_shape}")
        for a in (self.weight, self.bias):
            a.setflags(write=False)

    @property
    def kernel(self):
        return tuple(self.weight.shape[2:])

    @property
    def out_shape(self):
        return (self.weight.shape[0],) + window_out_size(self.in_shape[1:], self.kernel, self.strides, self.pads,
                                                          self.dilations)

    @property
    def out_channels(self):
        return self.weight.shape[0]

    @property
    def macs(self):
        return int(np.prod(self.out_shape)) * int(np.prod(self.weight.shape[1:]))

    def acc_range(self, lo, hi):
        """Exact per-channel bounds for input codes in [lo, hi] (padding holds the zero point)."""
        lo, hi = min(lo, self.zero_point), max(hi, self.zero_point)
        w = self.weight.astype(np.int64).reshape(self.out_channels, -1)
        return (np.minimum(w * lo, w * hi).sum(axis=1) + self.bias,
                np.maximum(w * lo, w * hi).sum(axis=1) + self.bias)

    def reference(self, x):
        win = windows(x.astype(np.int64), self.kernel, self.strides, self.pads, self.dilations,
                      self.zero_point)                                   # (N, C, oh, ow, kh, kw)
        n, c, oh, ow = win.shape[:4]
        g, o = self.groups, self.out_channels
        win = win.reshape(n, g, c // g, oh, ow, -1)
        w = self.weight.astype(np.int64).reshape(g, o // g, c // g, -1)
        acc = np.einsum("ngcyxk,gock->ngoyx", win, w).reshape(n, o, oh, ow)
        return acc + self.bias[None, :, None, None]


@dataclass(frozen=True, eq=False)
class MaxPool(Node):
    """Maximum over windows of codes (padding never wins); the codes keep their meaning."""
    kernel: tuple
    strides: tuple
    pads: tuple
    dilations: tuple

    def reference(self, x):
        win = windows(x.astype(np.int64), self.kernel, self.strides, self.pads, self.dilations,
                      np.iinfo(np.int64).min)
        return win.max(axis=(4, 5))


@dataclass(frozen=True, eq=False)
class SumPool(Node):
    """Global sum per channel of an NCHW code tensor minus ``count · zero_point``: the
    accumulator of onnxruntime's QLinearGlobalAveragePool (its Requant follows)."""
    zero_point: int
    in_shape: tuple           # (C, H, W)

    @property
    def count(self):
        return int(np.prod(self.in_shape[1:]))

    @property
    def out_shape(self):
        return (self.in_shape[0], 1, 1)

    def acc_range(self, lo, hi):
        c, n = self.in_shape[0], self.count
        return np.full(c, n * (lo - self.zero_point), np.int64), np.full(c, n * (hi - self.zero_point), np.int64)

    def reference(self, x):
        return x.astype(np.int64).sum(axis=(2, 3), keepdims=True) - self.count * self.zero_point


@dataclass(frozen=True, eq=False)
class FloatSumPool(Node):
    """The float32 window sums of onnxruntime's average pools, exactly, as integers: each code
    becomes its dequantized value ``terms[q − qmin]`` (in units of 2**e,
    numeric.dequantized_units), and the taps of a window, row by row, are added with each
    partial sum rounded to float32 (numeric.float_sum).  A tap in the padding adds 0.  The
    division by the window size and the quantization follow as a Requant (FloatMean)."""
    kernel: tuple
    strides: tuple
    pads: tuple
    terms: np.ndarray
    qmin: int
    zero_point: int
    in_shape: tuple           # (C, H, W)

    def __post_init__(self):
        self.terms.setflags(write=False)

    @property
    def taps(self):
        return int(np.prod(self.kernel))

    @property
    def out_shape(self):
        return (self.in_shape[0],) + window_out_size(self.in_shape[1:], self.kernel, self.strides, self.pads, (1, 1))

    def acc_range(self, lo, hi):
        """Bounds of every partial sum for input codes in [lo, hi]: the taps' extreme terms (and
        the padding's 0) times the taps, widened by the float rounding (< 2**-23 relative)."""
        t = self.terms[lo - self.qmin:hi - self.qmin + 1]
        low, high = self.taps * min(int(t.min()), 0), self.taps * max(int(t.max()), 0)
        c = self.in_shape[0]
        return (np.full(c, low - (-low >> 22) - 1, np.int64), np.full(c, high + (high >> 22) + 1, np.int64))

    def reference(self, x):
        win = windows(np.asarray(x, dtype=np.int64), self.kernel, self.strides, self.pads, (1, 1),
                      self.zero_point)                                   # (N, C, oh, ow, kh, kw)
        return numeric.float_sum(self.terms[win - self.qmin].reshape(win.shape[:4] + (-1,)))


@dataclass(frozen=True, eq=False)
class Add(Node):
    """Elementwise sum of two code tensors as onnxruntime's QLinearAdd computes it
    (numeric.qlinear_add), clamped to [lo, hi] (a following Relu raises lo)."""
    a_scale: float
    a_zero: int
    b_scale: float
    b_zero: int
    scale: float
    zero_point: int
    code: CodeType
    lo: int
    hi: int

    @property
    def code_range(self):
        return self.lo, self.hi

    def reference(self, a, b):
        c = numeric.qlinear_add(a, self.a_scale, self.a_zero, b, self.b_scale, self.b_zero, self.scale,
                                self.zero_point, self.code.qmin, self.code.qmax)
        return np.clip(c, self.lo, self.hi)


@dataclass(frozen=True, eq=False)
class Concat(Node):
    """Channel concatenation of NCHW code tensors as onnxruntime's QLinearConcat computes it:
    an input quantized like the output is copied, any other goes through its 256-entry table
    ``quantize(dequantize(x))`` (``tables[i]`` indexed by code − qmin, None for a copy)."""
    tables: tuple
    code: CodeType

    @property
    def code_range(self):
        los = [self.code.qmin if t is None else int(t.min()) for t in self.tables]
        his = [self.code.qmax if t is None else int(t.max()) for t in self.tables]
        return min(los), max(his)

    def reference(self, *xs):
        parts = [x if t is None else t[np.asarray(x, np.int64) - self.code.qmin] for x, t in zip(xs, self.tables)]
        return np.concatenate(parts, axis=1)


@dataclass(frozen=True, eq=False)
class Requant(Node):
    """Accumulator → output codes through a monotone per-channel target function."""
    target: Target
    code: CodeType

    @property
    def channels(self):
        return self.target.channels

    @property
    def code_range(self):
        return self.target.output_range()

    def reference(self, acc):
        if acc.ndim <= 2:
            return self.target.reference(acc)
        moved = np.moveaxis(acc, 1, -1)                     # channels of NCHW last
        out = self.target.reference(moved.reshape(-1, moved.shape[-1]))
        return np.moveaxis(out.reshape(moved.shape), -1, 1)


@dataclass(frozen=True, eq=False)
class Reshape(Node):
    """Codes pass through; only the logical shape changes."""
    shape: tuple

    def reference(self, x):
        return x.reshape((x.shape[0],) + tuple(self.shape))


@dataclass(frozen=True, eq=False)
class Transpose(Node):
    """Codes pass through; the axes (batch excluded) are permuted by ``perm``."""
    perm: tuple

    def reference(self, x):
        return np.transpose(x, (0,) + tuple(p + 1 for p in self.perm))


@dataclass(frozen=True, eq=False)
class Dequantize(Node):
    """Host boundary out: codes → float, exactly like ORT's DequantizeLinear."""
    scale: float
    zero_point: int

    def reference(self, q):
        return numeric.dequantize_linear(q, self.scale, self.zero_point)


@dataclass(frozen=True, eq=False)
class ArgMax(Node):
    """Index of the largest code along the last axis (first one on ties)."""

    def reference(self, x):
        return np.argmax(x, axis=-1).astype(np.int64)[:, None]


@dataclass(frozen=True)
class QGraph:
    """Nodes in topological order; ``inputs``/``outputs`` are graph tensor names."""
    nodes: tuple
    inputs: tuple
    outputs: tuple
    shapes: dict = field(hash=False)
    notes: tuple = ()

    def __post_init__(self):
        known = set(self.inputs)
        for node in self.nodes:
            for name in node.inputs:
                if name not in known:
                    raise NodeError(f"{node.label} reads '{name}' before it is produced")
            known.add(node.output)
        missing = [o for o in self.outputs if o not in known]
        if missing:
            raise NodeError(f"graph outputs {missing} are never produced")

    def producer(self, tensor):
        return next((n for n in self.nodes if n.output == tensor), None)

    def consumers(self, tensor):
        return [n for n in self.nodes if tensor in n.inputs]

    def layers(self, kind):
        return [n for n in self.nodes if isinstance(n, kind)]

    def source(self, tensor):
        """The node whose codes ``tensor`` holds: its producer, followed back through reshapes,
        transposes and max pools (which move codes without changing them)."""
        node = self.producer(tensor)
        while isinstance(node, (Reshape, Transpose, MaxPool)):
            node = self.producer(node.inputs[0])
        return node

    def code_range(self, tensor):
        """Range of the codes a tensor can hold, following reshapes back to the producer (a
        concat: the union of its inputs' ranges, through their tables)."""
        node = self.source(tensor)
        if isinstance(node, Concat):
            ranges = []
            for t, table in zip(node.inputs, node.tables):
                lo, hi = self.code_range(t)
                ranges.append((lo, hi) if table is None else
                              (int(table[lo - node.code.qmin:hi - node.code.qmin + 1].min()),
                               int(table[lo - node.code.qmin:hi - node.code.qmin + 1].max())))
            return min(r[0] for r in ranges), max(r[1] for r in ranges)
        return node.code_range

    def run(self, feeds):
        """Execute the graph; ``feeds`` maps input names to batched arrays.

        Returns every tensor by name (intermediate codes included)."""
        values = dict(feeds)
        for node in self.nodes:
            values[node.output] = node.reference(*(values[i] for i in node.inputs))
        return values

    def reference(self, feeds):
        values = self.run(feeds)
        return {o: values[o] for o in self.outputs}
