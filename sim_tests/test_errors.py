"""Every user error is one clear paragraph and a non-zero exit, never a traceback."""
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import factory
from qloom.cli import main
from qloom.mapper.frontend import loading


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def small_qdq(tmp_path, batch="N"):
    spec = factory.random_mlp(np.random.default_rng(0), layers=1, widths=[6, 3])
    model = factory.to_onnx(spec, "qdq", batch=batch)
    return model


def expect_error(capsys, path, pattern):
    code, out, err = run_cli(capsys, "inspect", str(path))
    assert code == 2
    assert "Traceback" not in err + out
    assert re.match(pattern, err.removeprefix("qloom: error: ")), err
    return err


def test_float_model_says_how_to_quantize(capsys, digits):
    expect_error(capsys, digits / "digits_mlp_fp32.onnx",
                 r"^\S+digits_mlp_fp32\.onnx is a floating-point model \(Gemm on float tensors\); qloom compiles "
                 r"quantized models\. Quantize it with onnxruntime first, e\.g\. "
                 r"onnxruntime\.quantization\.quantize_static\(")


def test_unsupported_op_names_node_and_lists_supported(capsys, tmp_path):
    model = small_qdq(tmp_path)
    g = model.graph
    dq = next(n for n in g.node if n.name == "dq_x0")
    sig = helper.make_node("Sigmoid", [dq.output[0]], ["sig"], name="mystery_sigmoid")
    for n in g.node:
        if n.name in ("matmul0", "gemm0"):
            n.input[0] = "sig"
    g.node.insert(list(g.node).index(dq) + 1, sig)
    onnx.save(model, tmp_path / "m.onnx")
    expect_error(capsys, tmp_path / "m.onnx",
                 r"^Sigmoid node 'mystery_sigmoid' in \S+m\.onnx: operator Sigmoid is not supported\. "
                 r"Supported: QuantizeLinear, DequantizeLinear, MatMul and Gemm")


def test_dynamic_feature_dimension_asks_for_a_fixed_shape(capsys, tmp_path):
    model = small_qdq(tmp_path)
    model.graph.input[0].type.tensor_type.shape.dim[1].ClearField("dim_value")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"
    onnx.save(model, tmp_path / "m.onnx")
    expect_error(capsys, tmp_path / "m.onnx",
                 r"^\S+m\.onnx: input 'x' has dynamic dimension 1 \('features'\)\. qloom builds a circuit for "
                 r"one fixed shape; fix it, e\.g\. python -m onnxruntime\.tools\.make_dynamic_shape_fixed")


def test_unknown_input_shape_asks_for_a_fixed_shape(capsys, tmp_path):
    model = small_qdq(tmp_path)
    model.graph.input[0].type.tensor_type.ClearField("shape")
    onnx.save(model, tmp_path / "m.onnx")
    expect_error(capsys, tmp_path / "m.onnx", r"^\S+m\.onnx: input 'x' has an unknown shape\. Give the model a fixed input shape")


