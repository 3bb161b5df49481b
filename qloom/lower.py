"""Lowering: the one bridge from mapper (what to compute) to hdl (circuits).
It only translates; every decision was made in the Dataflow graph."""
from amaranth.hdl import signed, unsigned

from .hdl.requant import Requant
from .mapper import requant as rq


def code_shape(code):
    return signed(code.bits) if code.signed else unsigned(code.bits)


def requant_unit(plan, *, pe, acc_shape, out_code, channels):
    """The Requant component that implements a proven plan."""
    impl = plan.impl
    common = dict(channels=channels, pe=pe, acc_shape=acc_shape, out_shape=code_shape(out_code),
                  lo=impl.lo, hi=impl.hi)
    if isinstance(impl, rq.Shift):
        return Requant(kind="shift", params={"exponent": impl.exponent}, zero_point=impl.zero_point, **common)
    if isinstance(impl, rq.MulAddShift):
        return Requant(kind="mul-add-shift", params={"mul": impl.mul, "add": impl.add}, shift=impl.shift, **common)
    if isinstance(impl, rq.Thresholds):
        return Requant(kind="thresholds", params={"base": impl.base, "thresholds": impl.thresholds}, **common)
    if isinstance(impl, rq.FloatEmulation):
        tables = [t.table for t in impl.tables]
        table_qmin = impl.tables[0].in_qmin if impl.tables else 0
        return Requant(kind="float-emulation", params={"mantissa": impl.mantissa, "exponent": impl.exponent},
                       zero_point=impl.zero_point, tables=tables, table_qmin=table_qmin, **common)
    raise TypeError(f"no circuit for requantization kind {impl.kind!r}")
