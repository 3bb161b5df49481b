"""Bounds before work (mapper/limits.py): what each bound counts, that it is checked before the
work it bounds, that it can be raised, that the shipped models stay far inside every one, and
that refusing the measured cases of issue 13 at their real sizes takes little time and memory."""
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import corpus_sizes
from qloom import compile as qc
from qloom.cli import main
from qloom.mapper import dataflow as df, folding as fl, frontend, limits, planning, qgraph as qg, requant

SHIPPED = ("digits_mlp_qdq.onnx", "digits_mlp_qop.onnx", "digits_cnn_qdq.onnx", "digits_resnet_qdq.onnx")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err.removeprefix("qloom: error: ")


def test_the_largest_device_is_the_target_registrys():
    from qloom import synth
    from qloom.mapper import resources
    ecp5 = synth.TARGETS["ecp5-85k"]["available"]
    block = max(w * d for w, d in resources.TARGETS["ecp5-85k"]["bram_shapes"])
    assert (limits.LARGEST_LUTS, limits.LARGEST_BRAM_BITS) == (ecp5["lut"], ecp5["bram"] * block)
    for t in synth.TARGETS.values():        # well above every device qloom builds for
        assert limits.LUTS.default >= 4 * t["available"]["lut"]
    assert limits.MEMORY_BITS.default >= 2 * limits.LARGEST_BRAM_BITS


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_are_far_inside_every_bound(digits, name):
    graph = frontend.load_qgraph(digits / name)
    assert list(limits.violations(graph)) == []
    assert max(np.prod(s) for s in graph.shapes.values()) * 100 < limits.TENSOR_ELEMENTS.value
    steps = sum(limits.planner_steps(n.target, lo, hi) for n, _, lo, hi in limits.planner_jobs(graph))
    assert steps * 10 < limits.PLANNER_STEPS.value
    weights = sum(b * e for e, b in map(limits.weight_bits, graph.layers(qg.Dense) + graph.layers(qg.Conv)))
    assert weights * 50 < limits.MEMORY_BITS.value


def test_levels_are_the_breakpoints_the_planner_finds(digits):
    for name in ("digits_mlp_qop.onnx", "digits_cnn_qdq.onnx"):
        graph = frontend.load_qgraph(digits / name)
        for node, _, lo, hi in limits.planner_jobs(graph):
            counts = [len(requant.breakpoints(lambda a, c=c: node.target.evaluate(a, c), lo[c], hi[c])[1])
                      for c in range(node.channels)]
            assert node.target.levels(lo, hi).tolist() == counts


def test_accumulator_ranges_taken_in_slices_are_the_layers_own(digits, monkeypatch):
    monkeypatch.setattr(limits, "WEIGHTS_AT_ONCE", 7)
    for name in ("digits_mlp_qop.onnx", "digits_resnet_qdq.onnx"):       # dense, conv, depthwise
        graph = frontend.load_qgraph(digits / name)
        for node in graph.layers(qg.Dense) + graph.layers(qg.Conv):
            lo, hi = graph.code_range(node.inputs[0])
            for got, want in zip(limits.acc_range(node, lo, hi), node.acc_range(lo, hi)):
                np.testing.assert_array_equal(got, want)


def test_a_bound_is_raised_or_lowered_by_its_variable(capsys, monkeypatch, digits, tmp_path):
    model = str(digits / "digits_mlp_qop.onnx")
    monkeypatch.setenv("QLOOM_MAX_CHANNELS", "16")
    code, _, err = run_cli(capsys, "compile", model, "-o", str(tmp_path / "out"))
    assert code == 2 and not (tmp_path / "out").exists()
    assert re.match(r"\S+digits_mlp_qop\.onnx: Dense 'dense0' \(ONNX node '[^']+'\) has 32 output channels; qloom "
                    r"proves the requantization of at most 16 channels per layer .* or set QLOOM_MAX_CHANNELS=N to "
                    r"raise the limit\.$", err), err
    monkeypatch.setenv("QLOOM_MAX_CHANNELS", "1_000")
    assert qc.compile_model(model).dataflow.cycles_per_frame > 0


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e6"])
def test_a_variable_that_is_not_a_positive_number_is_refused(capsys, monkeypatch, digits, value):
    monkeypatch.setenv("QLOOM_MAX_PLANNER_STEPS", value)
    code, _, err = run_cli(capsys, "inspect", str(digits / "digits_mlp_qop.onnx"))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"environment variable QLOOM_MAX_PLANNER_STEPS={value!r}: must be a positive whole number "
                          "(the most steps of requantization proof; default 268,435,456). Set it to a number or "
                          "unset it."), err


