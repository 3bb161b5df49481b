"""The command line on the shipped models."""
import subprocess
import sys

from conftest import REPO


def qloom(*args):
    return subprocess.run([sys.executable, "-m", "qloom", *args], capture_output=True, text=True, cwd=REPO)


def test_inspect_prints_the_layer_table(digits):
    r = qloom("inspect", str(digits / "digits_mlp_qdq.onnx"))
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("│ dense")]
    assert len(rows) == 2
    assert "fc1" in rows[0] and "64" in rows[0] and "32" in rows[0] and "2,048" in rows[0]
    assert "fc2" in rows[1] and "320" in rows[1]
    assert "2 dense/conv layers · 2,368 MACs per frame" in r.stdout


def test_check_reports_zero_mismatches_and_equal_accuracy(digits):
    r = qloom("check", str(digits / "digits_mlp_qop.onnx"), "--input", str(digits / "test_inputs.npy"),
              "--labels", str(digits / "test_labels.npy"))
    assert r.returncode == 0, r.stderr
    assert "540 frames, 5400 outputs: 0 mismatches" in r.stdout
    line = next(l for l in r.stdout.splitlines() if l.startswith("accuracy:"))
    ours, theirs = line.split("reference ")[1].split(",")[0], line.split("onnxruntime ")[1]
    assert ours == theirs


def test_check_with_badly_shaped_inputs_is_a_clear_error(tmp_path, digits):
    import numpy as np
    np.save(tmp_path / "x.npy", np.zeros((3, 7), np.float32))
    r = qloom("check", str(digits / "digits_mlp_qdq.onnx"), "--input", str(tmp_path / "x.npy"))
    assert r.returncode == 2
    assert r.stderr.startswith("qloom: error: ") and "the model takes frames of shape (64,)" in r.stderr


def test_demo_gives_each_command_the_options_its_parser_does(monkeypatch):
    """`make demo` calls the commands with namespaces of its own: each must hold exactly the
    options that command's parser gives (a missing or doubled one is a crash in the demo)."""
    import argparse
    from qloom import cli
    parser = cli.parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    calls = []
    for name in ("inspect", "check", "compile", "simulate", "synth"):
        monkeypatch.setattr(cli, f"cmd_{name}", lambda ns, name=name: calls.append((name, ns)) or 0)
    assert cli.cmd_demo(argparse.Namespace()) == 0
    assert {name for name, _ in calls} == {"inspect", "check", "compile", "simulate", "synth"}
    for name, ns in calls:
        want = {a.dest for a in subs[name]._actions if a.dest != "help"}
        assert set(vars(ns)) == want, (name, set(vars(ns)) ^ want)
