"""Hard multipliers instantiated with their own pipeline registers, and simulation models of
exactly the configurations instantiated here.

Yosys maps a ``$mul`` to ECP5's MULT18X18D with none of its registers (it has no pass that
packs them), so the product's path runs from fabric registers through the DSP block and back:
routing to the DSP column and out again, about 12 ns in nextpnr-ecp5 (the residual CNN at
80 MHz on the 25F).  Instantiated with its input and output registers, the multiply lies
between registers of the block itself.  On iCE40, Yosys's ice40_dsp packs at most the
registers of an operand that feeds one multiply, and one product a block; an SB_MAC16
instantiated here has both operand registers and its product register, and in its 8×8 mode
carries two independent products of operands of up to 8 bits (the top and bottom halves of its
ports), so the UP5K's eight blocks hold sixteen.

The Verilog then names a vendor primitive: the synthesis flows have it (Yosys's cell
libraries, Lattice's tools); the simulators get the models below, guarded by
``ifndef SYNTHESIS`` (Yosys and vendor tools define SYNTHESIS; Verilator and Icarus do not).
"""
from amaranth.hdl import Cat, ClockSignal, Const, Instance, Signal, signed, unsigned

from .util import instantiated_models

CELLS = ("MULT18X18D", "SB_MAC16")
MODEL = "model"     # the same registers in Amaranth, for amaranth.sim (which runs no primitive)
PORT_BITS = {"MULT18X18D": 18, "SB_MAC16": 16}


def _check(cell):
    if cell != MODEL and cell not in CELLS:
        raise ValueError(f"unknown DSP cell {cell!r}; known: {', '.join(CELLS)}")


def fits(cell, a_shape, b_shape):
    """Whether operands of these shapes fit one ``cell`` product (MULT18X18D: 18-bit signed
    ports, so unsigned operands of up to 17 bits; SB_MAC16: 16 bits, each port signed or not)."""
    _check(cell)
    if cell == MODEL:
        return True
    unsigned_bit = cell == "MULT18X18D"
    return all(s.width + (unsigned_bit and not s.signed) <= PORT_BITS[cell] for s in (a_shape, b_shape))


def require(cell, a_shape, b_shape):
    """Refuse operands of these shapes where they do not fit one ``cell`` product (fits)."""
    if cell is not None and not fits(cell, a_shape, b_shape):
        raise ValueError(f"weights of {a_shape} by inputs of {b_shape} do not fit one {cell}")


def per_block(cell, a_shape, b_shape):
    """Products of operands of these shapes one ``cell`` carries: two in SB_MAC16's 8×8 mode
    (operands of up to 8 bits), else one (mirrored by mapper.resources.dsp_blocks)."""
    _check(cell)
    return 2 if cell == "SB_MAC16" and max(a_shape.width, b_shape.width) <= 8 else 1


def registered_products(m, operands, en, shape, *, cell, names):
    """``a · b`` for each pair ``(a, b)`` of ``operands`` (all of the same shapes), as Signals
    of ``shape`` (``names``: one a product, the blocks named by their first), from ``cell``
    blocks whose operand and product registers are used and enabled by ``en``: the products
    of the operands of a cycle with ``en`` high appear after two more such cycles (no reset:
    datapath registers)."""
    a_shape, b_shape = operands[0][0].shape(), operands[0][1].shape()
    if not fits(cell, a_shape, b_shape):
        raise ValueError(f"{cell}: operands {a_shape} and {b_shape} do not fit its ports")
    outs = []
    if cell == MODEL:
        for (a, b), name in zip(operands, names):
            out = Signal(shape, name=f"{name}_prod", reset_less=True)
            a_reg = Signal(a_shape, name=f"{name}_a", reset_less=True)
            b_reg = Signal(b_shape, name=f"{name}_b", reset_less=True)
            with m.If(en):
                m.d.sync += [a_reg.eq(a), b_reg.eq(b), out.eq(a_reg * b_reg)]
            outs.append(out)
        return outs
    n = per_block(cell, a_shape, b_shape)
    build = {"MULT18X18D": _mult18x18d, "SB_MAC16": _sb_mac16}[cell]
    for k in range(0, len(operands), n):
        group = [Signal(shape, name=f"{name}_prod", reset_less=True) for name in names[k:k + n]]
        build(m, operands[k:k + n], en, group, names[k])
        outs += group
    return outs


def _mult18x18d(m, operands, en, outs, name):
    ((a, b),), (out,) = operands, outs
    a18, b18 = Signal(signed(18), name=f"{name}_a"), Signal(signed(18), name=f"{name}_b")
    p = Signal(36, name=f"{name}_p")
    m.d.comb += [a18.eq(a), b18.eq(b)]      # sign- or zero-extended by their own shapes
    ports = {f"i_A{k}": a18[k] for k in range(18)}
    ports |= {f"i_B{k}": b18[k] for k in range(18)}
    ports |= {f"i_C{k}": Const(0, 1) for k in range(18)}
    ports |= {f"o_P{k}": p[k] for k in range(36)}
    m.submodules[name] = Instance(
        "MULT18X18D", p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE0",
        p_REG_INPUTA_RST="RST0", p_REG_INPUTB_RST="RST0", p_REG_OUTPUT_RST="RST0",
        p_REG_PIPELINE_CLK="NONE", p_GSR="DISABLED", p_RESETMODE="SYNC",
        i_CLK0=ClockSignal(), i_CE0=en, i_RST0=Const(0, 1),
        i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
        **ports)
    m.d.comb += out.eq(p.as_signed())       # exact: the product fits its shape


