"""Folding to a target's budget (mapper/budget.py): the estimate of what it returns fits, no
faster balanced folding does, what binds is said, and nothing that fits is refused."""
import json

import pytest

from conftest import DIGITS
from qloom import cli
from qloom import compile as qc
from qloom.mapper import budget, folding as fl, frontend, planning, resources
from qloom.mapper import dataflow as df
from qloom.mapper.errors import QloomError
from qloom.mapper.frontend import loading
from qloom.mapper.targets import NAMES, TARGETS

MODELS = ["digits_mlp_qdq.onnx", "digits_cnn_qdq.onnx", "digits_resnet_qdq.onnx"]
CAPS = [None, {"lut": 0.5}, {"lut": 0.3, "bram": 0.5}, {"bram": 0.2}]


def graph_and_plans(name):
    path = str(DIGITS / name)
    graph = frontend.to_qgraph(loading.load(path), path)
    return graph, planning.plans(graph)


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    return request.param, *graph_and_plans(request.param)


@pytest.mark.parametrize("caps", CAPS, ids=["default", "lut50", "lut30-bram50", "bram20"])
@pytest.mark.parametrize("target", NAMES)
def test_the_fit_fits_and_no_faster_balanced_folding_does(model, target, caps):
    name, graph, plans = model
    try:
        fit = budget.fit(graph, plans, target, caps, source=name)
    except budget.DoesNotFit:
        smallest = df.build(graph, fl.for_cycles(graph, fl.candidates(graph)[-1]), plans)
        assert budget.over(resources.estimate(smallest, target), target, caps)
        return
    assert not budget.over(resources.estimate(fit.dataflow, target), target, caps)
    assert fit.estimate == resources.estimate(fit.dataflow, target)
    # independent of the search: every multiplier budget's balanced folding that is faster
    # than the fit is over a cap, its RAMs where Yosys puts them or in block RAM
    for m in sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, fit.dataflow.multipliers + 1}):
        d = df.build(graph, fl.balanced(graph, m), plans)
        if d.cycles_per_frame < fit.dataflow.cycles_per_frame:
            assert budget.over(resources.estimate(d, target), target, caps), (m, d.folding)
            assert budget.over(resources.estimate(df.pin_rams(d), target), target, caps), (m, d.folding)
    if fit.binds:           # what binds: the next faster candidate is over exactly those caps
        assert fit.faster_cycles < fit.dataflow.cycles_per_frame
        assert all(used > limit for _, used, limit in fit.binds)


def test_weights_go_to_spram_where_block_ram_binds(monkeypatch):
    """The UP5K with a fifth of its block RAMs: the digits MLP's weights that do not fit them go
    to SPRAM, the largest first; without SPRAM no folding fits (its weights alone need 9 block
    RAMs of the 6 allowed); fold.json says which layers."""
    graph, plans = graph_and_plans("digits_mlp_qdq.onnx")
    caps = {"bram": 0.2}
    fit = budget.fit(graph, plans, "ice40-up5k", caps)
    spram = {k.name: k.spram_cell for k in fit.dataflow.all_kernels if getattr(k, "spram_cell", None)}
    assert spram and set(spram.values()) == {"SB_SPRAM256KA"}
    assert 0 < fit.estimate["spram"] <= 4 and not budget.over(fit.estimate, "ice40-up5k", caps)
    assert [n for n, v in fit.dataflow.folding.items() if v.get("weights") == "spram"] == [n[4:] for n in spram]
    monkeypatch.setitem(TARGETS["ice40-up5k"], "spram_cell", None)
    with pytest.raises(budget.DoesNotFit, match=r"needs an estimated 9 BRAM of the 6 allowed"):
        budget.fit(graph, plans, "ice40-up5k", caps)


