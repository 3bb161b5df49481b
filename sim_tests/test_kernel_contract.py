"""The contract between each Dataflow kernel (mapper/kernels/) and the hdl units it lowers to
(qloom/lower.py), checked on every kernel of the shipped digits designs (at 32 and 4
multipliers) and of random residual, concat and pooling networks, flat over branches:

- every concrete Kernel (and Join) class has a registered lowering, not the fallback, and
  every kernel lowers to components;
- the units' latency is the kernel's (the relations where they differ are stated in
  ``LATENCY_RELATIONS``);
- the units' stream lanes and lane shapes are the kernel's (``PORTS``);
- ``resources(family)`` gives four non-negative ints on every target family, and
  resources.estimate_kernel works on every target;
- every hdl constant mapper/kernels copies (a constant whose comment names an hdl member)
  equals that member, and the helpers that mirror hdl formulas agree with them."""
import functools
import glob
import importlib
import inspect
import numbers
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, wiring

from conftest import DIGITS, REPO
from conv_factory import quantize, random_cnn, random_concat, random_residual
from qloom import compile as qc, lower
from qloom.hdl import join as hjoin, mvu as hmvu, requant as hrequant
from qloom.mapper import kernels as K, qgraph as qg, requant as rq, resources
from qloom.mapper.kernels import join as kjoin
from qloom.mapper.targets import TARGETS

FAMILIES = sorted({t["family"] for t in TARGETS.values()})


def _cnn(rng, **kw):
    model, shape, _ = random_cnn(rng, 1, dense=True, **kw)
    return model, shape


# (name, maker, keyword arguments, random seed, format, activation type); the average pool is
# test_rtl_cnn's (a float32 window sum and its requantizer)
RANDOM_NETS = [
    ("residual0", random_residual, {}, 300, "QDQ", "uint8"),
    ("residual1", random_residual, {"downsample": True, "head": "gap"}, 301, "QOperator", "int8"),
    ("residual2", random_residual, {"head": "none"}, 302, "QDQ", "int8"),
    ("concat0", random_concat, {}, 500, "QDQ", "uint8"),
    ("concat1", random_concat, {"identity": True}, 501, "QOperator", "uint8"),
    ("avgpool2", _cnn, {"avgpool": dict(kernel_shape=(3, 2), strides=(2, 1), pads=(1, 0, 1, 0),
                                        count_include_pad=1)}, 802, "QDQ", "uint8"),
]


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    """(label, Dataflow) of every design the contract is checked on."""
    out = []
    models = sorted(glob.glob(str(DIGITS / "*_qdq.onnx")) + glob.glob(str(DIGITS / "*_qop.onnx")))
    assert models, "no shipped digits models"
    for path in models:
        for budget in (32, 4):
            out.append((f"{Path(path).name}@{budget}",
                        qc.compile_model(path, max_multipliers=budget).dataflow))
    tmp = tmp_path_factory.mktemp("contract")
    for name, make, kw, seed, fmt, act in RANDOM_NETS:
        rng = np.random.default_rng(seed)
        model, shape = make(rng, **kw)
        x = rng.normal(size=(20, *shape)).astype(np.float32)
        path = quantize(model, tmp / f"{name}.onnx", x, fmt, act)
        out.append((name, qc.compile_model(path).dataflow))
    return out


@pytest.fixture(scope="module")
def lowered(designs):
    """(label, dataflow, kernel, its units) for every kernel, flat over branches."""
    return [(f"{label}: {type(k).__name__} {k.name!r}", flow, k, lower.lower(k))
            for label, flow in designs for k in flow.all_kernels]


