"""Folding to a target's whole budget: the fastest balanced folding whose *estimated* LUT, FF,
block RAM, DSP and SPRAM (mapper.resources) fit the device under utilization caps, chosen
before any tool runs.

The candidates are every frame time a legal (pe, simd) of some layer gives; for each, from the
fastest, ``folding.for_cycles`` gives every layer its cheapest fold that keeps up, the Dataflow
graph is built and estimated, and the first that fits is the answer.  Every candidate is tried
(a few dozen, each a build of the graph without Verilog), so the answer is the fastest that
fits even where resources do not fall monotonically with the frame time (block RAM tiling,
serial requantizers)."""
import math
from dataclasses import dataclass, field

from . import dataflow as df
from . import folding as fl
from . import resources
from .errors import QloomError
from .targets import TARGETS

RESOURCES = ("lut", "ff", "bram", "dsp", "spram")
NAMES = {"lut": "LUT", "ff": "FF", "bram": "BRAM", "dsp": "DSP", "spram": "SPRAM", "cells": "logic cells"}
# room left for place and route: a LUT-full ECP5 or iCE40 design routes badly above ~80 %
DEFAULT_CAPS = {"lut": 0.80, "ff": 0.80, "bram": 0.90, "dsp": 1.0, "spram": 1.0}
# iCE40: a logic cell holds a LUT and a flip-flop, and about 55 % of the flip-flops do not pack
# with a LUT of their own logic (nextpnr-ice40's ICESTORM_LC count: the digits MLP filled to the
# UP5K, 3,938 cells for 2,613 LUTs and 2,332 FFs, 0.57; the digits CNN, 3,619 for 2,574 and
# 1,982, 0.53)
UNPACKED_FF = 0.55


def allowed(target, caps):
    """{resource: units the design may use} on ``target`` under ``caps`` (fractions)."""
    avail = TARGETS[target]["available"]
    return {k: math.floor(avail[k] * caps[k] + 1e-9) for k in RESOURCES}


def usage(estimate, target):
    """The estimate as the caps count it: on iCE40 also its logic cells (LUTs plus the
    flip-flops that take a cell of their own), held to the LUT cap."""
    used = {k: estimate.get(k, 0) for k in RESOURCES}
    if TARGETS[target]["logic_cells"]:
        used["cells"] = estimate["lut"] + round(UNPACKED_FF * estimate["ff"])
    return used


def over(estimate, target, caps=None):
    """[(resource, used, allowed)] of each cap ``estimate`` exceeds on ``target`` (empty: it fits)."""
    caps = {**DEFAULT_CAPS, **(caps or {})}
    limit = allowed(target, caps)
    limit["cells"] = limit["lut"]
    return [(k, v, limit[k]) for k, v in usage(estimate, target).items() if v > limit[k]]


def describe(excess, target, caps=None):
    """'12,443 LUT of the 4,224 allowed (80 % of 5,280), …' for the list ``over`` returns."""
    caps = {**DEFAULT_CAPS, **(caps or {})}
    avail = TARGETS[target]["available"]
    parts = []
    for k, used, limit in excess:
        base = "lut" if k == "cells" else k
        parts.append(f"{used:,} {NAMES[k]} of the {limit:,} allowed ({percent(caps[base])} of {avail[base]:,})")
    return ", ".join(parts)


def percent(fraction):
    return f"{fraction * 100:g} %"


@dataclass(frozen=True)
class Fit:
    """The folding chosen for ``target``: its Dataflow graph and estimate, and what stopped a
    faster one (``binds``: the caps the next faster candidate exceeded, empty when the fastest
    candidate of all fits)."""
    target: str
    caps: dict
    folding: dict
    dataflow: object
    estimate: dict
    binds: list = field(default_factory=list)
    faster_cycles: int = 0          # the frame time of that next faster candidate

    def sentence(self):
        d = self.dataflow
        head = (f"folded for the {TARGETS[self.target]['device']}: {d.cycles_per_frame:,} cycles per frame, "
                f"{d.multipliers:,} multipliers" + (", its buffers in block RAM" if self.block_rams else "")
                + f"; estimated {self.used()}")
        if not self.binds:
            return head + (f"; no resource binds: {d.bottleneck.name} sets the pace (a faster fold of "
                           "the layers would not make the frame faster).")
        return (head + f"; {' and '.join(NAMES[k] for k, _, _ in self.binds)} "
                f"{'binds' if len(self.binds) == 1 else 'bind'}: the next faster folding "
                f"({self.faster_cycles:,} cycles per frame) needs {describe(self.binds, self.target, self.caps)}.")

    @property
    def block_rams(self):
        """Its RAMs pinned to block RAM (dataflow.pin_rams): where Yosys would put them, the LUTs
        do not fit."""
        return any(getattr(k, "block_rams", False) for k in self.dataflow.all_kernels)

    def used(self):
        avail = TARGETS[self.target]["available"]
        return ", ".join(f"{self.estimate[k]:,} / {avail[k]:,} {NAMES[k]}" for k in RESOURCES
                         if k != "spram" or avail[k])

    def to_json(self):
        return {"target": self.target, "caps": self.caps, "estimate": self.estimate,
                "binds": [{"resource": k, "needed": used, "allowed": limit} for k, used, limit in self.binds],
                "faster_cycles_per_frame": self.faster_cycles or None,
                "rams": "block" if self.block_rams else "auto"}


