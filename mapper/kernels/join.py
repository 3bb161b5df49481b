"""Join kernels (twins of hdl/join.py): a fork, two paths and the add or concat that joins them."""
from dataclasses import dataclass

import numpy as np

from .. import qgraph as qg
from ..numeric import signed_bits
from .base import Kernel, chain_beat_times, paced, path_needs, produced

ADD_LATENCY = 5               # hdl.join.AddUnit.LATENCY
CONCAT_LATENCY = 2            # hdl.join.ConcatUnit.LATENCY
FORK_LATENCY = 1              # the cycle beat_times counts for the fork (combinational in hdl)


class Join:
    """Where a branch's two paths meet (held by a ResidualKernel, not a kernel of the graph on
    its own): ``kind``, ``latency``, ``cycles_per_frame``, ``first_takes`` (beats taken from
    each input before one from the other), ``path_beats`` (beats per frame of each input),
    ``ready(a, b, n)`` (when output beats ``n`` have what they take from input beat times
    ``a`` and ``b``), ``describe()`` (its part of design.json), ``summary(entry)`` (the
    branch's columns in the report's table, as Kernel.summary) and ``resources()``."""


@dataclass(frozen=True, eq=False)
class AddKernel(Join):
    """The join of a residual block: onnxruntime's QLinearAdd of two streams in step as a
    proven integer line (mapper.requant.AddLine; hdl.join.AddUnit)."""
    kind = "Add"
    name: str
    node: qg.Add
    plan: object
    lanes: int
    a_code: qg.CodeType
    b_code: qg.CodeType
    length: int               # codes per frame

    @property
    def cycles_per_frame(self):
        return self.length // self.lanes

    @property
    def latency(self):
        return ADD_LATENCY

    @property
    def raw_add(self):
        """The line's constant for raw codes (the offsets a_lo, b_lo folded in)."""
        p = self.plan
        return p.add - p.mul_a * p.a_lo - p.mul_b * p.b_lo

    @property
    def sum_bits(self):
        """Width of the sum over every raw code (hdl.join.AddUnit's adders)."""
        p, a, b = self.plan, self.a_code, self.b_code
        return signed_bits(min(0, self.raw_add + p.mul_a * a.qmin + p.mul_b * b.qmin),
                           max(0, self.raw_add + p.mul_a * a.qmax + p.mul_b * b.qmax))

    @property
    def first_takes(self):
        """Beats the join takes from each input before it takes one from the other."""
        return (1, 1)

    @property
    def path_beats(self):
        return (self.length // self.lanes,) * 2

    def ready(self, a, b, n):
        """Beat n takes beat n of both inputs."""
        return np.maximum(a[n], b[n])

    def describe(self):
        p = self.plan
        return {"line": {"mul_a": p.mul_a, "mul_b": p.mul_b, "add": p.add, "shift": p.shift}}

    @staticmethod
    def summary(entry):
        line = entry["line"]
        return (str(entry["lanes"]), f"fork → 2 paths → add, (a·{line['mul_a']} + "
                f"b·{line['mul_b']} + K) >> {line['shift']}")

    def resources(self, family="ice40"):
        """Per lane: the four 16-entry digit tables (a LUT per bit each), three adders, the
        clamp."""
        w, out = self.sum_bits, self.node.code.bits
        digits = -(-self.a_code.bits // 4) + -(-self.b_code.bits // 4)
        lut = self.lanes * (digits * w + digits * w + 2 * out + 4) + 8
        ff = self.lanes * (self.a_code.bits + self.b_code.bits + digits * w + 2 * w + 2 * out) + 8
        return {"lut": lut, "ff": ff, "dsp": 0, "bram_bits": 0}


@dataclass(frozen=True, eq=False)
class ConcatKernel(Join):
    """The join of a channel concat (hdl.join.ConcatUnit): per pixel, the beats of input a,
    then those of input b, each through its QLinearConcat table when its scale differs."""
    kind = "Concat"
    name: str
    node: qg.Concat
    lanes: int
    channels: tuple           # (C_a, C_b)
    pixels: int

    @property
    def length(self):
        return sum(self.channels) * self.pixels

    @property
    def first_takes(self):
        return tuple(c // self.lanes for c in self.channels)

    @property
    def path_beats(self):
        return tuple(c // self.lanes * self.pixels for c in self.channels)

    def ready(self, a, b, n):
        """Per pixel, first_takes beats of a, then of b."""
        ca, cb = self.first_takes
        pixel, r = divmod(n, ca + cb)
        ia = np.where(r < ca, pixel * ca + r, pixel * ca + ca - 1)
        ib = np.where(r < ca, pixel * cb - 1, pixel * cb + r - ca)
        return np.maximum(a[ia], np.where(ib >= 0, b[np.maximum(ib, 0)], 0))

    @property
    def cycles_per_frame(self):
        return self.length // self.lanes

    @property
    def latency(self):
        return CONCAT_LATENCY

    def describe(self):
        return {"tables": [t is not None for t in self.node.tables]}

    @staticmethod
    def summary(entry):
        paths = " and ".join(str(len(p)) for p in entry["paths"])
        return str(entry["lanes"]), f"fork → 2 paths ({paths} kernels) → concat"

    def resources(self, family="ice40"):
        """Per lane: a ROM in logic per table (one LUT4 per output bit per 16 codes, and the
        multiplexers), the output register and its skid copy, the beat counter."""
        bits = self.node.code.bits
        tables = sum(t is not None for t in self.node.tables)
        rom = bits * ((1 << bits) // 16) * 21 // 16
        return {"lut": self.lanes * (tables * rom + bits) + 10, "ff": 2 * self.lanes * bits + 10,
                "dsp": 0, "bram_bits": 0}


@dataclass(frozen=True, eq=False)
class ResidualKernel(Kernel):
    """A fork (hdl.join.Fork), two paths of kernels, and the join where they meet again
    (AddKernel: a residual block; ConcatKernel), built as one hdl.join.Residual.  Each path
    ends in a FIFO deep enough that the graph cannot deadlock (required_depths) and runs at
    full rate (full_rate_depths); ``sized``: the paths end in those FIFOs (the builder sizes
    them on the paths without)."""
    noun = "Branch"
    exact_timing = False
    name: str
    paths: tuple              # (kernels of path a, of path b), each ending at the join's lanes
    join: Join
    lanes: int                # of the stream into the fork
    code: qg.CodeType
    fork_length: int          # codes per frame into the fork
    sized: bool = False

    @property
    def kind(self):
        return self.join.kind

    @property
    def children(self):
        return self.paths

    def body(self, path):
        """A path without its join FIFO (the FIFO being sized)."""
        return path[:-1] if self.sized and path else path

    def own_label(self):
        return f"the branch into {self.join.node.label}"

    @property
    def cycles_per_frame(self):
        return max(self.join.cycles_per_frame, self.fork_length // self.lanes)

    @property
    def latency(self):
        return FORK_LATENCY + self.join.latency

    def beat_times(self, arrive):
        """Each path's beat times from the fork's; a join beat leaves when the beats it takes
        from both paths are there, one per cycle at most."""
        a, b = (chain_beat_times(p, arrive) for p in self.paths)
        return paced(self.join.ready(a, b, np.arange(self.beats_out)) + self.latency, 1)

    def needs(self, n):
        return max(path_needs(p, n) for p in self.paths)

    def reach(self):
        """Per path: beats into the fork before that path's first output beats the join takes
        in a run (one for an add, a pixel's for a concat)."""
        return tuple(path_needs(p, n) for p, n in zip(self.paths, self.join.first_takes))

    def hold(self, path):
        """Beats into the fork that ``path`` certainly holds while its output waits: its FIFOs
        and line buffer up to the first kernel that changes the data rate (nothing is
        counted behind that: a lower bound)."""
        total = 0
        for k in self.body(path):
            codes, passes = k.held_codes()
            total += codes // self.lanes
            if not passes:
                return total
        return total

    @property
    def beats_out(self):
        return self.join.length // self.join.lanes

    def delay(self, path, ii):
        """A bound on the cycles from a frame's first beat into the fork to ``path``'s first
        output beat when every kernel streams at the design's rate (one frame per ``ii``
        cycles): each kernel waits for the beats it needs, then adds its latency."""
        t, beats_in = 0.0, self.fork_length // self.lanes
        for k in path:
            t += (k.needs(1) - 1) * ii / beats_in + k.latency
            beats_in = k.beats_out
        return t

    def full_rate_depths(self, ii):
        """Depth of the end FIFO of each path for full rate: it holds what arrives while the
        other path is still computing the same beats (the difference of the two delays, at
        one frame of join beats per ``ii`` cycles), and never less than required_depths."""
        delays = [self.delay(p, ii) for p in self.paths]
        beats = self.join.path_beats
        return tuple(max(need, -(-int(max(0.0, delays[1 - k] - delays[k]) * beats[k]) // ii) + 2)
                     for k, need in enumerate(self.required_depths()))

    def required_depths(self):
        """Depth of the FIFO at the end of each path (in join beats).  Before the join takes
        anything, the other path needs ``reach`` beats into the fork; the fork sends each beat
        to both paths, so this path receives them too.  What it cannot keep inside (``hold``)
        comes out as output beats, at most ``produced(reach)`` of them, which the end FIFO must
        hold; with less, the fork waits on a full path while the join waits on the other — a
        deadlock.  Minimum 3 (full rate), plus the beats the join takes in a run."""
        reach, out = self.reach(), []
        for k, path in enumerate(self.paths):
            waiting = reach[1 - k] if reach[1 - k] > self.hold(path) else 0
            takes = self.join.first_takes[1 - k]
            out.append(max(3, produced(self.body(path), waiting) + 2 + takes))
        return tuple(out)

    def resources(self, family="ice40"):
        fork = {"lut": 4, "ff": 2, "dsp": 0, "bram_bits": 0}
        return {key: v + fork[key] for key, v in self.join.resources(family).items()}

    def to_json(self):
        return {"kind": self.join.kind, "name": self.join.name, "layer": self.join.node.name,
                "onnx_node": self.join.node.onnx_node, "lanes": self.join.lanes,
                "paths": [[k.name for k in p] for p in self.paths], **self.join.describe(),
                **self.timing_json()}