def concrete(root):
    """Every concrete subclass of the base class ``root``, recursively."""
    found, todo = [], list(root.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if not inspect.isabstract(cls) and cls not in found:
            found.append(cls)
    return found


def registered(dispatcher, cls):
    """Whether ``dispatcher`` (a functools.singledispatch) has a function registered for
    ``cls`` itself (not its fallback, nor a base class's: a subclass of a kernel is a new
    kernel, and says how it lowers)."""
    own = dispatcher.registry.get(cls)
    return own is not None and own is not dispatcher.registry[object]


def test_every_kernel_class_has_a_lowering():
    kernels, joins = concrete(K.Kernel), concrete(K.Join)
    assert K.MVUKernel in kernels and K.AddKernel in joins
    missing = [c.__name__ for c in kernels if not registered(lower.lower, c)]
    missing += [c.__name__ for c in joins if not registered(lower.lower_join, c)]
    missing += [c.__name__ for c in concrete(rq.Implementation)
                if not registered(lower.requant_circuit, c)]
    assert not missing, f"no lowering registered for {', '.join(missing)}"


def test_every_kernel_class_is_in_the_designs(lowered):
    """The designs below exercise every concrete kernel and join class (a new kernel needs a
    network here that builds it)."""
    seen = {type(k) for _, _, k, _ in lowered}
    seen |= {type(k.join) for _, _, k, _ in lowered if isinstance(k, K.ResidualKernel)}
    missing = set(concrete(K.Kernel)) - seen | set(concrete(K.Join)) - seen
    assert not missing, f"no design builds {sorted(c.__name__ for c in missing)}"


def test_every_kernel_lowers_to_components(lowered):
    for label, _, k, units in lowered:
        assert registered(lower.lower, type(k)), label
        assert units and all(isinstance(u, wiring.Component) for u in units), label


# How a kernel's latency relates to its units' (default: one unit, the same latency).
def _serial_requant(k, units):
    """A serial requantizer's kernel latency adds its lag (the cycles it holds its producer
    back per frame) to the unit's; beat_times paces on the unit's own latency and period."""
    (u,) = units
    return (k.latency == u.latency + k.lag and k.beat_latency == u.latency
            and k.period == u.period)


def _width_converter(k, units):
    """One Gather or Split; where the lanes share only a divisor (a Split then a Gather) the
    kernel counts one unit's latency (WIDTH_CONVERTER_LATENCY) for the pair."""
    return k.latency == units[0].latency and all(u.latency == units[0].latency for u in units)


def _residual_latency(k, units):
    """The branch's latency is the fork's and the join's (the paths' kernels are checked on
    their own): the timing model counts one cycle for the fork (kernels.join.FORK_LATENCY)
    where hdl.join.Fork is combinational (LATENCY 0), so kernel = unit + 1."""
    (u,) = units
    return (k.latency == u.latency + kjoin.FORK_LATENCY - hjoin.Fork.LATENCY
            and k.join.latency == u.join.latency)


LATENCY_RELATIONS = {K.ResidualKernel: _residual_latency, K.WidthConverterKernel: _width_converter}


def latency_holds(k, units):
    if isinstance(k, K.RequantKernel) and k.serial:
        return _serial_requant(k, units)
    relation = LATENCY_RELATIONS.get(type(k))
    if relation:
        return relation(k, units)
    return len(units) == 1 and k.latency == units[0].latency


def test_units_have_the_kernels_latency(lowered):
    for label, _, k, units in lowered:
        assert all(isinstance(u.latency, numbers.Integral) for u in units), label
        assert latency_holds(k, units), (label, k.latency, [u.latency for u in units])


def code(c):
    return signed(c.bits) if c.signed else unsigned(c.bits)


def acc(k):
    return signed(k.acc_bits)


# Per kernel class: ((lanes, lane shape) into its first unit, (lanes, shape) out of its last).
PORTS = {
    K.MVUKernel: lambda k: ((k.simd, code(k.in_code)), (k.pe, acc(k))),
    K.DepthwiseKernel: lambda k: ((k.pe, code(k.in_code)), (k.pe, acc(k))),
    K.RequantKernel: lambda k: ((k.pe, acc(k)), (k.pe, code(k.node.code))),
    K.WidthConverterKernel: lambda k: ((k.lanes_in, code(k.code)), (k.lanes_out, code(k.code))),
    K.FifoKernel: lambda k: ((k.lanes, code(k.code)),) * 2,
    K.WindowKernel: lambda k: ((k.lanes, code(k.code)), (k.lanes_out, code(k.code))),
    K.MaxPoolKernel: lambda k: ((k.lanes, code(k.code)),) * 2,
    K.SumPoolKernel: lambda k: ((k.pe, code(k.code)), (k.pe, acc(k))),
    K.FloatSumKernel: lambda k: ((k.pe, code(k.code)), (k.pe, acc(k))),
    K.ResidualKernel: lambda k: ((k.lanes, code(k.code)), (k.join.lanes, code(k.join.node.code))),
}
# A join's two inputs and its output.
JOIN_PORTS = {
    K.AddKernel: lambda j: {"a": (j.lanes, code(j.a_code)), "b": (j.lanes, code(j.b_code)),
                            "o": (j.lanes, code(j.node.code))},
    K.ConcatKernel: lambda j: {p: (j.lanes, code(j.node.code)) for p in "abo"},
}


def lanes_of(unit, port):
    """(lanes, lane shape) of a unit's stream member ``port``."""
    layout = unit.signature.members[port].signature.members["payload"].shape
    assert isinstance(layout, data.ArrayLayout), (unit, port, layout)
    return layout.length, Shape.cast(layout.elem_shape)


def test_units_have_the_kernels_lanes_and_widths(lowered):
    assert set(PORTS) >= set(concrete(K.Kernel)), "a kernel class without its PORTS entry"
    assert set(JOIN_PORTS) >= set(concrete(K.Join)), "a join class without its JOIN_PORTS entry"
    for label, _, k, units in lowered:
        into, out = PORTS[type(k)](k)
        assert lanes_of(units[0], "i") == into, label
        assert lanes_of(units[-1], "o") == out, label
        for a, b in zip(units, units[1:]):
            assert lanes_of(a, "o") == lanes_of(b, "i"), label
        if isinstance(k, K.ResidualKernel):
            join = units[0].join
            for port, want in JOIN_PORTS[type(k.join)](k.join).items():
                assert lanes_of(join, port) == want, (label, port)
            for path, chain in zip(k.paths, units[0].paths):
                assert lanes_of(chain, "i") == into, label
                assert lanes_of(chain, "o")[0] == k.join.lanes, label


def _counts(r, keys):
    return set(r) == keys and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                  and v >= 0 for v in r.values())


