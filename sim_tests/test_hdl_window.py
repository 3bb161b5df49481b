"""Tier 1: the window generator and the max-pool unit in amaranth.sim, across shapes, kernels,
strides, padding and dilation, under random gaps and stalls, against NumPy windows."""
import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from qloom import amaranth_sim as streams
from qloom.hdl.window import MaxPoolUnit, SumPoolUnit, WindowGen
from qloom.mapper import qgraph as qg
from qloom.mapper import dataflow as df
from qloom.mapper.dataflow import window_schedule

CASES = [((3, 5, 6), 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)), ((4, 7, 5), 2, (2, 3), (2, 1), (0, 2, 1, 0), (1, 2)),
         ((2, 6, 6), 2, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1)), ((6, 4, 9), 3, (1, 1), (1, 2), (0, 0, 0, 0), (1, 1)),
         ((1, 9, 9), 1, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)), ((2, 13, 5), 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
         ((4, 10, 6), 2, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1))]


def window_kernel(case, order):
    shape, lanes, kernel, strides, pads, dilations = case
    return df.WindowKernel("w", qg.CodeType(8, False), shape, lanes, kernel, strides, pads, dilations, order, 0, "conv")


def window_gen(code_shape, case, order, pad):
    shape, lanes, kernel, strides, pads, dilations = case
    return WindowGen(shape=code_shape, lanes=lanes, frame=shape, depth=window_kernel(case, order).depth,
                     out_size=qg.window_out_size(shape[1:], kernel, strides, pads, dilations), kernel=kernel,
                     strides=strides, pads=pads, dilations=dilations, order=order, pad=pad)


def frames_of(rng, shape, signed_codes, n):
    lo, hi = (-128, 128) if signed_codes else (0, 256)
    return rng.integers(lo, hi, size=(n, *shape))


def beats_of(x_chw, lanes):
    hwc = np.moveaxis(x_chw, 0, -1).reshape(-1)
    return [list(hwc[k:k + lanes]) for k in range(0, len(hwc), lanes)]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_window_generator_sends_the_conv_windows(case):
    shape, lanes, kernel, strides, pads, dilations = CASES[case]
    rng = np.random.default_rng(case)
    signed_codes = bool(case % 2)
    pad = -3 if signed_codes else 7
    x = frames_of(rng, shape, signed_codes, 3)
    schedule = window_schedule(shape, lanes, kernel, strides, pads, dilations)
    dut = window_gen(signed(8) if signed_codes else unsigned(8), CASES[case], "taps", pad)
    beats = [b for f in x for b in beats_of(f, lanes)]
    out, when = streams.run(dut, beats, 3 * len(schedule), seed=case, gap=0.2, stall=0.3, max_cycles=10 ** 6)
    # expected: per output pixel, taps (ky, kx) then channels, the input padded with ``pad``
    win = qg.windows(x, kernel, strides, pads, dilations, pad)            # (N, C, oh, ow, kh, kw)
    want = np.moveaxis(win, 1, -1).reshape(-1)                           # N, oh, ow, kh, kw, C
    np.testing.assert_array_equal(np.array(out).reshape(-1), want)
    if case == 5:                     # 13 rows: a line buffer of 6.4 rows, not the frame
        assert window_kernel(CASES[case], "taps").depth < dut.in_beats
    # without stalls: one frame per the period mapper.dataflow.window_timing computes
    _, when = streams.run(dut, beats, 3 * len(schedule))
    per_frame = len(schedule)
    assert when[3 * per_frame - 1] - when[2 * per_frame - 1] == window_kernel(CASES[case], "taps").cycles_per_frame


