"""A narrow I/O shell: frames enter and leave a design as bytes, so that a design's resources
and Fmax are measured through a handful of pins (the iCE40UP5K SG48 has 39 I/Os)."""
from amaranth.hdl import Module, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .streams import Chain, Gather, Split, lanes_signature

BYTE = unsigned(8)


class Reinterpret(wiring.Component):
    """Pass beats through, reading the payload bits with another layout (zero-extended or truncated)."""

    def __init__(self, i_signature, o_signature):
        super().__init__({"i": In(i_signature), "o": Out(o_signature)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [Value.cast(self.o.payload).eq(Value.cast(self.i.payload)),
                     self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        return m


def _byte_lanes(signature):
    width = len(Value.cast(signature.create().payload))
    return -(-width // 8)


def narrow_shell(design):
    """``design`` (a component with stream members i and o, and ``load`` where it has one)
    behind byte streams."""
    i_sig = design.signature.members["i"].signature.flip()
    o_sig = design.signature.members["o"].signature
    n_in, n_out = _byte_lanes(i_sig), _byte_lanes(o_sig)
    chain = Chain([
        Gather(shape=BYTE, lanes=1, factor=n_in),
        Reinterpret(lanes_signature(BYTE, n_in), i_sig),
        design,
        Reinterpret(o_sig, lanes_signature(BYTE, n_out)),
        Split(shape=BYTE, lanes=1, factor=n_out),
    ])
    return _ByteLoad(chain, design) if "load" in design.signature.members else chain


class _ByteLoad(wiring.Component):
    """``chain`` (the shell around ``design``) with ``design``'s load stream taken as bytes,
    the low byte of a word first."""

    def __init__(self, chain, design):
        self.chain, self.design = chain, design
        load_sig = design.signature.members["load"].signature.flip()
        self._load_sig = load_sig
        super().__init__({"i": In(chain.signature.members["i"].signature.flip()),
                          "o": Out(chain.signature.members["o"].signature),
                          "load": In(lanes_signature(BYTE, 1))})

    def elaborate(self, platform):
        m = Module()
        n = _byte_lanes(self._load_sig)
        m.submodules.chain = self.chain
        m.submodules.load_gather = gather = Gather(shape=BYTE, lanes=1, factor=n)
        m.submodules.load_bytes = bytes_ = Reinterpret(lanes_signature(BYTE, n), self._load_sig)
        wiring.connect(m, wiring.flipped(self.i), self.chain.i)
        wiring.connect(m, self.chain.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.load), gather.i)
        wiring.connect(m, gather.o, bytes_.i)
        wiring.connect(m, bytes_.o, self.design.load)
        return m
