"""The Dataflow builder: QGraph nodes to kernels (DESIGN.md §3), one registered function per
node type (``add_node``); a residual block's two paths are built as chains of their own and
joined (``_Chain.fork``).  Adding a node type is registering its function here."""
import functools
import math
from dataclasses import replace

import numpy as np

from . import qgraph as qg
from .errors import UnsupportedError
from .folding import is_depthwise, reads_in_order
from .kernels import (AddKernel, ConcatKernel, DepthwiseKernel, FifoKernel, FloatSumKernel,
                      IOFormat, MaxPoolKernel, MVUKernel, RequantKernel, ResidualKernel,
                      SumPoolKernel, WidthConverterKernel, WindowKernel, fifo_depth)


def conv_matrix(conv):
    """A Conv as the matrix an MVU multiplies each window by: (out, kh·kw·C) in the window's
    order (tap-major, channels last); groups become a block-diagonal matrix."""
    o, cg, kh, kw = conv.weight.shape
    c, g = conv.in_shape[0], conv.groups
    full = np.zeros((o, kh, kw, c), np.int64)
    for k in range(g):
        rows = slice(k * (o // g), (k + 1) * (o // g))
        full[rows, :, :, k * cg:(k + 1) * cg] = np.transpose(conv.weight[rows], (0, 2, 3, 1))
    return qg.Dense(conv.name, conv.onnx_node, conv.inputs, conv.output,
                    weight=full.reshape(o, -1), bias=np.asarray(conv.bias, np.int64))


def stream_positions(shape):
    """For a tensor of ``shape`` as the hardware streams it (a (C, H, W) frame channels-last,
    anything else in order): the stream position of each element, as an array of that shape."""
    if len(shape) == 3:
        c, h, w = shape
        return np.arange(c * h * w).reshape(h, w, c).transpose(2, 0, 1)
    return np.arange(math.prod(shape)).reshape(shape)


def partial_sum_range(weight, bias, lo, hi):
    """Bounds of every partial sum an accumulator starting at ``bias`` holds while it adds the
    products of one row of ``weight`` (out, in) with codes in [lo, hi], in any order."""
    w = np.asarray(weight, np.int64)
    low = np.minimum(np.minimum(w * lo, w * hi), 0).sum(axis=1) + bias
    high = np.maximum(np.maximum(w * lo, w * hi), 0).sum(axis=1) + bias
    return int(min(low.min(), np.min(bias))), int(max(high.max(), np.max(bias)))


def graph_code(graph, tensor):
    """The code type of a tensor, following reshapes and max pools back to its producer."""
    return graph.source(tensor).code


class _Chain:
    """Builds the kernels of one chain of QGraph nodes (the model, or one path of a fork).
    ``lanes``/``code``: the stream entering the chain (None before the first layer);
    ``count``: the kernel names given so far and ``joins``: the join FIFOs' depths, shared
    with the chains of its forks."""

    def __init__(self, graph, folding, plans, fifo_depths, count, lanes, code, first, ii=None,
                 latency_exact=True, joins=None, in_path=False, split=frozenset(), dsp_cells=None):
        self.graph, self.folding, self.plans = graph, folding, plans
        self.split = split          # the MVUs whose products are split in two (MVUKernel.split_products)
        self.dsp_cells = dsp_cells or {}    # kernel name: the DSP primitive of its products (MVUKernel.dsp_cell)
        self.fifo_depths, self.ii, self.latency_exact = fifo_depths, ii, latency_exact
        self.in_path = in_path      # a path of a fork
        self.count, self.lanes, self.code, self.first = count, lanes, code, first
        self.joins = {} if joins is None else joins       # join FIFO name: depth, in stream order
        # view: where each element of the current (reshaped or transposed) tensor sits in the
        # stream, None while the tensor is streamed in its own order (stream_positions)
        self.kernels, self.in_format, self.view = [], None, None

    def fresh(self, kind):
        n = self.count.get(kind, 0)
        self.count[kind] = n + 1
        return f"{kind}{n}"

    def add_converter(self, lanes_in, lanes_out, length):
        if lanes_in != lanes_out:
            self.kernels.append(WidthConverterKernel(self.fresh("width"), self.code, lanes_in,
                                                     lanes_out, length))

    def add_fifo(self, lanes, depth, length, name=None):
        self.kernels.append(FifoKernel(name or self.fresh("fifo"), self.code, lanes, depth, length))

    def feed(self, simd, length):
        """Bring the stream to ``simd`` lanes (the input format for the first layer)."""
        if self.first is not None:
            q, code = self.first, self.code
            self.in_format = IOFormat(q.shape, simd, code.bits, code.signed, q.scale, q.zero_point)
            self.first = None
            return True
        self.add_converter(self.lanes, simd, length)
        return False

    def add_mvu(self, node, dense, pe, simd, vectors, lo, hi):
        code = graph_code(self.graph, node.inputs[0])
        acc = partial_sum_range(dense.weight, dense.bias, lo, hi)
        name = f"mvu_{node.name}"
        self.kernels.append(MVUKernel(name, dense, pe, simd, code, *acc, vectors,
                                      split_products=name in self.split, dsp_cell=self.dsp_cells.get(name)))

    def requant(self, node, producer):
        """The layer's requantizer: the full-rate circuit over as few lanes as keep up with its
        producer (``shared_lanes``), or serial (hdl.requant.SerialRequant, a tenth of the
        logic a lane) where that is the cheaper circuit (estimated LUTs, the width converter
        counted), the design's interval is known, its producer may feed one
        (Kernel.serial_interval), it then keeps below 7/8 of the interval and, where the
        latency model is exact, keeps up with its producer's beats (DS-CNN's first
        requantizer: one full-rate lane, 964 estimated LUTs, against 32 serial lanes, 10,878).
        Inside a fork's path the serial circuit is kept where allowed: the join FIFOs are sized
        from the design's rate (ResidualKernel.full_rate_depths), and a path made faster than
        its serial lag allowed, fed by a fork that gets the first frame faster than that rate,
        needs a deeper skip FIFO than they give (measured: 53 cycles of latency lost on a
        random residual network with both of its path's requantizers full-rate).  A serial
        requantizer's parameters are narrowed where that saves block RAM
        (RequantKernel.narrowed)."""
        k = RequantKernel(f"requant_{node.name}", node, self.plans[node.name], producer.pe,
                          producer.acc_bits, producer.vectors)
        interval = producer.serial_interval
        shared = replace(k, pe=self.shared_lanes(k, interval))
        if self.ii is None or k.plan.kind != "mul-add-shift" or interval is None:
            return shared
        serial = replace(k, serial=True, interval=interval)
        if serial.cycles_per_frame * 8 > self.ii * 7 or (self.latency_exact and serial.lag):
            return shared
        if self.in_path or serial.resources()["lut"] <= shared.resources()["lut"] + shared.pe * k.acc_bits:
            return serial.narrowed()
        return shared

    @staticmethod
    def shared_lanes(k, interval):
        """A producer that hands ``pe`` accumulators every ``interval`` cycles needs only
        ⌈pe / interval⌉ full-rate requantizer lanes (the fewest that divide pe): its beats are
        split to that width first (a width converter) and a lane's circuit is shared by the
        channels that arrive one after another."""
        if k.acc_bits > 32:          # a width converter carries codes of at most 32 bits
            return k.pe
        return min(d for d in range(1, k.pe + 1) if k.pe % d == 0 and d * (interval or 1) >= k.pe)

    def node(self, node):
        """Add the kernels of ``node`` (add_node, by its type)."""
        if self.view is not None and not isinstance(node, READS_ANY_ORDER):
            raise UnsupportedError(f"{node.label}: its input was transposed or reshaped out of "
                                   "the stream's channels-last order; only a dense layer can read "
                                   "such a tensor in hardware.")
        add_node(node, self)

    def fork(self, fork_node, paths, add):
        """The paths from ``fork_node`` to ``add`` (one list of nodes per Add input), each built
        as its own chain, then the join; FIFOs at the paths' ends sized so the graph cannot
        deadlock (ResidualKernel.required_depths)."""
        if self.first is not None:
            raise UnsupportedError(f"{fork_node.label}: the model input feeds two layers; qloom "
                                   "needs one quantized layer before a residual branch.")
        if self.view is not None:
            raise UnsupportedError(f"{fork_node.label}: a transposed or reshaped tensor feeds two "
                                   "layers; only tensors in the stream's own order can branch in "
                                   "hardware.")
        chains = [self.path(p) for p in paths]
        join = self.join(add, chains, max(c.lanes for c in chains))
        parts = [math.prod(self.graph.shapes[t]) for t in add.inputs]
        for c, part in zip(chains, parts):
            c.add_converter(c.lanes, join.lanes, part)
            c.lanes = join.lanes
        fork_length = math.prod(self.graph.shapes[fork_node.output])
        branch = ResidualKernel(f"branch_{add.name}", tuple(tuple(c.kernels) for c in chains),
                                join, self.lanes, self.code, fork_length)
        self.size_join_fifos(add, branch, chains, parts)
        self.kernels.append(replace(branch, paths=tuple(tuple(c.kernels) for c in chains),
                                    sized=True))
        self.lanes, self.code = join.lanes, add.code

    def path(self, nodes):
        """One path of a fork, built as a chain of its own from this chain's stream."""
        c = _Chain(self.graph, self.folding, self.plans, self.fifo_depths, self.count, self.lanes,
                   self.code, None, self.ii, False, self.joins, in_path=True, split=self.split,
                   dsp_cells=self.dsp_cells)
        for n in nodes:
            c.node(n)
        return c

    def join(self, add, chains, lanes):
        """The Add or Concat where the paths meet, at ``lanes`` (a concat: the most lanes that
        divide both inputs' channels)."""
        shape = self.graph.shapes[add.output]
        if isinstance(add, qg.Concat):
            channels = tuple(self.graph.shapes[t][0] for t in add.inputs)
            lanes = max(d for d in range(1, lanes + 1) if all(c % d == 0 for c in channels))
            return ConcatKernel(f"concat_{add.name}", add, lanes, channels, math.prod(shape[1:]))
        return AddKernel(f"add_{add.name}", add, self.plans[add.name], lanes, chains[0].code,
                         chains[1].code, math.prod(shape))

    def size_join_fifos(self, add, branch, chains, parts):
        """End each path in its join FIFO: fold.json's depth or the full-rate one, refused below
        what the branch needs to be free of deadlock."""
        full = branch.full_rate_depths(self.ii) if self.ii else branch.required_depths()
        lanes = branch.join.lanes
        for k, (c, need) in enumerate(zip(chains, branch.required_depths())):
            name = f"join_{add.name}_{'ab'[k]}"
            depth = self.fifo_depths.pop(name, full[k])
            if depth < need:
                raise UnsupportedError(
                    f"{add.label}: FIFO '{name}' of depth {depth} can deadlock the residual "
                    f"branch: the other path takes {branch.reach()[1 - k]} beats of "
                    f"{self.lanes} lanes before its first output, so this path must hold {need} "
                    f"beats of {lanes} lanes. Use at least {need} in fold.json's \"fifo_depths\" "
                    "(or leave it out: qloom computes it).")
            c.add_fifo(lanes, depth, parts[k], name=name)
            self.joins[name] = depth


READS_ANY_ORDER = (qg.Dense, qg.Reshape, qg.Transpose, qg.Dequantize)   # a reshaped input


@functools.singledispatch
def add_node(node, chain):
    """Add the kernels that compute ``node`` to ``chain`` (one registered function per type)."""
    raise UnsupportedError(f"{node.label}: no hardware kernel for {type(node).__name__} yet.")


@add_node.register
def _dense(node: qg.Dense, chain):
    pe, simd = chain.folding[node.name]
    order = None if chain.view is None else np.argsort(chain.view.reshape(-1))
    dense = node if order is None else replace(node, weight=node.weight[:, order])
    chain.view = None
    chain.feed(simd, node.in_features)
    depth = fifo_depth(pe, simd, node.in_features, node.out_features)
    chain.add_fifo(simd, depth, node.in_features)
    chain.add_mvu(node, dense, pe, simd, 1, *chain.graph.code_range(node.inputs[0]))


@add_node.register
def _conv(node: qg.Conv, chain):
    """A window generator and an MVU (a 1×1 conv: every pixel is its own window), or for a
    depthwise conv a window generator and a depthwise unit."""
    if is_depthwise(node):
        return _depthwise(node, chain)
    pe, simd = chain.folding[node.name]
    shape = tuple(node.in_shape)
    lanes = min(simd, shape[0])             # beyond the channels: simd / C taps a beat
    window = WindowKernel(f"window_{node.name}", chain.code, shape, lanes, node.kernel,
                          node.strides, node.pads, node.dilations, "taps", node.zero_point, "conv",
                          taps=simd // lanes)
    chain.feed(lanes, math.prod(shape))
    if not reads_in_order(node):
        chain.kernels.append(window)
    dense = conv_matrix(node)
    depth = fifo_depth(pe, simd, dense.in_features, dense.out_features)
    chain.add_fifo(simd, depth, window.beats_out * simd)
    lo, hi = chain.graph.code_range(node.inputs[0])
    chain.add_mvu(node, dense, pe, simd, math.prod(node.out_shape[1:]), min(lo, node.zero_point),
                  max(hi, node.zero_point))


def _depthwise(node, chain):
    graph = chain.graph
    pe, _ = chain.folding[node.name]
    shape = tuple(node.in_shape)
    chain.feed(pe, math.prod(shape))
    chain.kernels.append(WindowKernel(f"window_{node.name}", chain.code, shape, pe, node.kernel,
                                      node.strides, node.pads, node.dilations, "channels",
                                      node.zero_point, "depthwise"))
    lo, hi = graph.code_range(node.inputs[0])
    acc = partial_sum_range(node.weight.reshape(node.out_channels, -1), node.bias,
                            min(lo, node.zero_point), max(hi, node.zero_point))
    name = f"dw_{node.name}"
    chain.kernels.append(DepthwiseKernel(name, node, pe, graph_code(graph, node.inputs[0]), *acc,
                                         dsp_cell=chain.dsp_cells.get(name)))


@add_node.register
def _max_pool(node: qg.MaxPool, chain):
    shape = chain.graph.shapes[node.inputs[0]]
    window = WindowKernel(f"window_{node.name}", chain.code, shape, chain.lanes, node.kernel,
                          node.strides, node.pads, node.dilations, "channels", chain.code.qmin,
                          "pool")
    chain.kernels.append(window)
    chain.kernels.append(MaxPoolKernel(f"pool_{node.name}", chain.code, chain.lanes,
                                       math.prod(node.kernel), window.beats_out))


@add_node.register
def _float_sum_pool(node: qg.FloatSumPool, chain):
    graph = chain.graph
    shape = graph.shapes[node.inputs[0]]
    chain.kernels.append(WindowKernel(f"window_{node.name}", chain.code, shape, chain.lanes,
                                      node.kernel, node.strides, node.pads, (1, 1), "channels",
                                      node.zero_point, "pool"))
    lo, hi = node.acc_range(*graph.code_range(node.inputs[0]))
    chain.kernels.append(FloatSumKernel(f"fsum_{node.name}", node, chain.code, chain.lanes,
                                        int(lo.min()), int(hi.max()),
                                        math.prod(node.out_shape[1:])))


@add_node.register
def _sum_pool(node: qg.SumPool, chain):
    lo, hi = node.acc_range(*chain.graph.code_range(node.inputs[0]))
    chain.kernels.append(SumPoolKernel(f"sum_{node.name}", node, chain.code, chain.lanes,
                                       int(lo.min()), int(hi.max())))


@add_node.register
def _requant(node: qg.Requant, chain):
    producer = chain.kernels[-1]
    requant = chain.requant(node, producer)
    if requant.pe < producer.pe:                # shared: split the accumulators to its lanes
        code, chain.code = chain.code, qg.CodeType(requant.acc_bits, True)
        chain.add_converter(producer.pe, requant.pe, requant.vectors * requant.channels)
        chain.code = code
    chain.kernels.append(requant)
    chain.lanes, chain.code = requant.pe, node.code


@add_node.register(qg.Reshape)
@add_node.register(qg.Transpose)
def _view(node, chain):
    """No hardware: the data stays in stream order, only its meaning changes."""
    before = tuple(chain.graph.shapes.get(node.inputs[0], ()))
    view = stream_positions(before) if chain.view is None else chain.view
    view = view.transpose(node.perm) if isinstance(node, qg.Transpose) else view.reshape(node.shape)
    chain.view = None if np.array_equal(view, stream_positions(view.shape)) else view


@add_node.register
def _dequantize(node: qg.Dequantize, chain):
    """No hardware: the output codes leave as they are (the host dequantizes)."""


# the nodes a hardware kernel exists for: those add_node builds, the input, and the joins (fork)
HARDWARE_NODES = (qg.Quantize, qg.Add, qg.Concat) + tuple(t for t in add_node.registry
                                                          if t is not object)


def branch_paths(graph, fork_node):
    """The two node paths from a tensor that feeds two layers to the Add where they meet, in the
    order of the Add's inputs; refused unless the graph is a fork → two chains → Add."""
    heads = graph.consumers(fork_node.output)
    if len(heads) != 2:
        raise UnsupportedError(f"{fork_node.label}: its output feeds {len(heads)} layers; qloom "
                               "builds hardware for a tensor that feeds two paths meeting again in "
                               "an Add (a residual block).")
    found = []
    for head in heads:
        path, node, tensor = [], head, fork_node.output
        while not isinstance(node, (qg.Add, qg.Concat)):
            path.append(node)
            nxt = graph.consumers(node.output)
            if len(nxt) != 1:
                raise UnsupportedError(f"{node.label}: inside a residual branch from "
                                       f"{fork_node.label}, its output feeds {len(nxt)} layers; "
                                       "nested branches are not supported in hardware.")
            tensor, node = node.output, nxt[0]
        found.append((node, tensor, path))
    (add_a, t_a, p_a), (add_b, t_b, p_b) = found
    if add_a is not add_b or t_a == t_b or len(add_a.inputs) != 2:
        raise UnsupportedError(f"{fork_node.label}: its two paths do not meet in one Add or "
                               "Concat of two different tensors; only a fork → two paths → "
                               "Add/Concat is supported in hardware.")
    return add_a, ([p_a, p_b] if add_a.inputs[0] == t_a else [p_b, p_a])
