"""Lowering: the one bridge from mapper (what to compute) to hdl (circuits).

It only translates, one registered function per kernel class of mapper/kernels/ (``lower``,
``lower_join`` for a residual block's join, ``requant_circuit`` per proven requantization);
every decision was made in the Dataflow graph.  ``top`` is the design, ``shell`` the design
inside the narrow I/O shell that synthesis builds."""
import functools
from dataclasses import replace

from amaranth.hdl import signed, unsigned

from .hdl import dsp, spram
from .hdl.join import AddUnit, ConcatUnit, Residual
from .hdl.mvu import MVU, DepthwiseUnit, load_image as mvu_load_image
from .hdl.requant import Requant, SerialRequant
from .hdl.shell import narrow_shell
from .hdl.streams import Chain, Fifo, width_converters
from .hdl.window import FloatSumUnit, MaxPoolUnit, SumPoolUnit, WindowGen
from .mapper import dataflow as df, kernels, requant as rq

TOP_NAME = "qloom_top"


def code_shape(code):
    return signed(code.bits) if code.signed else unsigned(code.bits)


def styles(kernel):
    """Where the kernel's memories go, as the mapper decided."""
    return {m.name: m.style for m in kernel.memories() if m.style != "auto"}


def requant_unit(plan, *, pe, acc_shape, out_code, channels, memory_styles=None, serial=False, param_words=1):
    """The Requant component that implements a proven plan (``serial``: a mul-add-shift plan as
    hdl.requant.SerialRequant, its parameters in ``param_words`` rows)."""
    impl = plan.impl
    common = dict(channels=channels, pe=pe, acc_shape=acc_shape, out_shape=code_shape(out_code),
                  lo=impl.lo, hi=impl.hi, memory_styles=memory_styles)
    if serial:
        return SerialRequant(params=_mul_add_params(impl), shift=impl.shift, param_words=param_words, **common)
    return requant_circuit(impl, common)


def _mul_add_params(impl):
    fixes = {"fix_acc": impl.fix_acc, "fix_code": impl.fix_code} if impl.fixes else {}
    return {"mul": impl.mul, "add": impl.add, **fixes}


@functools.singledispatch
def requant_circuit(impl, common):
    """The hdl.requant.Requant of a proven implementation (one registered function per
    mapper.requant implementation class); ``common``: its keyword arguments shared by all."""
    raise TypeError(f"no circuit for requantization kind {impl.kind!r}")


@requant_circuit.register
def _shift(impl: rq.Shift, common):
    return Requant(kind="shift", params={"exponent": impl.exponent}, zero_point=impl.zero_point,
                   **common)


@requant_circuit.register
def _mul_add_shift(impl: rq.MulAddShift, common):
    return Requant(kind="mul-add-shift", params=_mul_add_params(impl), shift=impl.shift, **common)


@requant_circuit.register
def _thresholds(impl: rq.Thresholds, common):
    return Requant(kind="thresholds", params={"base": impl.base, "thresholds": impl.thresholds},
                   **common)


@requant_circuit.register
def _threshold_search(impl: rq.ThresholdSearch, common):
    return Requant(kind="threshold-search", params={"base": impl.base, "search": impl.thresholds},
                   **common)


@requant_circuit.register
def _float_emulation(impl: rq.FloatEmulation, common):
    tables = [t.table for t in impl.tables]
    table_qmin = impl.tables[0].in_qmin if impl.tables else 0
    return Requant(kind="float-emulation",
                   params={"mantissa": impl.mantissa, "exponent": impl.exponent},
                   zero_point=impl.zero_point, tables=tables, table_qmin=table_qmin, **common)


def units(dataflow):
    """One Amaranth component per Dataflow kernel (two for some width converters; a residual
    block is one component holding its paths), in stream order, as (kernel name, component)."""
    return _units(dataflow.kernels)


def _units(chain):
    return [(k.name, u) for k in chain for u in lower(k)]


@functools.singledispatch
def lower(kernel):
    """The components (in stream order) that implement ``kernel``: one registered function per
    kernel class of mapper/kernels/."""
    raise TypeError(f"no component for kernel {type(kernel).__name__}")


@lower.register
def _mvu(k: kernels.MVUKernel):
    return [MVU(weights=k.dense.weight, bias=k.dense.bias, pe=k.pe, simd=k.simd,
                input_shape=code_shape(k.in_code), acc_shape=signed(k.acc_bits),
                memory_styles=styles(k), split_products=k.split_products, dsp_cell=k.dsp_cell,
                spram_cell=k.spram_cell)]


@lower.register
def _depthwise(k: kernels.DepthwiseKernel):
    return [DepthwiseUnit(weights=k.weights, bias=k.conv.bias, pe=k.pe,
                          input_shape=code_shape(k.in_code), acc_shape=signed(k.acc_bits),
                          memory_styles=styles(k), dsp_cell=k.dsp_cell)]


