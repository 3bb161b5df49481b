"""Tier 4: synthesis and place-and-route smoke of the digits MLP on iCE40 UP5K, with open tools."""
from qloom import compile as qc, synth


def test_digits_mlp_places_and_routes_on_ice40_up5k(digits, tmp_path):
    design = qc.compile_model(digits / "digits_mlp_qdq.onnx", max_multipliers=synth.TARGETS["ice40-up5k"]["multipliers"])
    result = synth.synthesize(design, "ice40-up5k", workdir=tmp_path)
    # numbers read from the tools' own reports
    assert (tmp_path / "stat.json").exists() and (tmp_path / "report.json").exists()
    assert 0 < result.lut <= 5280
    assert result.ff > 0
    assert result.utilization["ICESTORM_LC"]["used"] <= result.utilization["ICESTORM_LC"]["available"]
    assert result.fmax_mhz > 0
