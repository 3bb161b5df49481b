"""Hard multipliers instantiated with their own pipeline registers, and simulation models of
exactly the configurations instantiated here.

Yosys maps a ``$mul`` to ECP5's MULT18X18D with none of its registers (it has no pass that
packs them), so the product's path runs from fabric registers through the DSP block and back:
routing to the DSP column and out again, about 12 ns in nextpnr-ecp5 (the residual CNN at
80 MHz on the 25F).  Instantiated with its input and output registers, the multiply lies
between registers of the block itself.  The Verilog then names a vendor primitive: the
synthesis flows have it (Yosys's cells_bb_ecp5.v, Diamond); the simulators get the model
below, guarded by ``ifndef SYNTHESIS`` (Yosys and vendor tools define SYNTHESIS; Verilator
and Icarus do not).
"""
from amaranth.hdl import ClockSignal, Const, Instance, Signal, signed

CELLS = ("MULT18X18D",)
MODEL = "model"     # the same registers in Amaranth, for amaranth.sim (which runs no primitive)
A_BITS = B_BITS = 18
P_BITS = 36


def fits(cell, a_shape, b_shape):
    """Whether operands of these shapes fit one ``cell`` product (18-bit signed ports:
    unsigned operands of up to 17 bits)."""
    if cell == MODEL:
        return True
    if cell not in CELLS:
        raise ValueError(f"unknown DSP cell {cell!r}; known: {', '.join(CELLS)}")
    return all(s.width + (not s.signed) <= A_BITS for s in (a_shape, b_shape))


def registered_product(m, a, b, en, shape, *, cell="MULT18X18D", name="dsp"):
    """``a · b`` as a Signal of ``shape`` from one ``cell`` whose input and output registers
    are both used and enabled by ``en``: the product of the operands of a cycle with ``en``
    high appears after two more such cycles (no reset: a datapath register)."""
    if not fits(cell, a.shape(), b.shape()):
        raise ValueError(f"{cell}: operands {a.shape()} and {b.shape()} do not fit its 18-bit signed ports")
    out = Signal(shape, name=f"{name}_prod", reset_less=True)
    if cell == MODEL:
        a_reg = Signal(a.shape(), name=f"{name}_a", reset_less=True)
        b_reg = Signal(b.shape(), name=f"{name}_b", reset_less=True)
        with m.If(en):
            m.d.sync += [a_reg.eq(a), b_reg.eq(b), out.eq(a_reg * b_reg)]
        return out
    a18, b18, p = Signal(signed(A_BITS), name=f"{name}_a"), Signal(signed(B_BITS), name=f"{name}_b"), \
        Signal(P_BITS, name=f"{name}_p")
    m.d.comb += [a18.eq(a), b18.eq(b)]      # sign- or zero-extended by their own shapes
    ports = {f"i_A{k}": a18[k] for k in range(A_BITS)}
    ports |= {f"i_B{k}": b18[k] for k in range(B_BITS)}
    ports |= {f"i_C{k}": Const(0, 1) for k in range(A_BITS)}
    ports |= {f"o_P{k}": p[k] for k in range(P_BITS)}
    m.submodules[name] = Instance(
        cell, p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE0",
        p_REG_INPUTA_RST="RST0", p_REG_INPUTB_RST="RST0", p_REG_OUTPUT_RST="RST0",
        p_REG_PIPELINE_CLK="NONE", p_GSR="DISABLED", p_RESETMODE="SYNC",
        i_CLK0=ClockSignal(), i_CE0=en, i_RST0=Const(0, 1),
        i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
        **ports)
    m.d.comb += out.eq(p.as_signed())       # exact: the product fits ``shape``
    return out


def _mult18x18d_model():
    bits = lambda port, n: ", ".join(f"{port}{k}" for k in reversed(range(n)))   # noqa: E731
    return f"""
`ifndef SYNTHESIS
// qloom's simulation model of the ECP5 MULT18X18D in the one configuration hdl/dsp.py
// instantiates: A and B registered on CLK0 (enable CE0, synchronous reset RST0), no pipeline
// register, P registered on CLK0; both operands signed; no shift chains, no C input.
module MULT18X18D({bits("A", 18)}, {bits("B", 18)}, {bits("C", 18)},
    SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0, {bits("P", 36)});
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTA_CE = "CE0";
  parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_INPUTB_CE = "CE0";
  parameter REG_INPUTB_RST = "RST0";
  parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  parameter GSR = "ENABLED";
  parameter RESETMODE = "SYNC";
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


SIM_MODELS = {"MULT18X18D": _mult18x18d_model()}


def sim_models(verilog):
    """The simulation models of the cells that ``verilog`` instantiates, to append to it."""
    return "".join(model for cell, model in SIM_MODELS.items()
                   if f"\n  {cell} " in verilog or f"\n  \\{cell} " in verilog)