def test_resources_on_every_target(lowered):
    for label, flow, k, _ in lowered:
        for family in FAMILIES:
            r = k.resources(family)
            assert _counts(r, {"lut", "ff", "dsp", "bram_bits"}), (label, family, r)
        for target in TARGETS:
            r = resources.estimate_kernel(k, flow, target)
            assert _counts(r, {"lut", "ff", "dsp", "bram", "spram"}), (label, target, r)


MIRROR = re.compile(r"^([A-Z][A-Z0-9_]*) = (.+?)\s+#(.*)$")
HDL_NAME = re.compile(r"\bhdl\.[A-Za-z_][\w.]*[A-Za-z0-9_]")


def resolve(dotted):
    """The object qloom.<dotted> names (a module's member, a class's member)."""
    parts = dotted.split(".")
    obj = importlib.import_module("qloom." + ".".join(parts[:2]))
    for p in parts[2:]:
        obj = getattr(obj, p)
    return obj


def mirrored_constants():
    """(kernel module, constant, its value, the hdl member its comment names) for every
    module-level constant in mapper/kernels/ whose comment names one."""
    found = []
    for path in sorted((REPO / "mapper" / "kernels").glob("*.py")):
        module = importlib.import_module(f"qloom.mapper.kernels.{path.stem}")
        for line in path.read_text().splitlines():
            m = MIRROR.match(line)
            if m:
                for name in HDL_NAME.findall(m.group(3)):
                    found.append((path.stem, m.group(1), getattr(module, m.group(1)), name))
    return found


def test_copied_hdl_constants_equal_the_hdl_members():
    found = mirrored_constants()
    names = {c for _, c, _, _ in found}
    assert names >= {"ADD_LATENCY", "CONCAT_LATENCY", "MVU_LEVELS_PER_STAGE", "DEPTHWISE_LATENCY",
                     "PRODUCT_CHUNK", "FIFO_LATENCY", "WIDTH_CONVERTER_LATENCY", "WINDOW_LATENCY",
                     "WINDOW_QUEUE", "MAX_POOL_LATENCY", "SUM_POOL_LATENCY", "FLOAT_SUM_LATENCY"}
    for module, const, value, name in found:
        member = resolve(name)
        assert not inspect.isclass(member), f"{module}.{const}: name the member of {name}"
        assert value == member, f"{module}.{const} = {value}, {name} = {member}"