@pytest.mark.parametrize("case", [0, 1, 4])
def test_window_generator_and_max_pool_compute_maxpool(case):
    shape, lanes, kernel, strides, pads, dilations = CASES[case]
    rng = np.random.default_rng(10 + case)
    x = frames_of(rng, shape, True, 2)
    schedule = window_schedule(shape, lanes, kernel, strides, pads, dilations, order="channels")
    from qloom.hdl.streams import Chain
    taps = kernel[0] * kernel[1]
    dut = Chain([window_gen(signed(8), CASES[case], "channels", -128),
                 MaxPoolUnit(shape=signed(8), lanes=lanes, taps=taps)])
    beats = [b for f in x for b in beats_of(f, lanes)]
    out, _ = streams.run(dut, beats, 2 * len(schedule) // taps, seed=case, gap=0.2, stall=0.3, max_cycles=10 ** 6)
    pool = qg.MaxPool("p", "p", ("x",), "y", kernel=kernel, strides=strides, pads=pads, dilations=dilations)
    want = np.moveaxis(pool.reference(x), 1, -1).reshape(-1)             # N, oh, ow, C
    np.testing.assert_array_equal(np.array(out).reshape(-1), want)


@pytest.mark.parametrize("shape,lanes,signed_codes", [((4, 3, 5), 2, False), ((6, 2, 2), 6, True), ((3, 1, 7), 1, True)])
def test_sum_pool_sums_each_channel(shape, lanes, signed_codes):
    rng = np.random.default_rng(shape[0] * 10 + lanes)
    x = frames_of(rng, shape, signed_codes, 3)
    zp = -5 if signed_codes else 120
    node = qg.SumPool("s", "s", ("x",), "y", zero_point=zp, in_shape=shape)
    lo, hi = node.acc_range(-128 if signed_codes else 0, 127 if signed_codes else 255)
    from qloom.hdl.util import signed_shape_for
    dut = SumPoolUnit(shape=signed(8) if signed_codes else unsigned(8), lanes=lanes, groups=shape[0] // lanes,
                      pixels=shape[1] * shape[2], acc_shape=signed_shape_for(lo.min(), hi.max()),
                      start=-node.count * zp)
    beats = [b for f in x for b in beats_of(f, lanes)]
    out, when = streams.run(dut, beats, 3 * shape[0] // lanes, seed=lanes, gap=0.3, stall=0.3, max_cycles=10 ** 5)
    np.testing.assert_array_equal(np.array(out).reshape(3, -1), node.reference(x).reshape(3, -1))


@pytest.mark.parametrize("case,dsp_cell", [(0, None), (1, None), (2, None), (4, None), (1, "model"), (4, "model")])
def test_window_generator_and_depthwise_unit_compute_a_depthwise_conv(case, dsp_cell):
    """A depthwise conv: the window generator in "channels" order feeding the vector unit,
    against the QGraph conv reference (padding with the zero point, bias included); also with
    its products as registered DSP primitives (their Amaranth model, hdl.dsp.MODEL)."""
    from qloom.hdl.mvu import DepthwiseUnit
    from qloom.hdl.streams import Chain
    from qloom.hdl.util import signed_shape_for
    shape, lanes, kernel, strides, pads, dilations = CASES[case]
    rng = np.random.default_rng(20 + case)
    c = shape[0]
    x = frames_of(rng, shape, False, 2)
    zp = int(rng.integers(0, 256))
    weight = rng.integers(-127, 128, size=(c, 1, *kernel))
    bias = rng.integers(-5000, 5000, size=c)
    conv = qg.Conv("c", "c", ("x",), "y", weight=weight, bias=bias, strides=strides, pads=pads, dilations=dilations,
                   groups=c, zero_point=zp, in_shape=shape)
    schedule = window_schedule(shape, lanes, kernel, strides, pads, dilations, order="channels")
    taps = kernel[0] * kernel[1]
    acc = signed_shape_for(-5000 - 128 * 255 * taps, 5000 + 127 * 255 * taps)
    dut = Chain([window_gen(unsigned(8), CASES[case], "channels", zp),
                 DepthwiseUnit(weights=weight.reshape(c, -1), bias=bias, pe=lanes, input_shape=unsigned(8),
                               acc_shape=acc, dsp_cell=dsp_cell)])
    assert dut.units[1].latency == 4 + (dsp_cell is not None)
    beats = [b for f in x for b in beats_of(f, lanes)]
    out, _ = streams.run(dut, beats, 2 * len(schedule) // taps, seed=case, gap=0.2, stall=0.3, max_cycles=10 ** 6)
    want = np.moveaxis(conv.reference(x), 1, -1).reshape(-1)             # N, oh, ow, C
    np.testing.assert_array_equal(np.array(out).reshape(-1), want)


@pytest.mark.parametrize("seed", range(8))
def test_window_addresses_from_counters_match_the_schedule_on_random_geometries(seed):
    """The counter-generated addresses (both orders, asymmetric pads, a partial last window)
    send exactly the beats mapper.dataflow.window_schedule lists; without stalls, a frame per
    the period mapper.dataflow.window_timing computes."""
    rng = np.random.default_rng(50 + seed)
    c, lanes = [(1, 1), (4, 2), (6, 3), (3, 3)][seed % 4]
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    shape = (c, int(rng.integers(k[0], 8)), int(rng.integers(k[1], 8)))
    case = (shape, lanes, k, (int(rng.integers(1, 3)), int(rng.integers(1, 3))),
            tuple(int(v) for v in rng.integers(0, 3, size=4)), (int(rng.integers(1, 3)), 1))
    order = ("taps", "channels")[seed % 2]
    x = frames_of(rng, shape, False, 2)
    schedule = window_schedule(shape, lanes, *case[2:], order=order)
    out, _ = streams.run(window_gen(unsigned(8), case, order, 300 % 256), [b for f in x for b in beats_of(f, lanes)],
                         2 * len(schedule), seed=seed, gap=0.2, stall=0.2, max_cycles=10 ** 5)
    stored = [beats_of(f, lanes) for f in x]
    want = [stored[f][s] if s is not None else [300 % 256] * lanes for f in range(2) for s in schedule]
    np.testing.assert_array_equal(np.array(out), np.array(want))
    x = frames_of(rng, shape, False, 3)
    _, when = streams.run(window_gen(unsigned(8), case, order, 0), [b for f in x for b in beats_of(f, lanes)],
                          3 * len(schedule))
    n = len(schedule)
    assert when[3 * n - 1] - when[2 * n - 1] == window_kernel(case, order).cycles_per_frame


@pytest.mark.parametrize("case", [0, 1, 2])
def test_window_generator_and_float_sum_compute_an_average_pools_sums(case):
    """AveragePool's float32 window sums (qgraph.FloatSumPool): the window generator in
    "channels" order feeding the float-sum unit, every partial sum rounded as float32."""
    from qloom.hdl.streams import Chain
    from qloom.hdl.util import signed_shape_for
    from qloom.hdl.window import FloatSumUnit
    from qloom.mapper import numeric
    shape, lanes, kernel, strides, pads, _ = CASES[case]
    rng = np.random.default_rng(20 + case)
    signed_codes = case != 1
    qmin, qmax = (-128, 127) if signed_codes else (0, 255)
    zp = int(rng.integers(qmin, qmin + 100))
    terms, _ = numeric.dequantized_units(float(np.float32(rng.uniform(0.003, 0.07))), zp, qmin, qmax)
    node = qg.FloatSumPool("a", "a", ("x",), "y", kernel=kernel, strides=strides, pads=pads, terms=terms,
                           qmin=qmin, zero_point=zp, in_shape=shape)
    lo, hi = node.acc_range(qmin, qmax)
    x = frames_of(rng, shape, signed_codes, 2)
    code = signed(8) if signed_codes else unsigned(8)
    taps = kernel[0] * kernel[1]
    dut = Chain([window_gen(code, CASES[case][:5] + ((1, 1),), "channels", zp),
                 FloatSumUnit(shape=code, lanes=lanes, taps=taps, terms=terms,
                              acc_shape=signed_shape_for(lo.min(), hi.max()))])
    schedule = window_schedule(shape, lanes, kernel, strides, pads, (1, 1), order="channels")
    beats = [b for f in x for b in beats_of(f, lanes)]
    out, _ = streams.run(dut, beats, 2 * len(schedule) // taps, seed=case, gap=0.2, stall=0.3, max_cycles=10 ** 6)
    want = np.moveaxis(node.reference(x), 1, -1).reshape(-1)             # N, oh, ow, C
    assert np.any(want != numeric.float_sum(np.zeros((1, 0), np.int64)))  # not all zero
    exact = np.moveaxis(np.sum(terms[qg.windows(x, kernel, strides, pads, (1, 1), zp) - qmin], axis=(4, 5)), 1, -1)
    assert np.any(exact.reshape(-1) != want)                             # float rounding happened
    np.testing.assert_array_equal(np.array(out).reshape(-1), want)


def test_line_buffer_holds_depth_beats_while_the_output_waits():
    """What the deadlock bound of a branch counts on (kernels.ResidualKernel.hold): with its
    output blocked, a window generator takes exactly its line buffer's beats, then waits; and
    a buffer smaller than the rows one window spans is refused."""
    from amaranth.sim import Simulator
    case = CASES[5]                                          # 13 rows of 10 beats, 3×3 windows
    dut = window_gen(unsigned(8), case, "taps", 0)
    taken = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.o.ready, 0)
        n = 0
        for _ in range(400):
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            n += ready
        taken.append(n)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert taken == [dut.depth] and dut.depth < dut.in_beats
    with pytest.raises(ValueError, match="depth must be a power of two holding the 3 rows"):
        WindowGen(shape=unsigned(8), lanes=1, frame=case[0], out_size=(13, 5), kernel=(3, 3), depth=16,
                  pads=case[4])


TAP_CASES = [((3, 5, 6), (3, 3), 3, (1, 1), (1, 1, 1, 1), (1, 1)), ((1, 9, 9), (3, 3), 9, (1, 1), (2, 2, 2, 2), (2, 2)),
             ((2, 13, 5), (3, 3), 3, (2, 1), (1, 0, 1, 2), (1, 1)), ((1, 10, 8), (5, 4), 2, (2, 1), (2, 1, 2, 1), (1, 1)),
             ((2, 7, 7), (4, 4), 8, (1, 2), (1, 2, 2, 1), (1, 1)), ((3, 8, 8), (3, 3), 9, (2, 2), (1, 1, 1, 1), (1, 1))]


@pytest.mark.parametrize("case", range(len(TAP_CASES)))
def test_window_generator_sends_several_taps_a_beat(case):
    """A beat of t consecutive taps (of a kernel row, or whole rows) × every channel, under
    gaps and stalls: the same codes in the same order as one tap a beat, kh·kw / t beats a
    window, one frame per the period the kernel's model computes."""
    shape, kernel, taps, strides, pads, dilations = TAP_CASES[case]
    rng = np.random.default_rng(70 + case)
    c = shape[0]
    x = frames_of(rng, shape, bool(case % 2), 3)
    k = df.WindowKernel("w", qg.CodeType(8, bool(case % 2)), shape, c, kernel, strides, pads, dilations, "taps", 5,
                        "conv", taps=taps)
    dut = WindowGen(shape=signed(8) if case % 2 else unsigned(8), lanes=c, frame=shape, depth=k.depth,
                    out_size=k.out_size, kernel=kernel, strides=strides, pads=pads, dilations=dilations, pad=5,
                    taps=taps)
    assert len(dut.o.payload) == c * taps and k.lanes_out == c * taps
    beats = [b for f in x for b in beats_of(f, c)]
    out, _ = streams.run(dut, beats, 3 * k.beats_out, seed=case, gap=0.2, stall=0.3, max_cycles=10 ** 6)
    win = qg.windows(x, kernel, strides, pads, dilations, 5)
    np.testing.assert_array_equal(np.array(out).reshape(-1), np.moveaxis(win, 1, -1).reshape(-1))
    assert k.beats_out * taps == len(window_schedule(shape, c, kernel, strides, pads, dilations))
    _, when = streams.run(dut, beats, 3 * k.beats_out)
    assert when[3 * k.beats_out - 1] - when[2 * k.beats_out - 1] == k.cycles_per_frame


def test_taps_a_beat_must_be_a_block_of_the_kernel():
    from qloom.hdl.window import tap_block
    assert tap_block((3, 3), 3) == (1, 3) and tap_block((3, 3), 9) == (3, 3) and tap_block((10, 4), 8) == (2, 4)
    with pytest.raises(ValueError, match="must divide a kernel row's 3"):
        tap_block((3, 3), 6)
    with pytest.raises(ValueError, match="every channel in a beat"):
        WindowGen(shape=unsigned(8), lanes=1, frame=(2, 5, 5), out_size=(3, 3), kernel=(3, 3), depth=32, taps=3)
