"""The kernel protocol every Dataflow kernel implements (DESIGN.md §3).

A kernel is a frozen dataclass with a ``name`` field.  The timing model (``beat_times``), the
estimator (``resources.estimate``), ``Dataflow`` and the lowering read kernels through these
members only, never by asking which class a kernel is:

- ``kind``: the kernel's kind as design.json writes it; ``noun``: how messages name it;
- ``beats_out``, ``cycles_per_frame``, ``latency``, ``issue_interval``;
- ``needs(n)``: the input beats before its ``n``-th output beat (``n`` an int or an array);
- ``beat_times(arrive)``: when its output beats leave, given when its input beats arrive;
- ``children``: the kernel chains inside it (a branch's paths), ``()`` for most;
- ``multipliers``, ``multiplier_luts``, ``folding``, ``macs``: the products folding chose;
- ``resources(family)``: LUT, FF, DSP and block-RAM bits on a target family; ``memories()``;
- ``layer``: the QGraph node it computes (None for plumbing); ``to_json()``, and
  ``summary(entry)``: its (fold, detail) columns in the report's table, from that entry."""
import abc

import numpy as np

from .. import limits


def paced(ready, step):
    """t[n] = max(ready[n], t[n − 1] + step)."""
    n = np.arange(len(ready)) * step
    return np.maximum.accumulate(ready - n) + n


class Kernel(abc.ABC):
    """One hardware unit of the Dataflow graph (see the module docstring for the members)."""
    kind = ""                     # design.json's "kind"
    noun = ""                     # the kernel in messages: "MVU 'mvu_dense0' of Dense 'dense0'"
    exact_timing = True           # beat_times follows it exactly (no back-pressure inside)
    children = ()                 # chains of kernels inside this one (a branch's two paths)
    multipliers = 0               # products per cycle that folding chose (pe × simd)
    macs = 0                      # multiply-accumulates per frame
    multiplier_luts = 0           # LUTs of those products when built in logic
    folding = None                # (pe, simd) for a kernel folding chose, else None
    layer = None                  # the QGraph node it computes, None for plumbing
    serial_interval = None        # cycles between the beats it hands a serial requantizer, None
                                  # where none may follow it

    @property
    @abc.abstractmethod
    def beats_out(self):
        """Output beats per frame."""

    @property
    @abc.abstractmethod
    def cycles_per_frame(self):
        """Cycles per frame at full rate."""

    @property
    @abc.abstractmethod
    def latency(self):
        """Cycles from the input beats an output beat needs to that output beat."""

    @abc.abstractmethod
    def needs(self, n):
        """Input beats before the ``n``-th output beat (an int, or an array of them)."""

    @abc.abstractmethod
    def resources(self, family="ice40"):
        """{"lut", "ff", "dsp", "bram_bits"} on target family ``family`` (products in logic)."""

    @abc.abstractmethod
    def to_json(self):
        """The kernel in design.json."""

    @staticmethod
    def summary(entry):
        """(fold, detail): the report table's columns for its design.json ``entry``."""
        return "", ""

    def memories(self):
        """The memories it holds (resources.Memory): where each goes is decided there."""
        return []

    def stored_bits(self):
        """Bits the kernel stores (its memories; an MVU adds its weights unrolled in logic)."""
        return sum(m.bits for m in self.memories())

    @property
    def issue_interval(self):
        """Cycles between output beats at full rate."""
        return self.cycles_per_frame / self.beats_out

    @property
    def beat_latency(self):
        """Cycles from the beat it needs to an output beat, as beat_times follows them."""
        return self.latency

    def needs_array(self):
        """needs(n) for the beats of one frame, n = 1 … beats_out."""
        return np.asarray(self.needs(np.arange(1, self.beats_out + 1, dtype=np.int64)), np.int64)

    def beat_times(self, arrive):
        """Output beat n leaves ``beat_latency`` after the input beats it needs are in, and no
        sooner than ``issue_interval`` after beat n − 1.  A kernel of more than limits.BEATS
        beats per frame is refused before its arrays are made."""
        error = limits.beats_violation(self)
        if error:
            raise error
        return paced(arrive[self.needs_array() - 1] + self.beat_latency, self.issue_interval)

    def held_codes(self):
        """(codes it certainly holds while its output waits, whether the kernels behind it still
        see its input's rate): what a branch's deadlock bound counts on (join.ResidualKernel)."""
        return 0, False

    def timing_json(self):
        """The members every kernel's design.json entry ends with."""
        return {"cycles_per_frame": self.cycles_per_frame, "latency": self.latency,
                "estimate": self.resources()}

    def own_label(self):
        """How messages name it with the layer it computes, or None without one."""
        return None if self.layer is None else f"{self.noun} '{self.name}' of {self.layer.label}"


def flat(kernels):
    """Every kernel, the paths of a branch before its join, in stream order."""
    for k in kernels:
        for path in k.children:
            yield from flat(path)
        yield k


def chain_beat_times(kernels, arrive):
    """When each output beat of a frame leaves a chain of ``kernels`` whose input beat i
    arrives at ``arrive[i - 1]``, without back-pressure (each kernel's ``beat_times``)."""
    for k in kernels:
        arrive = k.beat_times(arrive)
    return arrive


def path_needs(kernels, n):
    """Beats into a chain of kernels before its ``n``-th output beat."""
    for k in reversed(kernels):
        n = k.needs(n)
    return n


def produced(kernels, n):
    """The most output beats a chain of kernels can produce from ``n`` input beats (the largest
    j with path_needs(kernels, j) ≤ n; path_needs is monotone)."""
    if n <= 0:
        return 0
    lo, hi = 0, 1
    while path_needs(kernels, hi) <= n:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if path_needs(kernels, mid) <= n else (lo, mid)
    return lo
