"""Lowering: the one bridge from mapper (what to compute) to hdl (circuits).
It only translates; every decision was made in the Dataflow graph."""
from amaranth.hdl import signed, unsigned

from .hdl.requant import Requant, SerialRequant
from .mapper import requant as rq


def code_shape(code):
    return signed(code.bits) if code.signed else unsigned(code.bits)


def styles(kernel):
    """Where the kernel's memories go, as the mapper decided."""
    return {m.name: m.style for m in kernel.memories() if not m.fifo}


def requant_unit(plan, *, pe, acc_shape, out_code, channels, memory_styles=None, serial=False):
    """The Requant component that implements a proven plan (``serial``: a mul-add-shift plan as
    hdl.requant.SerialRequant)."""
    impl = plan.impl
    common = dict(channels=channels, pe=pe, acc_shape=acc_shape, out_shape=code_shape(out_code),
                  lo=impl.lo, hi=impl.hi, memory_styles=memory_styles)
    if serial:
        fixes = {"fix_acc": impl.fix_acc, "fix_code": impl.fix_code} if impl.fixes else {}
        return SerialRequant(params={"mul": impl.mul, "add": impl.add, **fixes}, shift=impl.shift, **common)
    if isinstance(impl, rq.Shift):
        return Requant(kind="shift", params={"exponent": impl.exponent}, zero_point=impl.zero_point, **common)
    if isinstance(impl, rq.MulAddShift):
        fixes = {"fix_acc": impl.fix_acc, "fix_code": impl.fix_code} if impl.fixes else {}
        return Requant(kind="mul-add-shift", params={"mul": impl.mul, "add": impl.add, **fixes}, shift=impl.shift,
                       **common)
    if isinstance(impl, rq.ThresholdSearch):
        return Requant(kind="threshold-search", params={"base": impl.base, "search": impl.thresholds}, **common)
    if isinstance(impl, rq.Thresholds):
        return Requant(kind="thresholds", params={"base": impl.base, "thresholds": impl.thresholds}, **common)
    if isinstance(impl, rq.FloatEmulation):
        tables = [t.table for t in impl.tables]
        table_qmin = impl.tables[0].in_qmin if impl.tables else 0
        return Requant(kind="float-emulation", params={"mantissa": impl.mantissa, "exponent": impl.exponent},
                       zero_point=impl.zero_point, tables=tables, table_qmin=table_qmin, **common)
    raise TypeError(f"no circuit for requantization kind {impl.kind!r}")


def units(dataflow):
    """One Amaranth component per Dataflow kernel (two for some width converters; a residual
    block is one component holding its paths), in stream order, as (kernel name, component)."""
    return _units(dataflow.kernels)


def _units(kernels):
    from .hdl.join import AddUnit, ConcatUnit, Residual
    from .hdl.mvu import MVU, DepthwiseUnit
    from .hdl.streams import Fifo, width_converters
    from .hdl.window import FloatSumUnit, MaxPoolUnit, SumPoolUnit, WindowGen
    from .mapper import dataflow as df
    out = []
    for k in kernels:
        if isinstance(k, df.MVUKernel):
            out.append((k.name, MVU(weights=k.dense.weight, bias=k.dense.bias, pe=k.pe, simd=k.simd,
                                    input_shape=code_shape(k.in_code), acc_shape=signed(k.acc_bits),
                                    memory_styles=styles(k))))
        elif isinstance(k, df.DepthwiseKernel):
            out.append((k.name, DepthwiseUnit(weights=k.weights, bias=k.conv.bias, pe=k.pe,
                                              input_shape=code_shape(k.in_code), acc_shape=signed(k.acc_bits),
                                              memory_styles=styles(k))))
        elif isinstance(k, df.RequantKernel):
            out.append((k.name, requant_unit(k.plan, pe=k.pe, acc_shape=signed(k.acc_bits), out_code=k.node.code,
                                             channels=k.channels, memory_styles=styles(k), serial=k.serial)))
        elif isinstance(k, df.WidthConverterKernel):
            out.extend((k.name, u) for u in width_converters(code_shape(k.code), k.lanes_in, k.lanes_out))
        elif isinstance(k, df.WindowKernel):
            out.append((k.name, WindowGen(shape=code_shape(k.code), lanes=k.lanes, frame=k.shape, out_size=k.out_size,
                                          kernel=k.kernel, depth=k.depth, strides=k.strides, pads=k.pads, dilations=k.dilations,
                                          order=k.order, pad=k.pad, memory_styles=styles(k))))
        elif isinstance(k, df.MaxPoolKernel):
            out.append((k.name, MaxPoolUnit(shape=code_shape(k.code), lanes=k.lanes, taps=k.taps)))
        elif isinstance(k, df.FloatSumKernel):
            out.append((k.name, FloatSumUnit(shape=code_shape(k.code), lanes=k.pe, taps=k.node.taps, terms=k.node.terms,
                                             acc_shape=signed(k.acc_bits), memory_styles=styles(k))))
        elif isinstance(k, df.SumPoolKernel):
            out.append((k.name, SumPoolUnit(shape=code_shape(k.code), lanes=k.pe, groups=k.groups,
                                            pixels=k.node.count, acc_shape=signed(k.acc_bits),
                                            start=-k.node.count * k.node.zero_point)))
        elif isinstance(k, df.FifoKernel):
            out.append((k.name, Fifo(shape=code_shape(k.code), lanes=k.lanes, depth=k.depth)))
        elif isinstance(k, df.ResidualKernel) and isinstance(k.join, df.ConcatKernel):
            j = k.join
            (na, ua), (nb, ub) = (zip(*_units(p)) for p in k.paths)
            concat = ConcatUnit(shape=code_shape(j.node.code), lanes=j.lanes, beats_a=j.first_takes[0],
                                beats_b=j.first_takes[1], table_a=j.node.tables[0], table_b=j.node.tables[1])
            out.append((k.name, Residual(list(ua), list(na), list(ub), list(nb), concat)))
        elif isinstance(k, df.ResidualKernel):
            j = k.join
            (na, ua), (nb, ub) = (zip(*_units(p)) for p in k.paths)
            add = AddUnit(a_shape=code_shape(j.a_code), b_shape=code_shape(j.b_code), out_shape=code_shape(j.node.code),
                          lanes=j.lanes, mul_a=j.plan.mul_a, mul_b=j.plan.mul_b, add=j.raw_add, shift=j.plan.shift,
                          lo=j.plan.lo, hi=j.plan.hi)
            out.append((k.name, Residual(list(ua), list(na), list(ub), list(nb), add)))
        else:
            raise TypeError(f"no component for kernel {type(k).__name__}")
    return out


def top(dataflow):
    from .hdl.streams import Chain
    pairs = units(dataflow)
    return Chain([u for _, u in pairs], names=[n for n, _ in pairs])


TOP_NAME = "qloom_top"


def verilog(dataflow):
    """The design as Verilog text, top module ``qloom_top`` with ports clk, rst,
    i__payload/i__valid/i__ready and o__payload/o__valid/o__ready."""
    from amaranth.back import verilog as back
    return back.convert(top(dataflow), name=TOP_NAME)