def _sb_mac16(m, operands, en, outs, name):
    """One SB_MAC16: a 16×16 product registered in H (output select 3), or in the 8×8 mode two
    products, the first on the top halves of A, B and O, the second on the bottom, registered
    in F and G (output select 2); A and B registered."""
    a_shape, b_shape = operands[0][0].shape(), operands[0][1].shape()
    wide = max(a_shape.width, b_shape.width) > 8      # one 16×16 product (per_block)
    half = 16 if wide else 8
    ext = [(Signal(signed(half) if a_shape.signed else unsigned(half), name=f"{name}_a{k}"),
            Signal(signed(half) if b_shape.signed else unsigned(half), name=f"{name}_b{k}"))
           for k in range(len(operands))]
    m.d.comb += [x.eq(v) for pair, values in zip(ext, operands) for x, v in zip(pair, values)]
    if wide:
        a, b = ext[0]
    else:                                   # top: the first product; bottom: the second (or nothing)
        pad = (Const(0, 8), Const(0, 8))
        bottom, top = (ext[1] if len(ext) > 1 else pad), ext[0]
        a, b = Cat(bottom[0], top[0]), Cat(bottom[1], top[1])
    o = Signal(32, name=f"{name}_o")
    zero = Const(0, 1)
    m.submodules[name] = Instance(
        "SB_MAC16", p_A_REG=Const(1, 1), p_B_REG=Const(1, 1), p_C_REG=Const(0, 1), p_D_REG=Const(0, 1),
        p_MODE_8x8=Const(0 if wide else 1, 1),
        p_TOP_8x8_MULT_REG=Const(0 if wide else 1, 1), p_BOT_8x8_MULT_REG=Const(0 if wide else 1, 1),
        p_PIPELINE_16x16_MULT_REG1=Const(0, 1), p_PIPELINE_16x16_MULT_REG2=Const(1 if wide else 0, 1),
        p_TOPOUTPUT_SELECT=Const(3 if wide else 2, 2), p_BOTOUTPUT_SELECT=Const(3 if wide else 2, 2),
        p_A_SIGNED=Const(int(a_shape.signed), 1), p_B_SIGNED=Const(int(b_shape.signed), 1),
        i_CLK=ClockSignal(), i_CE=en, i_A=a, i_B=b, i_C=Const(0, 16), i_D=Const(0, 16),
        **{f"i_{port}": zero for port in ("AHOLD", "BHOLD", "CHOLD", "DHOLD", "IRSTTOP", "IRSTBOT", "ORSTTOP",
                                          "ORSTBOT", "OLOADTOP", "OLOADBOT", "ADDSUBTOP", "ADDSUBBOT",
                                          "OHOLDTOP", "OHOLDBOT", "CI", "ACCUMCI", "SIGNEXTIN")},
        o_O=o)
    def value(bits):                        # a product, signed when an operand is
        return bits.as_signed() if a_shape.signed or b_shape.signed else bits
    if wide:
        m.d.comb += outs[0].eq(value(o))
    else:                                   # each 16-bit product, exact in its shape
        m.d.comb += outs[0].eq(value(o[16:]))
        if len(outs) > 1:
            m.d.comb += outs[1].eq(value(o[:16]))


def _mult18x18d_model():
    bits = lambda port, n: ", ".join(f"{port}{k}" for k in reversed(range(n)))   # noqa: E731
    params = "\n".join(f'  parameter {p} = "{v}";' for p, v in (
        *((f"REG_INPUT{x}_{y}", v) for x in "AB" for y, v in (("CLK", "NONE"), ("CE", "CE0"), ("RST", "RST0"))),
        ("REG_PIPELINE_CLK", "NONE"), ("REG_OUTPUT_CLK", "NONE"), ("REG_OUTPUT_CE", "CE0"),
        ("REG_OUTPUT_RST", "RST0"), ("GSR", "ENABLED"), ("RESETMODE", "SYNC")))
    return f"""
`ifndef SYNTHESIS
// qloom's simulation model of the ECP5 MULT18X18D in the one configuration hdl/dsp.py
// instantiates: A and B registered on CLK0 (enable CE0, synchronous reset RST0), no pipeline
// register, P registered on CLK0; both operands signed; no shift chains, no C input.
module MULT18X18D({bits("A", 18)}, {bits("B", 18)}, {bits("C", 18)},
    SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0, {bits("P", 36)});
{params}
  input {bits("A", 18)};
  input {bits("B", 18)};
  input {bits("C", 18)};
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0;
  output {bits("P", 36)};
  wire signed [17:0] a = {{{bits("A", 18)}}};
  wire signed [17:0] b = {{{bits("B", 18)}}};
  reg signed [17:0] a_reg = 0, b_reg = 0;
  reg signed [35:0] p_reg = 0;
  assign {{{bits("P", 36)}}} = p_reg;
  initial begin
    if (REG_INPUTA_CLK != "CLK0" || REG_INPUTB_CLK != "CLK0" || REG_OUTPUT_CLK != "CLK0"
        || REG_PIPELINE_CLK != "NONE" || RESETMODE != "SYNC") begin
      $display("MULT18X18D (qloom model): only registered inputs and output on CLK0 are modelled");
      $finish;
    end
  end
  always @(posedge CLK0) begin
    if (RST0) begin
      a_reg <= 0; b_reg <= 0; p_reg <= 0;
    end else if (CE0) begin
      a_reg <= a; b_reg <= b; p_reg <= a_reg * b_reg;
    end
  end
endmodule
`endif
"""


