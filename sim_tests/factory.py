"""Random quantized MLPs built directly as ONNX, in QDQ and QOperator form, with
full control over scales and zero points (power-of-two scales, odd zero points,
saturating output scales) — things calibration would never produce."""
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32
NP = {"uint8": np.uint8, "int8": np.int8}
ONNX_TYPES = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}


@dataclass
class Layer:
    weight: np.ndarray     # codes (in, out)
    w_scale: np.ndarray    # (out,) or (1,)
    w_zero: np.ndarray     # same shape as w_scale, dtype of weight
    bias: np.ndarray       # int32 (out,) or None
    y_scale: float
    y_zero: int
    relu: bool


def scale(rng, pow2):
    return F32(2.0 ** int(rng.integers(-9, -2))) if pow2 else F32(np.exp(rng.uniform(-7, -2)))


def random_mlp(rng, *, layers, widths, act="uint8", w_dtype="int8", per_channel=True, pow2=False,
               saturate=False, relu=True):
    """Layers with random codes; output scales chosen from the accumulator spread
    (divided by 4 when ``saturate``, so that outputs clip often)."""
    dims = [int(w) for w in [widths[0]] + list(widths[1:layers + 1])]
    x_scale, x_zero = scale(rng, pow2), int(rng.integers(0, 256) if act == "uint8" else rng.integers(-128, 128))
    if pow2:
        x_zero |= 1
        x_zero = min(x_zero, 255 if act == "uint8" else 127)
    out, in_scale = [], x_scale
    lo, hi = (0, 255) if act == "uint8" else (-128, 127)
    for i in range(layers):
        n_in, n_out = dims[i], dims[i + 1]
        # int8 weights stay within ±64 (as reduce_range makes them): onnxruntime's AVX2 kernel
        # without VNNI saturates pairs of u8·s8 products to int16 beyond that (see mapper/ort_check.py).
        wlo, whi = (-64, 64) if w_dtype == "int8" else (0, 255)
        w = rng.integers(wlo, whi + 1, size=(n_in, n_out)).astype(NP[w_dtype])
        n_s = n_out if per_channel else 1
        ws = np.array([scale(rng, pow2) for _ in range(n_s)], F32)
        wz = (rng.integers(wlo // 4, whi // 4 + 1, size=n_s) if w_dtype == "uint8" or rng.random() < 0.3
              else np.zeros(n_s)).astype(NP[w_dtype])
        if w_dtype == "uint8":
            wz = (wz + 96).astype(NP[w_dtype])
        bias = rng.integers(-3000, 3000, size=n_out).astype(np.int32) if rng.random() < 0.8 else None
        spread = np.sqrt(n_in) * 60 * 70 * float(in_scale) * float(np.max(ws))
        ys = F32(spread / (4 if saturate else 1) / 128)
        if pow2:
            ys = F32(2.0 ** round(np.log2(ys)))
        yz = int(rng.integers(lo, hi + 1))
        if pow2:
            yz = min(yz | 1, hi)
        relu_here = relu and i < layers - 1 and rng.random() < 0.7
        if relu_here:
            yz = lo        # ORT only fuses Relu when it folds into the zero point
        out.append(Layer(w, ws, wz, bias, float(ys), yz, relu_here))
        in_scale = ys
    return dict(x_scale=float(x_scale), x_zero=x_zero, act=act, layers=out, in_features=dims[0])


def lo_of(act):
    return 0 if act == "uint8" else -128


def hi_of(act):
    return 255 if act == "uint8" else 127


def _init(name, a, inits):
    inits.append(numpy_helper.from_array(np.asarray(a), name))
    return name


def to_onnx(spec, form, batch="N"):
    """``form``: 'qdq' (MatMul, or Gemm when a bias exists), 'qop' (QLinearMatMul, or QGemm with a
    bias), 'qop_add' (QLinearMatMul then the bias as QLinearAdd) or 'matmulinteger'
    (MatMulInteger → Cast → Mul → Add → Relu → QuantizeLinear)."""
    act, inits, nodes = spec["act"], [], []
    zdt = NP[act]
    x = "x"
    xs = _init("x_scale", F32(spec["x_scale"]), inits)
    xz = _init("x_zero", zdt(spec["x_zero"]), inits)
    nodes.append(helper.make_node("QuantizeLinear", [x, xs, xz], ["x_q"], name="quant_in"))
    cur, cur_s, cur_z, cur_scale = "x_q", xs, xz, spec["x_scale"]
    for i, L in enumerate(spec["layers"]):
        w = _init(f"w{i}", L.weight, inits)
        ws = _init(f"w{i}_scale", L.w_scale if L.w_scale.size > 1 else F32(L.w_scale[0]), inits)
        wz = _init(f"w{i}_zero", L.w_zero if L.w_zero.size > 1 else L.w_zero.reshape(())[()], inits)
        ys = _init(f"y{i}_scale", F32(L.y_scale), inits)
        yz = _init(f"y{i}_zero", zdt(L.y_zero), inits)
        out = f"y{i}_q"
        if form == "qdq":
            nodes.append(helper.make_node("DequantizeLinear", [cur, cur_s, cur_z], [f"x{i}_f"], name=f"dq_x{i}"))
            nodes.append(helper.make_node("DequantizeLinear", [w, ws, wz], [f"w{i}_f"], name=f"dq_w{i}", axis=1))
            if L.bias is not None:
                bs = F32(F32(cur_scale) * L.w_scale)
                b = _init(f"b{i}", L.bias, inits)
                bsn = _init(f"b{i}_scale", bs if bs.size > 1 else F32(bs[0]), inits)
                bz = _init(f"b{i}_zero", np.zeros(bs.shape, np.int32) if bs.size > 1 else np.int32(0), inits)
                nodes.append(helper.make_node("DequantizeLinear", [b, bsn, bz], [f"b{i}_f"], name=f"dq_b{i}", axis=0))
                nodes.append(helper.make_node("Gemm", [f"x{i}_f", f"w{i}_f", f"b{i}_f"], [f"h{i}"], name=f"gemm{i}"))
            else:
                nodes.append(helper.make_node("MatMul", [f"x{i}_f", f"w{i}_f"], [f"h{i}"], name=f"matmul{i}"))
            h = f"h{i}"
            if L.relu:
                nodes.append(helper.make_node("Relu", [h], [f"r{i}"], name=f"relu{i}"))
                h = f"r{i}"
            nodes.append(helper.make_node("QuantizeLinear", [h, ys, yz], [out], name=f"q{i}"))
        elif form == "matmulinteger":
            mm_scale = F32(F32(cur_scale) * L.w_scale)
            nodes.append(helper.make_node("MatMulInteger", [cur, w, cur_z, wz], [f"acc{i}"], name=f"mmi{i}"))
            nodes.append(helper.make_node("Cast", [f"acc{i}"], [f"accf{i}"], name=f"cast{i}", to=TensorProto.FLOAT))
            s_ = _init(f"s{i}", mm_scale if mm_scale.size > 1 else F32(mm_scale[0]), inits)
            nodes.append(helper.make_node("Mul", [f"accf{i}", s_], [f"h{i}"], name=f"mul{i}"))
            h = f"h{i}"
            if L.bias is not None:
                bf = _init(f"bf{i}", (L.bias * mm_scale).astype(F32), inits)
                nodes.append(helper.make_node("Add", [h, bf], [f"hb{i}"], name=f"add{i}"))
                h = f"hb{i}"
            if L.relu:
                nodes.append(helper.make_node("Relu", [h], [f"r{i}"], name=f"relu{i}"))
                h = f"r{i}"
            nodes.append(helper.make_node("QuantizeLinear", [h, ys, yz], [out], name=f"q{i}"))
        elif form == "qop_add":
            # QLinearMatMul to an intermediate scale, then the bias as a QLinearAdd of uint8/int8 codes
            mid_s = _init(f"m{i}_scale", F32(L.y_scale * 1.5), inits)
            mid_z = _init(f"m{i}_zero", zdt((L.y_zero + (hi_of(act) + lo_of(act)) // 2) // 2), inits)
            nodes.append(helper.make_node("QLinearMatMul", [cur, cur_s, cur_z, w, ws, wz, mid_s, mid_z],
                                          [f"mm{i}"], name=f"qmatmul{i}"))
            bias = np.zeros(L.weight.shape[1], np.int64) if L.bias is None else L.bias
            b_scale = F32(max(float(np.abs(bias).max(initial=1)) * float(F32(cur_scale) * L.w_scale.max()) / 100, 1e-6))
            b_codes = np.clip(np.rint(bias * float(F32(cur_scale) * L.w_scale.max()) / b_scale) + 128, 0, 255) \
                if act == "uint8" else np.clip(np.rint(bias * float(F32(cur_scale) * L.w_scale.max()) / b_scale), -128, 127)
            b = _init(f"bq{i}", b_codes.astype(zdt), inits)
            bs = _init(f"bq{i}_scale", b_scale, inits)
            bz = _init(f"bq{i}_zero", zdt(128 if act == "uint8" else 0), inits)
            nodes.append(helper.make_node("QLinearAdd", [f"mm{i}", mid_s, mid_z, b, bs, bz, ys, yz], [out],
                                          name=f"qadd{i}", domain="com.microsoft"))
        else:
            if L.bias is not None:
                b = _init(f"b{i}", L.bias, inits)
                nodes.append(helper.make_node("QGemm", [cur, cur_s, cur_z, w, ws, wz, b, ys, yz], [out],
                                              name=f"qgemm{i}", domain="com.microsoft"))
            else:
                nodes.append(helper.make_node("QLinearMatMul", [cur, cur_s, cur_z, w, ws, wz, ys, yz], [out],
                                              name=f"qmatmul{i}"))
        cur, cur_s, cur_z, cur_scale = out, ys, yz, L.y_scale
    nodes.append(helper.make_node("DequantizeLinear", [cur, cur_s, cur_z], ["y"], name="dq_out"))
    n_out = spec["layers"][-1].weight.shape[1]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, spec["in_features"]])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n_out])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 9
    return m


def random_inputs(rng, spec, n):
    """Floats that cover the whole input code range, including saturation."""
    lo, hi = (0, 255) if spec["act"] == "uint8" else (-128, 127)
    s, z = spec["x_scale"], spec["x_zero"]
    return (rng.uniform(lo - z - 8, hi - z + 8, size=(n, spec["in_features"])) * s).astype(F32)
