"""Model → design: the QGraph, its proven requantization plans, the folding, the Dataflow
graph and the Verilog; and running frames through that Verilog."""
import json
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import lower, outputs, simulate
from .mapper import dataflow as df
from .mapper import folding as fl
from .mapper import budget, frontend, limits, planning, qgraph as qg
from .mapper.frontend import loading, tensors


@dataclass
class Design:
    model: str
    graph: qg.QGraph
    plans: dict
    dataflow: df.Dataflow
    fit: budget.Fit = None        # how the folding was chosen for a target (None: --fold or a multiplier budget)

    @cached_property
    def verilog(self):
        return lower.verilog(self.dataflow)

    @property
    def last_requant(self):
        return self.graph.layers(qg.Requant)[-1]

    @property
    def output_codes(self):
        """The tensor of codes the hardware streams out (what feeds the graph's output)."""
        node = self.graph.producer(self.graph.outputs[0])
        while isinstance(node, (qg.Dequantize, qg.Reshape, qg.Transpose)):
            node = self.graph.producer(node.inputs[0])
        return node.output


def compile_model(model, fold=None, max_multipliers=None, target=None, utilization=None):
    """The Design of ``model``, folded by the file ``fold``, else under ``max_multipliers``
    multipliers, else (with a ``target``) to the fastest folding whose estimate fits that
    device under the ``utilization`` caps (mapper.budget), else under the default multiplier
    budget.  Refused (mapper.limits) before its weights are unpacked when
    their codes alone are beyond the memory bound, before any proof when its tensors,
    channels, proofs or memory are beyond qloom's bounds, and before its timing is followed or
    its Verilog emitted when its Dataflow graph is."""
    onnx_model = loading.load(model)
    tensors.check_weight_codes(onnx_model, str(model))
    graph = frontend.to_qgraph(onnx_model, str(model))
    limits.check_graph(graph, str(model))
    plans = planning.plans(graph)
    df.check_hardware(graph, str(model))
    fit = None
    if fold:
        dataflow = df.build(graph, fl.load(fold, graph), plans, source=str(model),
                            fifo_depths=fl.fifo_depths(fold), target=target, spram=fl.spram_layers(fold))
    elif target and not max_multipliers:
        fit = budget.fit(graph, plans, target, utilization, source=str(model))
        dataflow = fit.dataflow
    else:
        folding = fl.balanced(graph, max_multipliers or fl.DEFAULT_MAX_MULTIPLIERS)
        dataflow = df.build(graph, folding, plans, source=str(model), target=target)
    limits.check_dataflow(dataflow, str(model), graph)
    return Design(str(model), graph, plans, dataflow, fit)


def write(design, out_dir, synth_results=(), *, protect=(), force=False):
    """Write top.v, design.json, fold.json, report.json and report.html (with measured
    resources when ``synth_results`` are given), and load.hex where weights are in SPRAM (the
    words the load stream takes after reset, one 16-bit hexadecimal word a line, as
    $readmemh reads them); the directory appears whole or not at all, and
    replaces only an earlier qloom output (qloom.outputs)."""
    from . import report
    with outputs.folder(out_dir, "-o", protect=protect, force=force) as tmp:
        (tmp / "top.v").write_text(design.verilog)
        info = design.dataflow.to_json()
        info["top"] = lower.TOP_NAME
        if design.fit is not None:
            info["budget"] = design.fit.to_json()
        (tmp / "design.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "fold.json").write_text(json.dumps(design.dataflow.folding, indent=2) + "\n")
        image = lower.load_image(design.dataflow)
        if image:
            (tmp / "load.hex").write_text("".join(f"{w:04x}\n" for w in image))
        report.write(design, tmp, synth_results)
    return Path(out_dir)


def to_beats(codes, io):
    """(frames, *shape) codes → (frames · beats, lanes), channels-last order (an NCHW frame is
    sent pixel by pixel, its channels together)."""
    codes = np.asarray(codes)
    if codes.ndim == 4:
        codes = codes.transpose(0, 2, 3, 1)
    return codes.reshape(len(codes), io.beats, io.lanes).reshape(-1, io.lanes)


def from_beats(beats, io, frames):
    if len(io.shape) == 3:
        c, h, w = io.shape
        return np.asarray(beats).reshape(frames, h, w, c).transpose(0, 3, 1, 2)
    return np.asarray(beats).reshape(frames, *io.shape)


@dataclass
class HardwareRun:
    codes: np.ndarray             # output codes, (frames, *shape)
    cycles_per_inference: float   # steady-state initiation interval
    latency: int                  # first input beat → last output beat of the first frame
    in_cycles: list
    out_cycles: list


def cycle_budget(dataflow, frames, gap, stall):
    """Cycles after which a run is declared stalled: twice the modelled time, slowed by the
    idle input and output cycles asked for, with room to spare."""
    slow = 1.0 / max((1.0 - gap) * (1.0 - stall), 0.05)
    beats = frames * (dataflow.input.beats + dataflow.output.beats) + dataflow.load_words
    return int(2 * slow * (frames * dataflow.cycles_per_frame + dataflow.latency)) + 50 * beats + 10_000


def run_hardware(design, input_codes, *, simulator="verilator", gap=0.0, stall=0.0, seed=0, verilog_path=None):
    d = design.dataflow
    frames = len(input_codes)
    with tempfile.TemporaryDirectory(prefix="qloom-v-") as tmp:
        path = verilog_path or Path(tmp) / "top.v"
        if verilog_path is None:
            path.write_text(design.verilog)
        trace = simulate.run(path, lower.TOP_NAME, to_beats(input_codes, d.input), bits_in=d.input.bits,
                             lanes_out=d.output.lanes, bits_out=d.output.bits, signed_out=d.output.signed,
                             n_out=frames * d.output.beats, simulator=simulator, gap=gap, stall=stall, seed=seed,
                             max_cycles=cycle_budget(d, frames, gap, stall), load=lower.load_image(d))
    ends = trace.out_cycles[d.output.beats - 1::d.output.beats]
    ii = float(np.median(np.diff(ends))) if len(ends) > 1 else float("nan")
    latency = trace.out_cycles[d.output.beats - 1] - trace.in_cycles[0] + 1
    return HardwareRun(from_beats(trace.beats, d.output, frames), ii, latency, trace.in_cycles, trace.out_cycles)


def run_amaranth(design, input_codes, *, gap=0.0, stall=0.0, seed=0):
    """The same run in Amaranth's own simulator (slow; for small checks without Verilator)."""
    from . import amaranth_sim
    d = design.dataflow
    beats = [list(b) for b in to_beats(input_codes, d.input)]
    out, when = amaranth_sim.run(lower.amaranth_top(d), beats, len(input_codes) * d.output.beats, seed=seed, gap=gap,
                                 stall=stall, max_cycles=cycle_budget(d, len(input_codes), gap, stall),
                                 load=lower.load_image(d))
    ends = when[d.output.beats - 1::d.output.beats]
    ii = float(np.median(np.diff(ends))) if len(ends) > 1 else float("nan")
    return HardwareRun(from_beats(np.array(out), d.output, len(input_codes)), ii, when[d.output.beats - 1], [], when)