def _sb_mac16_model():
    params = "\n".join(f"  parameter [{w - 1}:0] {p} = 0;" for p, w in (
        ("NEG_TRIGGER", 1), ("C_REG", 1), ("A_REG", 1), ("B_REG", 1), ("D_REG", 1), ("TOP_8x8_MULT_REG", 1),
        ("BOT_8x8_MULT_REG", 1), ("PIPELINE_16x16_MULT_REG1", 1), ("PIPELINE_16x16_MULT_REG2", 1),
        ("TOPOUTPUT_SELECT", 2), ("TOPADDSUB_LOWERINPUT", 2), ("TOPADDSUB_UPPERINPUT", 1),
        ("TOPADDSUB_CARRYSELECT", 2), ("BOTOUTPUT_SELECT", 2), ("BOTADDSUB_LOWERINPUT", 2),
        ("BOTADDSUB_UPPERINPUT", 1), ("BOTADDSUB_CARRYSELECT", 2), ("MODE_8x8", 1), ("A_SIGNED", 1),
        ("B_SIGNED", 1)))
    return f"""
`ifndef SYNTHESIS
// qloom's simulation model of the iCE40 SB_MAC16 in the two configurations hdl/dsp.py
// instantiates: A and B registered (enable CE); either the 16×16 product registered in H
// (output select 3) or, in the 8×8 mode, the products of the top and of the bottom halves
// registered in F and G (output select 2).  The hold, reset, load, add/subtract and carry
// inputs are tied low by qloom and not modelled.
module SB_MAC16(input CLK, CE, input [15:0] C, A, B, D,
    input AHOLD, BHOLD, CHOLD, DHOLD, IRSTTOP, IRSTBOT, ORSTTOP, ORSTBOT, OLOADTOP, OLOADBOT,
    input ADDSUBTOP, ADDSUBBOT, OHOLDTOP, OHOLDBOT, CI, ACCUMCI, SIGNEXTIN,
    output [31:0] O, output CO, ACCUMCO, SIGNEXTOUT);
{params}
  reg [15:0] rA = 0, rB = 0, rF = 0, rG = 0;
  reg [31:0] rH = 0;
  wire [15:0] ah = {{{{8{{A_SIGNED & rA[15]}}}}, rA[15:8]}}, al = {{{{8{{A_SIGNED & rA[7]}}}}, rA[7:0]}};
  wire [15:0] bh = {{{{8{{B_SIGNED & rB[15]}}}}, rB[15:8]}}, bl = {{{{8{{B_SIGNED & rB[7]}}}}, rB[7:0]}};
  wire [31:0] a32 = {{{{16{{A_SIGNED & rA[15]}}}}, rA}}, b32 = {{{{16{{B_SIGNED & rB[15]}}}}, rB}};
  assign O = MODE_8x8 ? {{rF, rG}} : rH;
  assign CO = 0;
  assign ACCUMCO = 0;
  assign SIGNEXTOUT = 0;
  initial begin
    if (!A_REG || !B_REG || C_REG || D_REG || NEG_TRIGGER || PIPELINE_16x16_MULT_REG1
        || !(MODE_8x8 ? TOP_8x8_MULT_REG && BOT_8x8_MULT_REG && TOPOUTPUT_SELECT == 2 && BOTOUTPUT_SELECT == 2
                      : PIPELINE_16x16_MULT_REG2 && TOPOUTPUT_SELECT == 3 && BOTOUTPUT_SELECT == 3)) begin
      $display("SB_MAC16 (qloom model): only the registered products hdl/dsp.py instantiates are modelled");
      $finish;
    end
  end
  always @(posedge CLK) begin
    if (CE) begin
      rA <= A; rB <= B;
      rF <= ah * bh; rG <= al * bl; rH <= a32 * b32;
    end
  end
endmodule
`endif
"""


SIM_MODELS = {"MULT18X18D": _mult18x18d_model(), "SB_MAC16": _sb_mac16_model()}


def sim_models(verilog):
    """The simulation models of the cells that ``verilog`` instantiates, to append to it."""
    return instantiated_models(verilog, SIM_MODELS)