def test_inspect_proves_within_the_bound_and_marks_the_rest(digits, monkeypatch):
    graph = frontend.load_qgraph(digits / "digits_mlp_qop.onnx")
    (first, _, lo, hi), *_ = limits.planner_jobs(graph)
    monkeypatch.setenv("QLOOM_MAX_PLANNER_STEPS", str(limits.planner_steps(first.target, lo, hi)))
    proved = []
    real = planning.plan
    monkeypatch.setattr(planning, "plan", lambda target, lo, hi, label: proved.append(label) or
                        real(target, lo, hi, label))
    plans = planning.plans(graph, partial=True)
    assert proved == [first.label]
    later = [p for name, p in plans.items() if name != first.name]
    assert later and all(isinstance(p, planning.NotProven) and re.fullmatch(r"not proven \([\d,]+ steps, over the 0 "
                                                                           r"left\)", p.kind) for p in later)
    with pytest.raises(limits.LimitError, match=r"^Dense 'dense0' \(ONNX node '[^']+'\): proving its requantization "
                                                r"takes about [\d,]+ steps \(32 channels of up to \d+ output levels "
                                                r"each; [\d,]+ for the whole model\)"):
        planning.plans(graph)
    assert proved == [first.label]          # refused before any proof


def test_the_planner_refuses_before_it_searches(monkeypatch):
    from qloom.mapper.requant_targets import ScaleRound
    target = ScaleRound(tables=(), multiplier=np.full(70_000, 0.01, np.float32), zero_point=0, lo=0, hi=255)
    monkeypatch.setattr(requant, "breakpoints", lambda *a: pytest.fail("searched"))
    with pytest.raises(limits.LimitError, match=r"^Dense 'big' has 70,000 output channels; qloom proves the "
                                                r"requantization of at most 65,536 channels per layer"):
        requant.plan(target, np.full(70_000, -10**5), np.full(70_000, 10**5), label="Dense 'big'")
    with pytest.raises(limits.LimitError, match=r"^Dense 'big': proving its requantization takes about "
                                                r"337,920,000 steps \(5,000 channels of up to 255 output levels "
                                                r"each\); qloom proves at most 268,435,456 steps per model"):
        requant.plan(ScaleRound(tables=(), multiplier=np.full(5000, 0.01, np.float32), zero_point=0, lo=0, hi=255),
                     np.full(5000, -10**5), np.full(5000, 10**5), label="Dense 'big'")


@pytest.mark.parametrize("variable,value,message", [
    ("QLOOM_MAX_MEMORY_BITS", "30000",
     r"the design's memories and weights hold [\d,]+ bits \(the most, [\d,]+, in \w+ '\w+' of \w+ '\w+' \(ONNX "
     r"node '[^']+'\)\), more than any device qloom builds for: the limit is 30,000 bits, 0\.0078× the "
     r"3,833,856 bits of block RAM of the ECP5-85F, the largest\. Use a smaller model or smaller FIFO depths, or "
     r"set QLOOM_MAX_MEMORY_BITS=N to raise the limit\.$"),
    ("QLOOM_MAX_LUTS", "1000",
     r"the design is estimated at [\d,]+ LUTs on the ECP5-85F \(the most, [\d,]+, in \w+ '\w+' of \w+ '\w+' "
     r"\(ONNX node '[^']+'\)(, pe \d+ × simd \d+)?\), more than any device qloom builds for: the limit is 1,000 "
     r"LUTs"),
    ("QLOOM_MAX_BEATS", "20",
     r"FIFO 'fifo0' in front of MVU 'mvu_dense0' of Dense 'dense0' \(ONNX node '[^']+'\) sends 32 beats per frame; "
     r"qloom's timing model follows at most 20 beats per frame of a kernel"),
])
def test_the_dataflow_graph_is_checked_before_timing_and_verilog(digits, monkeypatch, variable, value, message):
    """digits_mlp_qop's QGraph is inside the lowered bound (weights 18,944 bits, no line buffer);
    its Dataflow graph is not, and is refused before its latency is followed or its Verilog made."""
    model = digits / "digits_mlp_qop.onnx"
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(df.Dataflow, "latency", property(lambda self: pytest.fail("timing followed")))
    with pytest.raises(limits.LimitError, match=re.escape(str(model)) + ": " + message):
        qc.compile_model(model, max_multipliers=4)