def fit(graph, plans, target, caps=None, source="model"):
    """The fastest balanced Fit of ``graph`` on ``target`` under ``caps`` ({resource: fraction},
    DEFAULT_CAPS for those not given); refused, with what the smallest folding needs, when even
    that does not fit.  A folding is tried as built for the target (its LUT-built products
    split in two stages, dataflow.build), then with its buffers pinned to block RAM, then
    without the split and again pinned: the first that fits is taken, so the split spends only
    the LUTs a faster folding cannot use.  Where block RAM does not fit and the target has
    SPRAM, weight memories move there first, the largest first (_spram)."""
    caps = {**DEFAULT_CAPS, **(caps or {})}
    seen, last = set(), None
    for cycles in fl.candidates(graph):
        folding = fl.for_cycles(graph, cycles)
        key = tuple(sorted(folding.items()))
        if key in seen:
            continue
        seen.add(key)
        dataflow = df.build(graph, folding, plans, source=source, target=target)
        if dataflow.cycles_per_frame > cycles:      # a kernel without products is slower: fold
            folding = fl.for_cycles(graph, dataflow.cycles_per_frame)    # to its pace, not faster
            key = tuple(sorted(folding.items()))
            if key in seen:
                continue
            seen.add(key)
            dataflow = df.build(graph, folding, plans, source=source, target=target)
        estimate = resources.estimate(dataflow, target)
        excess = over(estimate, target, caps)
        layers = ()
        if any(k == "bram" for k, _, _ in excess) and TARGETS[target]["spram_cell"]:
            layers = _spram(dataflow, target, caps, source)
            if layers:
                dataflow = df.in_spram(dataflow, layers, target, source)
                estimate = resources.estimate(dataflow, target)
                excess = over(estimate, target, caps)
        if excess and any(k != "bram" for k, _, _ in excess):   # LUTs for block RAMs, if they are left
            for other in _cheaper(dataflow, lambda: df.build(graph, folding, plans, source=source, target=target,
                                                             split=False, spram=layers)):
                other_estimate = resources.estimate(other, target)
                if not over(other_estimate, target, caps):
                    dataflow, estimate, excess = other, other_estimate, []
                    break
        if not excess:
            binds, faster = (last[0], last[1]) if last else ([], 0)
            return Fit(target, caps, folding, dataflow, estimate, binds, faster)
        last = (excess, dataflow.cycles_per_frame)
    device, needs = TARGETS[target]["device"], describe(last[0], target, caps)
    raise DoesNotFit(f"{source}: does not fit the {device} at any folding: its smallest (every layer at "
                     f"pe = simd = 1, {last[1]:,} cycles per frame) needs an estimated {needs}. Build "
                     "for a larger target" + (", or raise --utilization" if any(caps[k] < 1 for k, _, _ in last[0]
                                                                                 if k in caps) else "") + ".",
                     needs)


def _spram(dataflow, target, caps, source):
    """The layers whose weights go from block RAM to SPRAM: the largest first while SPRAMs are
    left under their cap, until block RAM fits its own (all that fit when it never does)."""
    limit, layers = allowed(target, caps), []
    for layer in df.spram_candidates(dataflow, target):
        estimate = resources.estimate(df.in_spram(dataflow, layers + [layer], target, source), target)
        if estimate["spram"] > limit["spram"]:
            continue
        layers.append(layer)
        if estimate["bram"] <= limit["bram"]:
            break
    return tuple(layers)


def _cheaper(dataflow, unsplit):
    """``dataflow`` with fewer LUTs, in the order fit tries them: its buffers pinned to block
    RAM; where it splits products, built without (``unsplit()``), then that pinned."""
    yield df.pin_rams(dataflow)
    if any(getattr(k, "split_products", False) for k in dataflow.all_kernels):
        plain = unsplit()
        yield plain
        yield df.pin_rams(plain)


class DoesNotFit(QloomError):
    """Not even the smallest folding of a model fits the target under the caps; ``needs``: what
    it needs beyond them ('12,443 LUT of the 4,224 allowed (80 % of 5,280), …')."""
    def __init__(self, message, needs=""):
        super().__init__(message)
        self.needs = needs


def parse_caps(text):
    """--utilization: 'PCT' (every resource) or 'lut=PCT,bram=PCT,…', percentages above 0 and
    at most 100; returns {resource: fraction}."""
    want = ("give --utilization a percentage for every resource (e.g. 70) or per resource, "
            "e.g. lut=85,bram=95 (resources: lut, ff, bram, dsp, spram; defaults "
            + ", ".join(f"{k} {percent(v)}" for k, v in DEFAULT_CAPS.items()) + ")")
    text = text.strip()
    items = [p.strip() for p in text.split(",")] if text else []
    if not items or any(not p for p in items):
        raise ValueError(f"{text!r} is empty or has an empty part; {want}")
    if len(items) == 1 and "=" not in items[0]:
        return dict.fromkeys(RESOURCES, _fraction(items[0], want))
    caps = {}
    for p in items:
        key, eq, value = p.partition("=")
        key = key.strip().lower()
        if not eq or key not in RESOURCES:
            raise ValueError(f"{p!r} is not RESOURCE=PCT with RESOURCE one of {', '.join(RESOURCES)}; {want}")
        if key in caps:
            raise ValueError(f"{key} is given twice; {want}")
        caps[key] = _fraction(value, want)
    return caps


def _fraction(text, want):
    t = text.strip().rstrip("%").strip()
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a number; {want}") from None
    if not 0 < v <= 100:        # also refuses NaN
        raise ValueError(f"{text!r} is not a percentage above 0 and at most 100; {want}")
    return v / 100