def test_spram_asked_where_there_is_none_is_refused(tmp_path):
    """A fold file's "weights": "spram" names the layer and what to do where the target has no
    SPRAM, or the layer keeps no weight memory."""
    path = tmp_path / "fold.json"
    path.write_text(json.dumps({"dense0": {"pe": 1, "simd": 8, "weights": "spram"}, "dense1": {"pe": 1, "simd": 1}}))
    with pytest.raises(QloomError, match=r"layer 'dense0' \(ONNX node '[^']+'\): its weights are asked for in SPRAM, which the "
                             r"ECP5-25F has none of; build for a target with SPRAM \(ice40-up5k\)"):
        qc.compile_model(DIGITS / "digits_mlp_qdq.onnx", fold=path, target="ecp5-25k")
    with pytest.raises(QloomError, match=r"layer 'dense0' .*: its weights are asked for in SPRAM, but no --target is "
                                         r"given; build for a target with SPRAM \(ice40-up5k\)"):
        qc.compile_model(DIGITS / "digits_mlp_qdq.onnx", fold=path)
    path.write_text(json.dumps({"dense0": {"pe": 32, "simd": 64, "weights": "spram"}, "dense1": {"pe": 1, "simd": 1}}))
    with pytest.raises(QloomError, match=r"layer 'dense0' .*: keeps no weight memory to put in SPRAM \(at 32×64 its "
                                        r"weights are one step, built as constants\)"):
        qc.compile_model(DIGITS / "digits_mlp_qdq.onnx", fold=path, target="ice40-up5k")
    path.write_text(json.dumps({"dense0": {"pe": 1, "simd": 8, "weights": "uram"}, "dense1": {"pe": 1, "simd": 1}}))
    with pytest.raises(QloomError, match=r"\"weights\" is \"uram\"; give \"spram\""):
        qc.compile_model(DIGITS / "digits_mlp_qdq.onnx", fold=path, target="ice40-up5k")


def test_a_larger_budget_is_never_slower(model):
    name, graph, plans = model
    fits = []
    for caps in ({"lut": 0.2}, {"lut": 0.4}, {"lut": 0.8}):
        try:
            fits.append(budget.fit(graph, plans, "ecp5-25k", caps, source=name).dataflow.cycles_per_frame)
        except budget.DoesNotFit:
            fits.append(float("inf"))
    assert fits == sorted(fits, reverse=True)


def test_the_fit_is_the_same_design_compile_builds():
    path = DIGITS / "digits_mlp_qdq.onnx"
    design = qc.compile_model(path, target="ecp5-45k")
    again = df.build(design.graph, {k: (v["pe"], v["simd"]) for k, v in design.dataflow.folding.items()},
                     design.plans)
    assert again.folding == design.dataflow.folding
    assert design.fit.dataflow is design.dataflow
    # --max-multipliers and --fold still win over the target's budget
    assert qc.compile_model(path, target="ecp5-45k", max_multipliers=4).dataflow.multipliers <= 4
    assert qc.compile_model(path, target="ecp5-45k", max_multipliers=4).fit is None


