"""The float32 models of onnxruntime's kernels, each against onnxruntime itself."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qloom.mapper import numeric, ort_check
from qloom.mapper.numeric import F32


def one_node_session(node, inputs, outputs, inits, tmp_path):
    g = helper.make_graph([node], "g", inputs, outputs, [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 9
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    return ort_check.session(path)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_qlinear_add_equals_onnxruntime(dtype, tmp_path):
    rng = np.random.default_rng(1)
    npdt = {"uint8": np.uint8, "int8": np.int8}[dtype]
    lo, hi = numeric.DTYPE_RANGES[dtype]
    mismatches = total = 0
    for trial in range(40):
        channels = int(rng.integers(1, 70))
        pow2 = trial % 4 == 0
        scales = [F32(2.0 ** int(rng.integers(-8, 0))) if pow2 else F32(np.exp(rng.uniform(-6, 1))) for _ in range(3)]
        zeros = [int(rng.integers(lo, hi + 1)) for _ in range(3)]
        b = rng.integers(lo, hi + 1, size=channels).astype(npdt)
        inits = [("sa", scales[0]), ("za", npdt(zeros[0])), ("sb", scales[1]), ("zb", npdt(zeros[1])),
                 ("sc", scales[2]), ("zc", npdt(zeros[2])), ("b", b)]
        ty = helper.np_dtype_to_tensor_dtype(np.dtype(npdt))
        node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"], domain="com.microsoft")
        sess = one_node_session(node, [helper.make_tensor_value_info("a", ty, [hi - lo + 1, channels])],
                                [helper.make_tensor_value_info("y", ty, [hi - lo + 1, channels])], inits, tmp_path)
        a = np.repeat(np.arange(lo, hi + 1)[:, None], channels, axis=1).astype(npdt)
        got = sess.run(None, {"a": a})[0]
        want = numeric.qlinear_add(a.astype(np.int64), scales[0], zeros[0], b.astype(np.int64)[None, :],
                                   scales[1], zeros[1], scales[2], zeros[2], lo, hi)
        mismatches += int(np.sum(got != want))
        total += got.size
    assert total > 100_000
    assert mismatches == 0


def test_quantize_and_dequantize_linear_equal_onnxruntime(tmp_path):
    rng = np.random.default_rng(2)
    for dtype, npdt in (("uint8", np.uint8), ("int8", np.int8)):
        lo, hi = numeric.DTYPE_RANGES[dtype]
        for _ in range(10):
            s = F32(np.exp(rng.uniform(-8, 1)))
            z = int(rng.integers(lo, hi + 1))
            x = (rng.uniform(lo - z - 10, hi - z + 10, size=5000) * s).astype(F32)
            x[:4] = (np.array([0.5, 1.5, -0.5, 2.5]) * s).astype(F32)      # ties
            node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])
            q_ty = helper.np_dtype_to_tensor_dtype(np.dtype(npdt))
            sess = one_node_session(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5000])],
                                    [helper.make_tensor_value_info("q", q_ty, [5000])], [("s", s), ("z", npdt(z))], tmp_path)
            q = sess.run(None, {"x": x})[0]
            np.testing.assert_array_equal(numeric.quantize_linear(x, s, z, lo, hi), q)
            node = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])
            sess = one_node_session(node, [helper.make_tensor_value_info("q", q_ty, [5000])],
                                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5000])],
                                    [("s", s), ("z", npdt(z))], tmp_path)
            np.testing.assert_array_equal(numeric.dequantize_linear(q.astype(np.int64), s, z), sess.run(None, {"q": q})[0])


def test_fma32_rounds_once():
    # x*y = 1 + 2**-24 is exactly a float32 tie. With z = ±2**-80 a float64 sum loses z and
    # lands on the tie, and rounding it again (to even) would give 1.0 both times; the exact
    # values lie on either side of the tie.
    x, y = np.int64(2 ** 24 + 1), F32(2.0 ** -24)
    assert numeric.fma32(x, y, F32(2.0 ** -80)) == F32(1 + 2.0 ** -23)
    assert numeric.fma32(x, y, F32(-(2.0 ** -80))) == F32(1.0)
    assert numeric.fma32(x, y, F32(0)) == F32(1.0)                   # a true tie: to even
    assert numeric.fma32(np.int64(-(2 ** 24 + 1)), y, F32(-(2.0 ** -80))) == F32(-(1 + 2.0 ** -23))


def special_floats(scale, rng):
    """Every kind of float32: ±inf, NaNs (quiet, signalling, negative, payloads), ±0, subnormals,
    the extremes, ties k + 1/2 of the scale around every code and far beyond, and random bit
    patterns (which cover all exponents)."""
    bits = np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFBFFFFF, 0x7FC12345,
                     0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00800000,
                     0x80800000, 0x7F7FFFFF, 0xFF7FFFFF], dtype=np.uint32)
    k = np.arange(-300, 301, dtype=np.float64)
    ties = np.concatenate([k + 0.5, k, 2.0 ** np.arange(20, 40) + 0.5, -(2.0 ** np.arange(20, 40)) - 0.5,
                           [2.0 ** 31, -(2.0 ** 31), 2.0 ** 31 - 128, 2.0 ** 63, 1e30, -1e30]])
    with np.errstate(over="ignore"):
        scaled = (ties * np.float64(scale)).astype(F32)
    return np.concatenate([bits.view(F32), scaled, rng.integers(0, 2 ** 32, size=20_000, dtype=np.uint64)
                           .astype(np.uint32).view(F32)])


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantize_linear_equals_onnxruntime_for_every_float(dtype, tmp_path):
    """±inf saturate, NaN gives qmin, huge quotients saturate instead of wrapping, ties go to
    even, subnormals divide exactly: onnxruntime's QuantizeLinear for every float32."""
    rng = np.random.default_rng(3)
    npdt = {"uint8": np.uint8, "int8": np.int8}[dtype]
    lo, hi = numeric.DTYPE_RANGES[dtype]
    q_ty = helper.np_dtype_to_tensor_dtype(np.dtype(npdt))
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])
    scales = [1.0, 0.5, 2.0 ** -7, 0.1, 0.0123, 2.0 ** -126, 1e-40, 1.4e-45, 3e38, 2.0 ** 100, 1e-30]
    checked = 0
    for s in map(F32, scales):
        for z in sorted({lo, hi, (lo + hi) // 2, 0 if lo < 0 else 128, int(rng.integers(lo, hi + 1))}):
            x = special_floats(s, rng)
            sess = one_node_session(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(x)])],
                                    [helper.make_tensor_value_info("q", q_ty, [len(x)])],
                                    [("s", s), ("z", npdt(z))], tmp_path)
            want = sess.run(None, {"x": x})[0].astype(np.int64)
            np.testing.assert_array_equal(numeric.quantize_linear(x, s, z, lo, hi), want,
                                          err_msg=f"scale {s!r}, zero point {z}")
            checked += len(x)
    assert checked > 1_000_000
    # the rule, said plainly
    sess = one_node_session(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                            [helper.make_tensor_value_info("q", q_ty, [4])], [("s", F32(1.0)), ("z", npdt(0))],
                            tmp_path)
    x = np.array([np.inf, -np.inf, np.nan, -np.nan], F32)
    assert sess.run(None, {"x": x})[0].tolist() == [hi, lo, lo, lo]
    assert numeric.quantize_linear(x, 1.0, 0, lo, hi).tolist() == [hi, lo, lo, lo]
