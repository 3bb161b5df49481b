"""Tier 4: synthesis and place-and-route of the digits MLP on iCE40 UP5K with open tools; the
benchmark row and the report's synthesis table come from the tools' own output."""
import json
import sys

from conftest import REPO
from qloom import compile as qc, report, synth
from qloom.mapper import resources

sys.path.insert(0, str(REPO))
from bench import results  # noqa: E402


def test_digits_mlp_places_and_routes_on_ice40_up5k(digits, tmp_path):
    runs = []

    def synthesize(design, target, workdir):
        runs.append((design, synth.synthesize(design, target, workdir=workdir)))
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
    assert f"{row['fmax_mhz']:.1f}" in text
    # and the report puts them beside the estimates
    data = report.data(design, [result])
    s = data["synthesis"][0]
    assert s["measured"] == row["measured"] and s["estimate"] == row["estimate"]
    assert s["fmax_mhz"] == row["fmax_mhz"]
    html = report.render_html(data)
    assert 'id="synthesis"' in html and f"<td class=\"\">{row['measured']['lut']:,}</td>" in html


def test_estimates_of_requantizers_and_windows_follow_yosys_on_ecp5(digits):
    """The digits CNN at the ECP5 budget: a 4-lane requantizer whose parameters take two words
    (most partial products constant or absent in synthesis), a 2-lane one with eight, and a
    window generator (its ECP5 fit), each within 15 % of Yosys synthesizing it alone."""
    design = qc.compile_model(digits / "digits_cnn_qdq.onnx", max_multipliers=32)
    kernels = {k.name: k for k in design.dataflow.all_kernels}
    assert (kernels["requant_requant0"].pe, kernels["requant_requant1"].channels // kernels["requant_requant1"].pe) == (4, 8)
    names = ("requant_requant0", "requant_requant1", "window_conv0")
    measured = synth.kernel_cells(design, "ecp5-85k", only=names)
    for name in names:
        est = resources.estimate_kernel(kernels[name], design.dataflow, "ecp5-85k")["lut"]
        assert abs(resources.error_percent(est, measured[name]["lut"])) <= 15, (name, est, measured[name])


NEXTPNR_FULL = [  # nextpnr's words for a design larger than the UP5K (both measured) → qloom's
    ("Failed to expand region (0, 0) |_> (25, 31) of 5853 ICESTORM_LCs",
     r"does not fit the ice40-up5k: nextpnr needs 5,853 logic cells \(ICESTORM_LCs\) of 5,280\. Fold it further"),
    ("Unable to place cell 'u2_chain.x_DFFLC', no BELs remaining to implement cell type 'ICESTORM_LC'",
     r"does not fit the ice40-up5k: nextpnr ran out of ICESTORM_LC cells\. Fold it further"),
]


def test_a_design_too_large_for_the_device_is_said_so(monkeypatch, digits):
    """nextpnr's "Failed to expand region …" (an AveragePool CNN) and "no BELs remaining …" (the
    residual CNN) on the UP5K become one sentence with what to do."""
    import pytest
    from qloom.mapper.errors import QloomError
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", max_multipliers=4)
    for said, want in NEXTPNR_FULL:
        def run(cmd, cwd, what):
            if "nextpnr" in cmd[0]:
                raise QloomError(f"{what} failed (exit 125): ERROR: {said}")
            (cwd / "stat.json").write_text("{}")
        monkeypatch.setattr(synth, "_run", run)
        with pytest.raises(QloomError, match=want):
            synth.synthesize(design, "ice40-up5k")
