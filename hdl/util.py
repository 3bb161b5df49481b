"""Small helpers shared by the components."""
import numpy as np
from amaranth.hdl import Const, Shape, signed


def pack(values, width):
    """Integers (two's complement if negative) → one integer, element 0 in the low bits."""
    word = 0
    for k, v in enumerate(np.asarray(values, dtype=object).reshape(-1)):
        word |= (int(v) & ((1 << width) - 1)) << (k * width)
    return word


def signed_shape_for(lo, hi):
    """The narrowest signed shape holding every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= int(lo) and int(hi) <= (1 << (bits - 1)) - 1):
        bits += 1
    return signed(bits)


def tree_sum(values):
    """Balanced adder tree."""
    values = list(values)
    if not values:
        return Const(0)
    while len(values) > 1:
        values = [values[k] + values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


def check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")


def check_shape(name, shape):
    try:
        return Shape.cast(shape)
    except TypeError:
        raise TypeError(f"{name} must be a shape, not {shape!r}") from None


def style_attrs(styles, name):
    """Yosys attributes that place memory ``name`` where the mapper decided ("block" RAM or
    "logic"); none when it did not say."""
    style = (styles or {}).get(name)
    return {"ram_style": style} if style else None


def rom(m, name, words, width, addr, en, styles=None):
    """A read-only memory with a registered read (like block RAM) as submodule ``name``: the
    word at ``addr`` one cycle after ``en``; a constant when there is one word."""
    from amaranth.hdl import unsigned
    from amaranth.lib import memory
    if len(words) == 1:
        return Const(words[0], unsigned(width))
    mem = memory.Memory(shape=unsigned(width), depth=len(words), init=words, attrs=style_attrs(styles, name))
    m.submodules[name] = mem
    port = mem.read_port()
    m.d.comb += [port.addr.eq(addr), port.en.eq(en)]
    return port.data


def instantiated_models(verilog, models):
    """The simulation models ({cell: Verilog text}) of the cells ``verilog`` instantiates,
    joined, to append to it."""
    return "".join(model for cell, model in models.items()
                   if f"\n  {cell} " in verilog or f"\n  \\{cell} " in verilog)
