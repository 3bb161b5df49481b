"""Tier 1: the MVU in amaranth.sim, swept over folding, widths and signedness."""
import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from qloom import amaranth_sim as streams
from qloom.hdl import dsp, spram
from qloom.hdl.mvu import MVU
from qloom.hdl.util import signed_shape_for


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def make(rng, n_in, n_out, pe, simd, x_bits, x_signed, w_bits, split=False, dsp_cell=None):
    w_lo, w_hi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    weights = rng.integers(w_lo, w_hi + 1, size=(n_out, n_in))
    weights[0, : min(3, n_in)] = w_lo                           # extremes
    bias = rng.integers(-1000, 1000, size=n_out)
    x_lo, x_hi = (-(1 << (x_bits - 1)), (1 << (x_bits - 1)) - 1) if x_signed else (0, (1 << x_bits) - 1)
    corner = np.abs(weights).sum(axis=1).max() * max(abs(x_lo), x_hi) + 1000
    acc_shape = signed_shape_for(-corner, corner)
    shape = signed(x_bits) if x_signed else unsigned(x_bits)
    return MVU(weights=weights, bias=bias, pe=pe, simd=simd, input_shape=shape, acc_shape=acc_shape,
               split_products=split, dsp_cell=dsp_cell), (x_lo, x_hi)


def simulate(dut, x, seed, gap, stall):
    beats = [list(frame[i * dut.simd:(i + 1) * dut.simd]) for frame in x for i in range(dut.in_fold)]
    out, when = streams.run(dut, beats, len(x) * dut.out_fold, seed=seed, gap=gap, stall=stall)
    return np.array(out).reshape(len(x), dut.out_features), when


CASES = [  # n_in, n_out, pe, simd, x_bits, x_signed, w_bits
    (12, 6, 1, 1, 8, False, 8), (12, 6, 6, 12, 8, True, 8), (12, 6, 2, 3, 4, False, 3),
    (7, 5, 1, 7, 2, True, 2), (7, 5, 5, 1, 8, True, 8), (16, 9, 3, 4, 5, False, 6),
    (1, 1, 1, 1, 8, False, 8), (10, 3, 3, 5, 8, True, 9),
]


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("n_in,n_out,pe,simd,x_bits,x_signed,w_bits", CASES)
def test_mvu_equals_numpy_under_gaps_and_stalls(n_in, n_out, pe, simd, x_bits, x_signed, w_bits, split):
    """Also with each product split in two over the input's halves (split_products), exact at
    the extremes of signed and unsigned inputs of 2–8 bits."""
    rng = np.random.default_rng(n_in * 100 + n_out * 10 + pe + simd)
    dut, (x_lo, x_hi) = make(rng, n_in, n_out, pe, simd, x_bits, x_signed, w_bits, split)
    assert dut.latency == 5 + dut.tree_stages + split
    x = rng.integers(x_lo, x_hi + 1, size=(6, n_in))
    x[0] = x_lo
    x[1] = x_hi
    got, _ = simulate(dut, x, seed=pe * simd, gap=0.3, stall=0.3)
    np.testing.assert_array_equal(got, x @ dut.weights.T + dut.bias)


@pytest.mark.parametrize("n_in,n_out,pe,simd,x_bits,x_signed,w_bits", CASES[:6])
def test_mvu_with_registered_dsp_products_equals_numpy(n_in, n_out, pe, simd, x_bits, x_signed, w_bits):
    """Products as DSP primitives with their input and output registers (dsp_cell), here their
    Amaranth model (hdl.dsp.MODEL; the MULT18X18D itself runs in the RTL tests): one more cycle
    of latency, exact under gaps and stalls."""
    rng = np.random.default_rng(n_in * 100 + n_out * 10 + pe + simd)
    dut, (x_lo, x_hi) = make(rng, n_in, n_out, pe, simd, x_bits, x_signed, w_bits, dsp_cell=dsp.MODEL)
    assert dut.latency == 6 + dut.tree_stages
    x = rng.integers(x_lo, x_hi + 1, size=(6, n_in))
    x[0], x[1] = x_lo, x_hi
    got, _ = simulate(dut, x, seed=pe + simd, gap=0.3, stall=0.3)
    np.testing.assert_array_equal(got, x @ dut.weights.T + dut.bias)


def test_dsp_cells_are_checked():
    with pytest.raises(ValueError, match=r"^unknown DSP cell 'DSP48E2'; known: MULT18X18D, SB_MAC16$"):
        MVU(weights=np.zeros((2, 2), int), bias=np.zeros(2, int), pe=1, simd=1, input_shape=unsigned(8),
            acc_shape=signed(16), dsp_cell="DSP48E2")
    with pytest.raises(ValueError, match=r"do not fit one MULT18X18D$"):
        MVU(weights=np.zeros((2, 2), int), bias=np.zeros(2, int), pe=1, simd=1, input_shape=unsigned(18),
            acc_shape=signed(40), dsp_cell="MULT18X18D")
    assert dsp.fits("MULT18X18D", signed(18), unsigned(17))