def test_beat_times_refuses_beyond_the_bound_and_takes_needs_at_once(digits, monkeypatch):
    graph = frontend.load_qgraph(digits / "digits_resnet_qdq.onnx")
    plans = planning.plans(graph)
    d = df.build(graph, fl.balanced(graph, 8), plans)
    for k in d.all_kernels:                 # every beat at once is every beat one by one
        if not isinstance(k, (df.ResidualKernel, df.WindowKernel)):
            n = np.arange(1, k.beats_out + 1)
            assert np.asarray(k.needs(n)).tolist() == [k.needs(int(i)) for i in n], k.name
    monkeypatch.setenv("QLOOM_MAX_BEATS", "100")
    with pytest.raises(limits.LimitError, match=r"^Window 'window_conv0' sends 400 beats per frame"):
        d.latency


REAL_SIZES = [
    # the measured problems of issue 13, at their size: a 1×1 conv of 1,000,000 channels on one
    # input channel (1 MB), a 1×1 conv on a 20000×20000 image (declared), a 4096×4096 int8 Gemm
    # (16 MB of weights, written here); each used to run for minutes or past 2.5 GB
    ("million_channels", corpus_sizes.MILLION_CHANNELS, ["inspect"], 400,
     r"not proven.*note: qloom compile refuses this model: Conv 'conv0'"),
    ("million_channels", corpus_sizes.MILLION_CHANNELS, ["compile", "-o", "out"], 400,
     r"qloom: error: m\.onnx: Conv 'conv0' \(ONNX node 'wide_conv'\) has 1,000,000 output channels"),
    ("image", corpus_sizes.IMAGE_20000, ["compile", "-o", "out"], 400,
     r"qloom: error: m\.onnx: Quantize 'quantize0' \(ONNX node 'quant_in'\) produces a tensor of 1×20000×20000"),
    ("gemm_4096", corpus_sizes.net((4096,), lambda n: n.gemm("big_gemm", 4096)), ["compile", "-o", "out"], 400,
     r"qloom: error: m\.onnx: the model's 8-bit weight tensors hold 16,777,216 codes \(the most in 'big_gemm\.w' "
     r"of QGemm node 'big_gemm': 16,777,216\), and the design needs at least a bit of memory or logic for each"),
]

MEASURE = """import resource, sys, time
from qloom.cli import main
t = time.time()
code = main(sys.argv[1:])
print(f"\\nMEASURED {code} {time.time() - t:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}")
"""


@pytest.mark.parametrize("name,build,argv,megabytes,message", REAL_SIZES,
                         ids=[f"{r[0]}-{r[2][0]}" for r in REAL_SIZES])
def test_real_sizes_are_refused_in_seconds_and_little_memory(tmp_path, name, build, argv, megabytes, message):
    """Peak RSS of the whole qloom process, loading the model included (the 4096×4096 Gemm is
    refused from its ONNX tensors: its QGraph would hold 128 MiB of int64 weights and take
    770 MB to build, its Verilog minutes and GBs)."""
    build(tmp_path)
    started = time.time()
    r = subprocess.run([sys.executable, "-c", MEASURE, argv[0], "m.onnx", *argv[1:]], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    code, seconds, rss = r.stdout.rsplit("MEASURED", 1)[1].split()
    assert int(code) == (0 if argv[0] == "inspect" else 2), r.stderr
    assert re.search(message, r.stdout + r.stderr, re.S), r.stdout + r.stderr
    assert not (tmp_path / "out").exists()
    assert float(seconds) < 20 and time.time() - started < 60
    assert int(rss) < megabytes, f"peak RSS {rss} MB"