def test_malformed_file(capsys, tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07this is not a protobuf at all \xff\xfe" * 10)
    expect_error(capsys, tmp_path / "junk.onnx", r"^\S+junk\.onnx: (not a readable ONNX model|the file holds no ONNX graph)")


def test_truncated_file(capsys, tmp_path, digits):
    data = (digits / "digits_mlp_qdq.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    expect_error(capsys, tmp_path / "cut.onnx", r"^\S+cut\.onnx: (not a readable ONNX model \(.*\)\. The file may be "
                                               r"truncated|the file holds no ONNX graph)")


def test_missing_file(capsys, tmp_path):
    expect_error(capsys, tmp_path / "nope.onnx", r"^\S+nope\.onnx: no such model file\. Give the path of an \.onnx file\.")


def external_model(tmp_path):
    model = small_qdq(tmp_path)
    (tmp_path / "model").mkdir()
    onnx.save(model, tmp_path / "model" / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    return tmp_path / "model" / "m.onnx"


def test_external_data_inside_folder_loads(tmp_path):
    from qloom.mapper import frontend
    graph = frontend.load_qgraph(external_model(tmp_path))
    assert len(graph.nodes) >= 3


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd"])
def test_external_data_outside_folder_is_refused(capsys, tmp_path, location):
    path = external_model(tmp_path)
    model = onnx.load(path, load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    (tmp_path / "secret.bin").write_bytes((tmp_path / "model" / "weights.bin").read_bytes())
    onnx.save(model, path)
    expect_error(capsys, path, rf"^\S+m\.onnx: tensor '\w+' keeps its data at '{re.escape(location)}', outside the "
                               r"model's folder \S+\. qloom only reads external data stored beside the model")


def test_model_too_large_to_hold(capsys, tmp_path, monkeypatch, digits):
    monkeypatch.setattr(loading, "MAX_PARAMETER_BYTES", 1024)
    expect_error(capsys, digits / "digits_mlp_qdq.onnx",
                 r"^\S+digits_mlp_qdq\.onnx: the model holds \d+\.\d KiB of parameters; qloom keeps weights on "
                 r"chip and accepts at most 1\.0 KiB\. Use a smaller model\.")


def test_dynamically_quantized_model_is_refused(capsys, tmp_path, digits):
    from onnxruntime.quantization import quantize_dynamic
    quantize_dynamic(str(digits / "digits_mlp_fp32.onnx"), str(tmp_path / "dyn.onnx"))
    expect_error(capsys, tmp_path / "dyn.onnx",
                 r"^DynamicQuantizeLinear node '[^']+' in \S+dyn\.onnx: the model is dynamically quantized")


def test_cli_subprocess_prints_no_traceback(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    r = subprocess.run([sys.executable, "-m", "qloom", "inspect", str(tmp_path / "bad.onnx")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("qloom: error: ") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_three_way_branch_is_refused_by_node_before_anything_is_written(capsys, tmp_path):
    """An Inception-style block with three paths: the reference and onnxruntime agree, but the
    hardware (fork → two paths → join) refuses it naming the layer that branches."""
    from conv_factory import quantize
    rng = np.random.default_rng(0)
    inits, nodes = [], []
    for name, cin, cout, k in (("stem", 2, 4, 3), ("p1", 4, 2, 1), ("p2", 4, 2, 3), ("p3", 4, 2, 1)):
        inits += [numpy_helper.from_array((rng.normal(size=(cout, cin, k, k)) / k).astype(np.float32), name + ".w"),
                  numpy_helper.from_array(np.zeros(cout, np.float32), name + ".b")]
        nodes.append(helper.make_node("Conv", ["x" if name == "stem" else "s", name + ".w", name + ".b"], [name],
                                      name=name, kernel_shape=[k, k], pads=[k // 2] * 4))
        if name == "stem":
            nodes.append(helper.make_node("Relu", ["stem"], ["s"], name="stem_relu"))
    nodes.append(helper.make_node("Concat", ["p1", "p2", "p3"], ["y"], name="concat3", axis=1))
    graph = helper.make_graph(nodes, "inception", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 5, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = rng.normal(size=(8, 2, 5, 5)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x)
    code, out, err = run_cli(capsys, "check", str(path), "--count", "16")
    assert code == 0 and "0 mismatches" in out
    code, out, err = run_cli(capsys, "compile", str(path), "-o", str(tmp_path / "out"))
    assert code == 2 and "Traceback" not in err and not (tmp_path / "out").exists()
    assert re.match(r"qloom: error: Requant 'requant0' \(ONNX node '.*'\): its output feeds 3 layers; qloom builds "
                    r"hardware for a tensor that feeds two paths", err), err


@pytest.mark.parametrize("attrs,why", [
    (dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), "windows reach into the padding with count_include_pad=0"),
    (dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), "only AveragePool with ceil_mode=0"),
])
def test_average_pools_onnxruntime_divides_unevenly_are_refused_by_node(capsys, tmp_path, attrs, why):
    """Border windows that onnxruntime averages over fewer values (count_include_pad=0 with
    padding), and ceil_mode: refused naming the node, nothing written."""
    from conv_factory import quantize, random_cnn
    rng = np.random.default_rng(3)
    model, shape, _ = random_cnn(rng, 1, dense=False, avgpool=dict(attrs, kernel_shape=[1, 1]))
    avg = next(n for n in model.graph.node if n.op_type == "AveragePool")
    del avg.attribute[:]
    avg.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    x = rng.normal(size=(8, *shape)).astype(np.float32)
    path = quantize(model, tmp_path / "q.onnx", x, "QOperator", "uint8")
    code, out, err = run_cli(capsys, "compile", str(path), "-o", str(tmp_path / "out"))
    assert code == 2 and "Traceback" not in err and not (tmp_path / "out").exists()
    assert re.match(r"qloom: error: QLinearAveragePool node '.*' in .*: " + why, err), err


def peak_rss_of_cli(*argv, cwd):
    """(exit code, stderr, peak resident set in MiB) of ``python -m qloom argv`` in ``cwd``."""
    import os
    with open(cwd / "stderr.txt", "wb") as err:
        p = subprocess.Popen([sys.executable, "-m", "qloom", *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, (cwd / "stderr.txt").read_text(), usage.ru_maxrss / 1024


def huge_model_file(folder):
    import os
    onnx.save(small_qdq(folder), folder / "m.onnx")
    os.truncate(folder / "m.onnx", 2_500_000_000)   # a sparse file: declared, not written


def huge_external_weight(folder):
    import os
    model = small_qdq(folder)
    w = next(t for t in model.graph.initializer if t.name == "w0")
    w.ClearField("raw_data")
    del w.dims[:]
    w.dims.extend([1024, 1024, 1024])
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="w.bin")
    onnx.save(model, folder / "m.onnx")
    (folder / "w.bin").touch()
    os.truncate(folder / "w.bin", 1 << 30)


@pytest.mark.parametrize("make, pattern", [
    (huge_model_file, r"m\.onnx: the file is 2\.3 GiB; an \.onnx file is one protobuf message"),
    (huge_external_weight, r"m\.onnx: the model holds 1\.0 GiB of parameters"),
])
def test_huge_declared_sizes_are_refused_without_reading_them(tmp_path, make, pattern):
    (tmp_path / "small").mkdir()
    onnx.save(small_qdq(tmp_path), tmp_path / "small" / "m.onnx")
    code, err, baseline = peak_rss_of_cli("inspect", "m.onnx", cwd=tmp_path / "small")
    assert code == 0, err
    make(tmp_path)
    code, err, peak = peak_rss_of_cli("inspect", "m.onnx", cwd=tmp_path)
    assert code == 2 and re.match(pattern, err.removeprefix("qloom: error: ")), err
    assert peak < 400 and peak < baseline + 64, (peak, baseline)   # MiB; the declared data is >= 1024 MiB


@pytest.mark.parametrize("unreadable, pattern", [
    ("m.onnx", r"^\S+m\.onnx: cannot be read \(permission denied\)\. Give qloom read access to it \(chmod \+r\) "
               r"or copy it somewhere readable\.$"),
    ("weights.bin", r"^\S+m\.onnx: tensor '\w+' keeps its data in 'weights\.bin', which cannot be read \(permission "
                    r"denied\)\. Give qloom read access to it \(chmod \+r\) or copy it somewhere readable\.$"),
])
def test_an_unreadable_file_says_permission_denied(capsys, tmp_path, monkeypatch, unreadable, pattern):
    import os
    onnx.save(small_qdq(tmp_path), tmp_path / "m.onnx", save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    real_open = os.open

    def denied(path, *args, **kw):   # as chmod 000 would (the tests may run as root, who reads anything)
        if str(path).endswith(unreadable):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kw)
    monkeypatch.setattr(loading.os, "open", denied)
    expect_error(capsys, tmp_path / "m.onnx", pattern)


def test_the_model_file_limit_is_raised_by_its_environment_variable(capsys, tmp_path, monkeypatch, digits):
    monkeypatch.setattr(loading, "MAX_MODEL_FILE_BYTES", 1024)
    expect_error(capsys, digits / "digits_mlp_qdq.onnx",
                 r"^\S+digits_mlp_qdq\.onnx: the file is \d+\.\d KiB; qloom reads model files of at most 1\.0 KiB "
                 r".*raise the limit with the environment variable QLOOM_MAX_MODEL_BYTES=<bytes>\.$")
    monkeypatch.setenv("QLOOM_MAX_MODEL_BYTES", str(1 << 30))
    assert loading.load(digits / "digits_mlp_qdq.onnx").graph.node


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_a_bad_model_file_limit_variable_is_refused(capsys, monkeypatch, digits, value):
    monkeypatch.setenv("QLOOM_MAX_MODEL_BYTES", value)
    expect_error(capsys, digits / "digits_mlp_qdq.onnx",
                 rf"^QLOOM_MAX_MODEL_BYTES='{value}' is not a positive number of bytes; set it to e\.g\. "
                 r"536870912 or unset it\.$")


@pytest.mark.parametrize("one_file", [True, False])
def test_external_data_loads_the_same_values_as_inline(tmp_path, one_file):
    model = small_qdq(tmp_path)
    inline = loading.initializers(model)
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=one_file,
              location="weights.bin", size_threshold=0)
    assert len(list(tmp_path.iterdir())) == (2 if one_file else 1 + len(inline))
    loaded = loading.initializers(loading.load(tmp_path / "m.onnx"))
    assert sorted(loaded) == sorted(inline)
    for name, value in inline.items():
        assert loaded[name].dtype == value.dtype and np.array_equal(loaded[name], value), name