@lower.register
def _requant(k: kernels.RequantKernel):
    return [requant_unit(k.plan, pe=k.pe, acc_shape=signed(k.acc_bits), out_code=k.node.code,
                         channels=k.channels, memory_styles=styles(k), serial=k.serial,
                         param_words=k.param_words)]


@lower.register
def _width_converter(k: kernels.WidthConverterKernel):
    return width_converters(code_shape(k.code), k.lanes_in, k.lanes_out)


@lower.register
def _fifo(k: kernels.FifoKernel):
    return [Fifo(shape=code_shape(k.code), lanes=k.lanes, depth=k.depth)]


@lower.register
def _window(k: kernels.WindowKernel):
    return [WindowGen(shape=code_shape(k.code), lanes=k.lanes, frame=k.shape, out_size=k.out_size,
                      kernel=k.kernel, depth=k.depth, strides=k.strides, pads=k.pads,
                      dilations=k.dilations, order=k.order, pad=k.pad, memory_styles=styles(k), taps=k.taps)]


@lower.register
def _max_pool(k: kernels.MaxPoolKernel):
    return [MaxPoolUnit(shape=code_shape(k.code), lanes=k.lanes, taps=k.taps)]


@lower.register
def _float_sum(k: kernels.FloatSumKernel):
    return [FloatSumUnit(shape=code_shape(k.code), lanes=k.pe, taps=k.node.taps, terms=k.node.terms,
                         acc_shape=signed(k.acc_bits), memory_styles=styles(k))]


@lower.register
def _sum_pool(k: kernels.SumPoolKernel):
    return [SumPoolUnit(shape=code_shape(k.code), lanes=k.pe, groups=k.groups, pixels=k.node.count,
                        acc_shape=signed(k.acc_bits), start=-k.node.count * k.node.zero_point)]


@lower.register
def _residual(k: kernels.ResidualKernel):
    (na, ua), (nb, ub) = (zip(*_units(p)) for p in k.paths)
    return [Residual(list(ua), list(na), list(ub), list(nb), lower_join(k.join))]


@functools.singledispatch
def lower_join(join):
    """The join unit of a residual block (one registered function per mapper.kernels.Join)."""
    raise TypeError(f"no component for join {type(join).__name__}")


@lower_join.register
def _add(j: kernels.AddKernel):
    return AddUnit(a_shape=code_shape(j.a_code), b_shape=code_shape(j.b_code),
                   out_shape=code_shape(j.node.code), lanes=j.lanes, mul_a=j.plan.mul_a,
                   mul_b=j.plan.mul_b, add=j.raw_add, shift=j.plan.shift, lo=j.plan.lo,
                   hi=j.plan.hi)


@lower_join.register
def _concat(j: kernels.ConcatKernel):
    return ConcatUnit(shape=code_shape(j.node.code), lanes=j.lanes, beats_a=j.first_takes[0],
                      beats_b=j.first_takes[1], table_a=j.node.tables[0], table_b=j.node.tables[1])


def top(dataflow):
    """The design as one component: its units chained in stream order; where weights are in
    SPRAM, inside hdl.spram.Loaded, which fills them through its ``load`` stream first."""
    pairs = units(dataflow)
    chain = Chain([u for _, u in pairs], names=[n for n, _ in pairs])
    loading = spram.loaders(chain)
    return spram.Loaded(chain, loading) if loading else chain


def load_image(dataflow):
    """The 16-bit words the design's ``load`` stream takes after reset, before its first
    frame (empty: it has no SPRAM memory): each MVU's with its weights in SPRAM, in stream order
    (a branch's paths before its join, as hdl.spram.loaders finds them)."""
    return [w for k in dataflow.all_kernels if getattr(k, "spram_cell", None)
            for w in mvu_load_image(k.dense.weight, k.pe, k.simd)]


def shell(dataflow):
    """The design inside the narrow I/O shell (hdl.shell.narrow_shell), as synthesis builds it."""
    return narrow_shell(top(dataflow))


def amaranth_top(dataflow):
    """top(dataflow) for amaranth.sim, which runs no Verilog primitive: the DSP products and
    the SPRAMs as their Amaranth models (hdl.dsp.MODEL, hdl.spram.MODEL), the same registers
    and timing."""
    def model(k):
        cells = {key: model for key, model in (("dsp_cell", dsp.MODEL), ("spram_cell", spram.MODEL))
                 if getattr(k, key, None)}
        return replace(k, **cells) if cells else k
    return top(df.map_kernels(dataflow, model))


def verilog(dataflow):
    """The design as Verilog text, top module ``qloom_top`` with ports clk, rst,
    i__payload/i__valid/i__ready and o__payload/o__valid/o__ready (and load__payload/
    load__valid/load__ready where weights are in SPRAM: load_image); after it, the simulation
    models of the primitives it instantiates (hdl.dsp, hdl.spram; hidden from synthesis)."""
    from amaranth.back import verilog as back
    text = back.convert(top(dataflow), name=TOP_NAME)
    return text + dsp.sim_models(text) + spram.sim_models(text)