def test_binding_resource_is_said_and_recorded(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["compile", str(DIGITS / "digits_mlp_qdq.onnx"), "--target", "ice40-up5k", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "folded for the iCE40 UP5K:" in said and "binds: the next faster folding" in said
    info = json.loads((out / "design.json").read_text())
    assert info["budget"]["target"] == "ice40-up5k"
    assert info["budget"]["binds"] and all(b["needed"] > b["allowed"] for b in info["budget"]["binds"])
    assert not budget.over(info["budget"]["estimate"], "ice40-up5k")


def test_caps_parse():
    assert budget.parse_caps("70") == dict.fromkeys(budget.RESOURCES, 0.7)
    assert budget.parse_caps("lut=85, BRAM=95%") == {"lut": 0.85, "bram": 0.95}
    for bad in ("", "0", "101", "nan", "lut", "lut=", "dsp=80,dsp=90", "uram=50", "lut=80,,ff=20"):
        with pytest.raises(ValueError):
            budget.parse_caps(bad)


def test_caps_count_ice40_logic_cells():
    """A logic cell holds a LUT and a flip-flop: on iCE40 the LUT cap also holds LUTs plus the
    flip-flops that do not pack, on ECP5 not."""
    lut = TARGETS["ice40-up5k"]["available"]["lut"]
    estimate = {"lut": int(lut * 0.7), "ff": int(lut * 0.7), "bram": 0, "dsp": 0}
    assert [k for k, _, _ in budget.over(estimate, "ice40-up5k")] == ["cells"]
    assert budget.over(estimate, "ecp5-25k") == []


def test_bench_row_of_a_model_that_fits_no_folding(tmp_path):
    """bench: a model no folding of which fits the target is a row saying what it needs, without
    running a tool, and the table is written with it.  (Its weights would overflow the block
    RAMs; in SPRAM they fit, and then its logic cells do not.)"""
    import sys
    from conftest import REPO
    sys.path.insert(0, str(REPO))
    from bench import results
    row = results.measure("QOperator MLP", DIGITS / "digits_mlp_qop.onnx", DIGITS / "test_inputs.npy",
                          "ice40-up5k", 2, tmp_path, synthesize=None)
    assert row["status"].startswith("does not fit (estimated ") and "logic cells of the 4,224 allowed" in row["status"]
    assert "| QOperator MLP | ice40-up5k |  |  | does not fit" in results.markdown([row], "here", ["QOperator MLP"])


def test_lut_bound_folds_trade_lut_ram_for_block_ram(tmp_path, monkeypatch):
    """ResNet-8 on the ECP5-85F at 36,864 cycles a frame: its buffers where Yosys finds them
    cheapest (much of it distributed RAM, in LUTs) need more LUTs than with them in block RAM
    (dataflow.pin_rams).  With the LUT cap between the two, the fit pins them, says so, and is
    faster than the fit that may not."""
    from test_circuit_hashes import model_path
    path = model_path("resnet8_qdq", tmp_path)
    design = qc.compile_model(path, max_multipliers=32)
    auto = df.build(design.graph, fl.for_cycles(design.graph, 36_864), design.plans)     # products unsplit
    luts = [resources.estimate(d, "ecp5-85k")["lut"] for d in (auto, df.pin_rams(auto))]
    assert luts[1] < luts[0]
    caps = {"lut": (luts[0] + luts[1]) / 2 / TARGETS["ecp5-85k"]["available"]["lut"], "bram": 1.0}
    fit = budget.fit(design.graph, design.plans, "ecp5-85k", caps)
    assert fit.block_rams and fit.dataflow.cycles_per_frame <= 36_864
    assert "its buffers in block RAM" in fit.sentence() and fit.to_json()["rams"] == "block"
    assert not budget.over(resources.estimate(fit.dataflow, "ecp5-85k"), "ecp5-85k", caps)
    monkeypatch.setattr(df, "pin_rams", lambda dataflow: dataflow)
    unpinned = budget.fit(design.graph, design.plans, "ecp5-85k", caps)
    assert not unpinned.block_rams and unpinned.dataflow.cycles_per_frame > fit.dataflow.cycles_per_frame


def test_products_are_split_only_with_the_luts_a_faster_folding_leaves(tmp_path):
    """ResNet-8 on the ECP5-85F: at 49,152 cycles a frame its LUT-built products split in two
    stages (dataflow.lut_products) are over the LUT cap, so the fit takes that folding without
    the split rather than a slower one with it.  The digits MLP on the UP5K has all its products
    in SB_MAC16s (two a block), none left to split."""
    from test_circuit_hashes import model_path
    design = qc.compile_model(model_path("resnet8_qdq", tmp_path), target="ecp5-85k")
    d = design.dataflow
    assert d.cycles_per_frame == 49_152 and not any(getattr(k, "split_products", False) for k in d.all_kernels)
    split = df.build(design.graph, fl.for_cycles(design.graph, 49_152), design.plans, target="ecp5-85k")
    assert any(getattr(k, "split_products", False) for k in split.all_kernels)
    assert [k for k, _, _ in budget.over(resources.estimate(split, "ecp5-85k"), "ecp5-85k")] == ["lut"]
    assert not budget.over(resources.estimate(d, "ecp5-85k"), "ecp5-85k")
    mlp = qc.compile_model(DIGITS / "digits_mlp_qdq.onnx", target="ice40-up5k").dataflow
    assert [(k.name, k.split_products, k.dsp_cell) for k in mlp.all_kernels if k.kind == "MVU"] == [
        ("mvu_dense0", False, "SB_MAC16"), ("mvu_dense1", False, "SB_MAC16")]
