"""qloom compile: the output directory, the folding file, and failures that leave nothing behind."""
import json
import subprocess
import sys

import pytest

from conftest import REPO


def qloom(*args):
    return subprocess.run([sys.executable, "-m", "qloom", *args], capture_output=True, text=True, cwd=REPO)


def test_compile_writes_verilog_design_and_reusable_folding(tmp_path, digits):
    out = tmp_path / "out"
    r = qloom("compile", str(digits / "digits_mlp_qdq.onnx"), "-o", str(out), "--max-multipliers", "8")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [".qloom-output", "design.json", "fold.json", "report.html",
                                                     "report.json", "top.v"]
    assert json.loads((out / ".qloom-output").read_text())["files"] == ["design.json", "fold.json", "report.html",
                                                                     "report.json", "top.v"]
    assert "module qloom_top(" in (out / "top.v").read_text()
    design = json.loads((out / "design.json").read_text())
    fold = json.loads((out / "fold.json").read_text())
    assert design["folding"] == fold
    assert sum(v["pe"] * v["simd"] for v in fold.values()) <= 8
    mvus = [k for k in design["kernels"] if k["kind"] == "MVU"]
    assert [k["layer"] for k in mvus] == ["dense0", "dense1"]
    assert design["cycles_per_frame"] == max(k["cycles_per_frame"] for k in design["kernels"])
    assert design["input"]["beats_per_frame"] * design["input"]["lanes"] == 64
    assert design["output"]["beats_per_frame"] * design["output"]["lanes"] == 10
    # the folding file compiles to the same design
    again = tmp_path / "again"
    r = qloom("compile", str(digits / "digits_mlp_qdq.onnx"), "-o", str(again), "--fold", str(out / "fold.json"))
    assert r.returncode == 0, r.stderr
    assert (again / "top.v").read_text() == (out / "top.v").read_text()


@pytest.mark.parametrize("fold,message", [
    ({"dense0": {"pe": 3, "simd": 1}, "dense1": {"pe": 1, "simd": 1}},
     r"layer 'dense0' \(ONNX node 'fc1'\): pe 3 does not divide its 32 outputs; choose one of \[1, 2, 4, 8, 16, 32\]"),
    ({"dense0": {"pe": 1, "simd": 5}, "dense1": {"pe": 1, "simd": 1}},
     r"layer 'dense0' \(ONNX node 'fc1'\): simd 5 does not divide its 64 inputs"),
    ({"dense0": {"pe": 1, "simd": 1}}, r"layer 'dense1' \(ONNX node 'fc2'\) needs an entry"),
])
def test_bad_folding_is_refused_by_name(tmp_path, digits, fold, message):
    import re
    (tmp_path / "fold.json").write_text(json.dumps(fold))
    r = qloom("compile", str(digits / "digits_mlp_qdq.onnx"), "-o", str(tmp_path / "out"), "--fold",
              str(tmp_path / "fold.json"))
    assert r.returncode == 2
    assert re.search(message, r.stderr), r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_conv_simd_is_its_channels_or_taps_of_them(tmp_path, digits):
    """A conv's simd: a divisor of its input channels, or those channels times a block of taps;
    any other is refused by layer with the choices."""
    fold = {"conv0": {"pe": 1, "simd": 2}, "conv1": {"pe": 1, "simd": 1}, "dense0": {"pe": 1, "simd": 1}}
    (tmp_path / "fold.json").write_text(json.dumps(fold))
    r = qloom("compile", str(digits / "digits_cnn_qdq.onnx"), "-o", str(tmp_path / "out"), "--fold",
              str(tmp_path / "fold.json"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and not (tmp_path / "out").exists()
    assert "layer 'conv0' (ONNX node " in r.stderr and "simd 2 is not one of them; choose one of [1, 3, 9]." in r.stderr
    fold["conv0"]["simd"], fold["conv1"]["simd"] = 1, 5
    (tmp_path / "fold.json").write_text(json.dumps(fold))
    r = qloom("compile", str(digits / "digits_cnn_qdq.onnx"), "-o", str(tmp_path / "out"), "--fold",
              str(tmp_path / "fold.json"))
    assert r.returncode == 2 and "choose one of [1, 2, 4, 8, 24, 72]." in r.stderr, r.stderr


def test_failed_compile_leaves_no_directory(tmp_path, digits):
    r = qloom("compile", str(digits / "digits_mlp_fp32.onnx"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "floating-point model" in r.stderr
    assert list(tmp_path.iterdir()) == []
