"""Stream kernels (twins of hdl/streams.py): width converters and FIFOs; the host format."""
import math
from dataclasses import dataclass

from .. import qgraph as qg
from ..resources import Memory
from .base import Kernel

FIFO_LATENCY = 2              # hdl.streams.Fifo.LATENCY (amaranth.lib.fifo.SyncFIFOBuffered)
WIDTH_CONVERTER_LATENCY = 1   # hdl.streams.Gather.LATENCY, hdl.streams.Split.LATENCY


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
        return {"shape": list(self.shape), "lanes": self.lanes, "bits": self.bits,
                "signed": self.signed,
                "beats_per_frame": self.beats, "scale": self.scale, "zero_point": self.zero_point,
                "order": "channels-last; lane 0 in the low bits of a beat"}


@dataclass(frozen=True, eq=False)
class WidthConverterKernel(Kernel):
    """``lanes_in`` codes per beat to ``lanes_out`` (hdl.streams.width_converters: a Gather or a
    Split, or both through their common divisor)."""
    kind = "WidthConverter"
    noun = "width converter"
    name: str
    code: qg.CodeType
    lanes_in: int
    lanes_out: int
    length: int

    @property
    def cycles_per_frame(self):
        return self.length // min(self.lanes_in, self.lanes_out)

    def needs(self, n):
        return -(-n * self.lanes_out // self.lanes_in)

    @property
    def beats_out(self):
        return self.length // self.lanes_out

    @property
    def latency(self):
        return WIDTH_CONVERTER_LATENCY

    @staticmethod
    def summary(entry):
        return "", f"{entry['lanes_in']}→{entry['lanes_out']} lanes"

    def held_codes(self):
        """Nothing held, and the rate into it is the rate out."""
        return 0, True

    def resources(self, family="ice40"):
        bits = max(self.lanes_in, self.lanes_out) * self.code.bits
        return {"lut": bits, "ff": 2 * bits, "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": self.kind, "name": self.name, "lanes_in": self.lanes_in,
                "lanes_out": self.lanes_out, "bits": self.code.bits, **self.timing_json()}


@dataclass(frozen=True, eq=False)
class FifoKernel(Kernel):
    """A queue of ``depth`` beats of ``lanes`` codes (hdl.streams.Fifo)."""
    kind = "FIFO"
    noun = "FIFO"
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
        return FIFO_LATENCY

    @staticmethod
    def summary(entry):
        return "", f"depth {entry['depth']}"

    def held_codes(self):
        """Its depth's beats, and the rate into it is the rate out."""
        return self.depth * self.lanes, True

    def needs(self, n):
        return n

    @property
    def beats_out(self):
        return self.length // self.lanes

    def memories(self):
        return [Memory("storage", self.lanes * self.code.bits, self.depth - 1, fifo=True)]

    def resources(self, family="ice40"):
        """Control and the output register of an amaranth.lib.fifo.SyncFIFOBuffered (the
        storage is a memory, see memories())."""
        bits, count = self.lanes * self.code.bits, math.ceil(math.log2(self.depth + 1))
        return {"lut": bits + 8 * count, "ff": bits + 4 * count, "dsp": 0, "bram_bits": 0}

    def to_json(self):
        return {"kind": self.kind, "name": self.name, "lanes": self.lanes, "bits": self.code.bits,
                "depth": self.depth, **self.timing_json()}