def test_mirrored_formulas_equal_the_hdl_ones():
    """The kernels' copies of hdl formulas: the MVU's adder-tree stages and latency, the adder
    levels of a requantizer."""
    mvu = functools.partial(hmvu.MVU, pe=1, input_shape=unsigned(4), acc_shape=signed(16))
    for simd in (1, 2, 3, 4, 5, 8, 15, 16, 17, 31, 32, 33, 64, 100, 256, 257):
        unit = mvu(weights=np.ones((1, simd), int), bias=np.zeros(1, int), simd=simd)
        assert K.mvu_tree_stages(simd) == unit.tree_stages, simd
        assert K.mvu_latency(simd) == unit.latency, simd
    for n in range(1, 70):
        assert K.adder_levels(n) == len(hrequant.adder_stages(n, ())[0]), n


@pytest.mark.parametrize("kind,params", [
    ("shift", {"exponent": [1, 2, 0, 3]}),
    ("thresholds", {"base": [0] * 4, "thresholds": [[-5, 0, 7]] * 4}),
    ("threshold-search", {"base": [0] * 4, "search": [[-5, 0, 7]] * 4}),
    ("mul-add-shift", {"mul": [3, 100, 7, 1], "add": [0, 5, -3, 1]}),
])
def test_requant_latency_of_every_kind(kind, params):
    """requant_latency of each kind (the designs above build only some) is hdl.requant.Requant's."""
    unit = hrequant.Requant(kind=kind, params=params, channels=4, pe=2, acc_shape=signed(12),
                            out_shape=unsigned(8), lo=0, hi=255, shift=4)
    mul_bits = max(params["mul"]).bit_length() + 1 if kind == "mul-add-shift" else 0
    depth = 2 if kind == "threshold-search" else 0
    assert K.requant_latency(kind, mul_bits, 0, depth) == unit.latency


def test_width_converter_through_a_common_divisor():
    """Lanes that share only a divisor lower to a Split then a Gather (see _width_converter)."""
    k = K.WidthConverterKernel("w", qg.CodeType(8, False), 2, 3, 12)
    units = lower.lower(k)
    assert [type(u).__name__ for u in units] == ["Split", "Gather"]
    assert latency_holds(k, units)
    assert lanes_of(units[0], "i") == (2, unsigned(8))
    assert lanes_of(units[-1], "o") == (3, unsigned(8))


def test_narrowed_parameters_lower_to_the_kernels_rows(lowered):
    """A serial requantizer with its parameters as rows (RequantKernel.param_words) lowers to a
    hdl.requant.SerialRequant whose ROM is the kernel's memory, width and depth, and whose
    period and latency are the kernel's; the rows hold the wide word's bits, row 0 the lowest."""
    from dataclasses import replace
    from amaranth.hdl import Fragment
    checked = 0
    for label, _, k, _ in lowered:
        if not (isinstance(k, K.RequantKernel) and k.serial and k.fold > 1):
            continue
        rows = {}
        for words in (1, 2, 3):
            narrow = replace(k, param_words=words)
            (unit,) = lower.lower(narrow)
            rom = next(sub._data for sub, name, *_ in Fragment.get(unit, None).subfragments if name == "params")
            (mem,) = [m for m in narrow.memories() if m.name == "params"]
            assert (Shape.cast(rom.shape).width, rom.depth) == (mem.width, mem.depth), (label, words)
            assert _serial_requant(narrow, [unit]) and unit.param_words == words, (label, words)
            rows[words] = [rom.shape.const(v).as_value().value if isinstance(rom.shape, data.Layout) else int(v)
                           for v in rom.init]
        wide = rows[1]
        for words in (2, 3):
            width = -(-k.pe * k.param_bits // words)
            joined = [sum(r << (j * width) for j, r in enumerate(rows[words][t * words:(t + 1) * words]))
                      for t in range(k.fold)]
            assert joined == wide, (label, words)
        checked += 1
    assert checked >= 2