@pytest.mark.parametrize("pe,simd,split", [(1, 1, False), (2, 4, True), (4, 12, False), (1, 48, True)])
def test_mvu_sustains_one_beat_per_cycle(pe, simd, split):
    rng = np.random.default_rng(5)
    dut, (x_lo, x_hi) = make(rng, 48, 8, pe, simd, 8, False, 8, split)
    frames = 5
    x = rng.integers(x_lo, x_hi + 1, size=(frames, 48))
    got, when = simulate(dut, x, seed=0, gap=0.0, stall=0.0)
    np.testing.assert_array_equal(got, x @ dut.weights.T + dut.bias)
    # no bubbles: the last output beat comes after exactly frames · cycles_per_frame steps + latency
    assert when[-1] <= frames * dut.cycles_per_frame + dut.latency + 1
    assert when[-1] >= frames * dut.cycles_per_frame


def test_mvu_parameters_are_checked():
    with pytest.raises(ValueError, match=r"^pe must divide out_features \(6\), not 4$"):
        MVU(weights=np.zeros((6, 4), int), bias=np.zeros(6, int), pe=4, simd=1,
            input_shape=unsigned(8), acc_shape=signed(16))
    with pytest.raises(TypeError, match=r"^simd must be a positive integer, not 0$"):
        MVU(weights=np.zeros((6, 4), int), bias=np.zeros(6, int), pe=1, simd=0,
            input_shape=unsigned(8), acc_shape=signed(16))


@pytest.mark.parametrize("simd", [1, 2, 4, 8, 16, 32, 64])
def test_mvu_latency_is_what_the_dataflow_graph_models(simd):
    from qloom.mapper.dataflow import mvu_latency
    dut = MVU(weights=np.ones((2, 64), int), bias=np.zeros(2, int), pe=1, simd=simd,
              input_shape=unsigned(8), acc_shape=signed(20))
    assert dut.latency == mvu_latency(simd)


@pytest.mark.parametrize("n_in,n_out,pe,simd,x_bits,x_signed,w_bits", [
    (12, 6, 1, 1, 8, False, 8), (12, 6, 2, 3, 4, False, 3), (16, 9, 3, 4, 5, False, 6), (10, 3, 3, 5, 8, True, 9),
    (7, 5, 1, 7, 2, True, 2)])
def test_mvu_with_weights_in_spram_equals_numpy(n_in, n_out, pe, simd, x_bits, x_signed, w_bits):
    """Weights in SPRAM (hdl.spram, its Amaranth model; the SB_SPRAM256KA runs in the RTL tests),
    loaded through ``load`` with idle cycles while frames wait: 1 (3 bits: four a row), 2 (8, 16:
    two a row, one), 5 (18 bits: two SPRAMs side by side) and 6 (one 12-bit word a row) words of
    weights a step; exact under gaps and stalls, the timing of block RAM."""
    rng = np.random.default_rng(n_in * 100 + n_out * 10 + pe + simd)
    ref, (x_lo, x_hi) = make(rng, n_in, n_out, pe, simd, x_bits, x_signed, w_bits)
    dut = MVU(weights=ref.weights, bias=ref.bias, pe=pe, simd=simd, input_shape=ref.input_shape,
              acc_shape=ref.acc_shape, spram_cell=spram.MODEL)
    assert dut.latency == ref.latency
    lanes, tiles, rows, banks = spram.geometry(pe * simd * dut.weight_shape.width, dut.cycles_per_frame)
    assert len(dut.load_image) == rows * tiles
    x = rng.integers(x_lo, x_hi + 1, size=(4, n_in))
    x[0], x[1] = x_lo, x_hi
    beats = [list(frame[i * simd:(i + 1) * simd]) for frame in x for i in range(dut.in_fold)]
    out, _ = streams.run(spram.Loaded(dut, [dut]), beats, len(x) * dut.out_fold, seed=pe + simd, gap=0.3,
                         stall=0.3, load=dut.load_image)
    np.testing.assert_array_equal(np.array(out).reshape(len(x), n_out), x @ ref.weights.T + ref.bias)


def test_spram_geometry_packs_rows():
    assert spram.geometry(8, 100) == (2, 1, 50, 1)
    assert spram.geometry(3, 10) == (4, 1, 3, 1)
    assert spram.geometry(18, 5) == (1, 2, 5, 1)
    assert spram.geometry(16, 40_000) == (1, 1, 40_000, 3)
    assert spram.image([1, 2, 3], 8) == [0x0201, 0x0003]
    assert spram.image([0x3FFFF, 1], 18) == [0xFFFF, 0x3, 0x1, 0x0]
    # the mapper's mirror (it estimates SPRAMs and load words without hdl)
    from qloom.mapper.resources import spram_geometry
    assert all(spram_geometry(w, d) == spram.geometry(w, d) for w in range(1, 70) for d in (1, 2, 5, 64, 16_385, 70_000))
