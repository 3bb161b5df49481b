"""The benchmark suite: every model compiled, simulated in Verilator and synthesized for each
target where it fits; bench/RESULTS.md gets the table and the estimator's errors.

    python -m bench results [--quick] [--frames N] [--only NAME]      (make bench runs it)
    python -m bench kernels MODEL [--target T]      (per-kernel estimate against per-kernel synthesis)

Every resource and Fmax figure is read from the tools' own reports (Yosys ``stat -json``,
nextpnr ``--report``); cycles from the simulation.  Estimates appear only in the calibration
table, beside what was measured.
"""
import argparse
import hashlib
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from qloom import compile as qc, outputs, synth
from qloom.mapper import budget, resources, targets
from qloom.mapper.errors import QloomError

from . import models, qonnx_models

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "models" / "digits"
WORK = REPO / "build" / "bench"
ROWS = REPO / "bench" / "results.json"      # the measured rows RESULTS.md is written from (kept in the repository)
TARGETS = targets.NAMES


def model_list(quick=False):
    """(name, model path, inputs .npy) of every benchmark model."""
    digits = [("digits MLP 64-32-10, QDQ", DIGITS / "digits_mlp_qdq.onnx", DIGITS / "test_inputs.npy")]
    if quick:
        return digits
    logging.getLogger().setLevel(logging.ERROR)      # quantize_static's pre-processing advice
    ad = models.make_ad_mlp(WORK / "models")
    ds, resnet = models.make_cnn("ds_cnn", WORK / "models"), models.make_cnn("resnet8", WORK / "models")
    return digits + [("digits MLP 64-32-10, QOperator", DIGITS / "digits_mlp_qop.onnx", DIGITS / "test_inputs.npy"),
                     ("digits CNN conv8-pool-conv16-fc10, QDQ", DIGITS / "digits_cnn_qdq.onnx",
                      DIGITS / "test_inputs.npy"),
                     ("digits residual CNN (depthwise, GAP), QDQ", DIGITS / "digits_resnet_qdq.onnx",
                      DIGITS / "test_inputs.npy"),
                     ("AD MLP 640-128×4-8-128×4-640, QDQ", ad, ad.parent / "ad_mlp_inputs.npy"),
                     ("DS-CNN 49×10, 64 ch, 4 DS blocks, QDQ", ds, ds.parent / "ds_cnn_inputs.npy"),
                     ("ResNet-8 32×32×3, QDQ", resnet, resnet.parent / "resnet8_inputs.npy")] + [
        (f"digits {kind} {bits}, Brevitas QONNX", DIGITS / f"digits_{kind.lower()}_{bits}_qonnx.onnx",
         DIGITS / "test_inputs.npy") for kind, bits in (("MLP", "w1a1"), ("MLP", "w2a2"), ("CNN", "w4a4"))] + [
        (f"TFC 784-64-64-64-10 w{b}a{b}, QONNX", path, path.parent / "tfc_inputs.npy")
        for b, path in ((b, qonnx_models.make_tfc(WORK / "models", b)) for b in (1, 2))]


FRAMES = {"DS-CNN": 4, "ResNet-8": 2}     # frames simulated for the large CNNs (cycles per frame ~10⁵–10⁶)

# published per-inference latency on the same tasks (MLPerf Tiny v0.7–v1.3 results; see issue 15)
ANCHORS = {"AD MLP": ("hls4ml, Pynq-Z2", 18.7), "DS-CNN": ("fpgaConvNet, ZedBoard", 324.0),
           "ResNet-8": ("fpgaConvNet, ZedBoard", 411.0)}


# FINN's published throughput on the same network shapes (issue 16): (system, images per second)
FINN = {"TFC 784-64-64-64-10 w1a1": ("FINN, finn-examples tfc-w1a1, 100 MHz", 837_019)}


def anchor(model):
    return next((v for k, v in ANCHORS.items() if model.startswith(k)), None)


def finn_anchor(model):
    return next((v for k, v in FINN.items() if model.startswith(k)), None)


def measure(name, model, inputs, target, frames, workdir, synthesize=synth.synthesize, route_limit=None,
            resume=False):
    """One row: compile, simulate, synthesize; every figure from the tools' output (nextpnr
    stopped after ``route_limit`` seconds: then its post-placement Fmax, said so, or none;
    ``resume``: an earlier run in ``workdir`` that routed exactly this design to the end is read
    back instead of run again, synth.finished)."""
    row = {"model": name, "target": target}
    t = time.time()
    try:
        design = qc.compile_model(model, target=target)       # filled to the target's budget
    except budget.DoesNotFit as e:
        row["status"] = f"does not fit (estimated {e.needs})"
        return row
    row["compile_s"] = round(time.time() - t, 2)
    d = design.dataflow
    est = resources.estimate(d, target)
    macs = sum(k.macs for k in d.all_kernels)
    row.update(folding=d.folding, multipliers=d.multipliers, macs=macs, estimate=est,
               model_cycles=d.cycles_per_frame, model_latency=d.latency)
    x = np.load(inputs)[:frames]
    x = x.reshape((len(x),) + tuple(design.graph.nodes[0].shape)).astype(np.float32)
    codes = design.graph.nodes[0].reference(x)
    want = design.graph.run({design.graph.inputs[0]: x})[design.output_codes]
    t = time.time()
    run = qc.run_hardware(design, codes, simulator="verilator")
    row["sim_s"] = round(time.time() - t, 2)
    row["sim_frames"] = len(x)
    row["mismatches"] = int(np.sum(run.codes.reshape(want.shape) != want))
    row["cycles_per_inference"] = run.cycles_per_inference
    row["latency_cycles"] = run.latency
    try:
        r = resume and synth.finished(design, target, workdir) or \
            synthesize(design, target, workdir=workdir, route_limit=route_limit)
    except QloomError as e:
        row["status"] = "synthesis failed: " + str(e).splitlines()[0][:100]
        return row
    row["status"] = "ok"
    row["verilog_sha256"] = verilog_sha256(synth.shell_verilog(design))
    row["measured"] = {"lut": r.lut, "ff": r.ff, "dsp": r.dsp, "bram": r.bram, **({"spram": r.spram} if r.spram else {})}
    row["fmax_mhz"] = None if math.isnan(r.fmax_mhz) else round(r.fmax_mhz, 2)
    row["fmax_source"], row["pnr_s"] = r.fmax_source, r.pnr_s
    if row["fmax_mhz"]:
        row["inferences_per_s"] = round(r.fmax_mhz * 1e6 / run.cycles_per_inference, 1)
        row["latency_us"] = round(run.latency / r.fmax_mhz, 2)
    row["mac_utilization"] = round(macs / run.cycles_per_inference / d.multipliers, 3)
    row["error_percent"] = {k: resources.error_percent(est[k], row["measured"][k]) for k in est if k in row["measured"]}
    return row


def _pct(v):
    return "—" if v is None else f"{v:+.1f} %"


def _seconds(v):
    return "—" if v is None else f"{v:,.0f}"


TITLE = "# qloom benchmark results"
RESULTS_FILE = dict(kind="a qloom benchmark table", suffix=".md", ours=lambda p: p.read_text().startswith(TITLE))


def markdown(rows, machine, names=()):
    lines = [TITLE, "",
             f"Written by `make bench` (`python -m bench`); machine: {machine}. Resources and Fmax are read "
             "from Yosys `stat -json` and nextpnr `--report` (iCE40: SB_LUT4 cells; ECP5: nextpnr's "
             "TRELLIS_COMB logic cells), inside qloom's byte-wide I/O shell; cycles from Verilator. "
             "Folding: each target filled to its budget before any tool runs (`--target`: the fastest balanced "
             "folding whose estimate fits under the default caps, LUT 80 %, FF 80 %, BRAM 90 %, DSP 100 %).", "",
             "| model | target | fold (pe×simd) | mult. | LUT | FF | DSP | BRAM | Fmax MHz | cycles/inf | inf/s | "
             "latency µs | MAC util. | ⌈MACs/mult.⌉ | compile s | P&R s | sim frames/s | mismatches |",
             "|" + "---|" * 18]
    for r in rows:
        fold = " ".join(f"{v['pe']}×{v['simd']}" for k, v in r.get("folding", {}).items() if k != "fifo_depths")
        if r["status"] != "ok":         # no folding fits: neither fold nor multipliers
            lines.append(f"| {r['model']} | {r['target']} | {fold} | {r.get('multipliers', '')} | {r['status']} |"
                         + " |" * 13)
            continue
        m, fmax = r["measured"], r["fmax_mhz"]
        source = r.get("fmax_source", "routed")
        fmax = "—" if fmax is None else f"{fmax:.1f}" + ("" if source == "routed" else f" ({source})")
        timed = r["fmax_mhz"] is not None
        lines.append(f"| {r['model']} | {r['target']} | {fold} | {r['multipliers']} | {m['lut']:,} | {m['ff']:,} | "
                     f"{m['dsp']} | {m['bram']} | {fmax} | {r['cycles_per_inference']:g} | "
                     + (f"{r['inferences_per_s']:,.0f} | {r['latency_us']:.1f} | " if timed else "— | — | ")
                     + f"{r['mac_utilization']:.2f} | {-(-r['macs'] // r['multipliers']):,} | {r['compile_s']:.1f} | "
                     f"{_seconds(r.get('pnr_s'))} | {r['sim_frames'] / r['sim_s']:.1f} | {r['mismatches']} |")
    lines += ["", "MAC utilization: MACs per inference / (cycles per inference × multipliers instantiated); "
              "⌈MACs/mult.⌉: the physical limit of cycles per inference at that many multipliers. Fmax: nextpnr "
              "after routing; \"(placed)\": nextpnr's estimate after placement, where routing did not finish "
              "in the time allowed (`--route-limit`; LUTs then Yosys's count); P&R s: nextpnr's wall time. "
              "Simulation speed includes building the Verilator model (cached builds are reused).", "",
              "## Estimator calibration", "",
              "Estimated (mapper/resources.py, before any tool runs) against measured; error = (estimated − "
              "measured) / measured. Cycles: the analytic model against the simulation.", "",
              "| model | target | LUT est. | meas. | error | FF est. | meas. | error | DSP est. | meas. | "
              "BRAM est. | meas. | error | cycles model | sim | latency model | sim |",
              "|" + "---|" * 17]
    for r in rows:
        if r["status"] != "ok":
            continue
        e, m, err = r["estimate"], r["measured"], r["error_percent"]
        lines.append(f"| {r['model']} | {r['target']} | {e['lut']:,} | {m['lut']:,} | {_pct(err['lut'])} | "
                     f"{e['ff']:,} | {m['ff']:,} | {_pct(err['ff'])} | {e['dsp']} | {m['dsp']} | {e['bram']} | "
                     f"{m['bram']} | {_pct(err['bram'])} | {r['model_cycles']} | {r['cycles_per_inference']:g} | "
                     f"{r['model_latency']} | {r['latency_cycles']} |")
    missing = [f"{name} on {target}" for name in names for target in TARGETS
               if not any((r["model"], r["target"]) == (name, target) for r in rows)]
    if missing:
        lines += ["", "No row yet (not run to the end of place and route; `python -m bench results --only NAME` "
                  "measures one): " + "; ".join(missing) + "."]
    lines += comparison(rows, anchor, "latency_us", "Against the published MLPerf Tiny results",
                        "Latency: one frame alone, first input beat to last output beat, simulated cycles at the "
                        "Fmax above (its source said).", "task", "latency µs", "µs", "{:,.1f}", "{:.1f}×")
    lines += comparison(rows, finn_anchor, "inferences_per_s", "Against FINN's published figures",
                        "Throughput: inferences per second at the Fmax above (its source said), one frame every "
                        "cycles/inf.", "network", "inf/s", "inf/s", "{:,.0f}", "{:.2f}×")
    errors = [r["error_percent"] for r in rows if r["status"] == "ok"]
    if errors:
        worst = {k: max(abs(e[k]) for e in errors if e[k] is not None) for k in ("lut", "ff", "bram")}
        lines += ["", f"Largest estimator error: LUT {worst['lut']:.1f} %, FF {worst['ff']:.1f} %, "
                  f"BRAM {worst['bram']:.1f} % (target: LUT and BRAM within ±15 %)."]
    return "\n".join(lines) + "\n"


def comparison(rows, anchor_of, key, title, note, what, ours_head, theirs_head, fmt, ratio_fmt):
    """The section comparing rows[key] with the published figure ``anchor_of(model)`` gives
    (system, value); none where no row has one."""
    rows = [r for r in rows if anchor_of(r["model"]) and r["status"] == "ok"]
    if not rows:
        return []
    lines = ["", f"## {title}", "", note, "",
             f"| {what} | target | qloom {ours_head} | Fmax | published | {theirs_head} | ratio |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        system, theirs = anchor_of(r["model"])
        ours = r.get(key)
        fmax = "—" if r["fmax_mhz"] is None else f"{r['fmax_mhz']:.1f} MHz ({r.get('fmax_source', 'routed')})"
        lines.append(f"| {r['model']} | {r['target']} | {'—' if ours is None else fmt.format(ours)} | {fmax} | "
                     f"{system} | {theirs:,g} | {'—' if ours is None else ratio_fmt.format(ours / theirs)} |")
    return lines


def seconds(text):
    """--route-limit: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"give a number of seconds, 0 or more (0: no limit), not {text!r}")
    return value


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench results")
    p.add_argument("--quick", action="store_true", help="the digits QDQ model on iCE40 UP5K only")
    p.add_argument("--frames", type=int, default=32, help="frames simulated per model (default 32)")
    p.add_argument("--output", default=str(REPO / "bench" / "RESULTS.md"))
    p.add_argument("--only", help="only the models whose name contains this; the other rows are kept "
                   "from the last run (bench/results.json)")
    p.add_argument("--target", action="append", choices=TARGETS,
                   help="only this target (repeat for several); the other rows are kept from the last run")
    p.add_argument("--route-limit", type=seconds, default=3600, metavar="SECONDS",
                   help="stop nextpnr after this long and report its post-placement Fmax, said so "
                        "(default 3600; 0: no limit)")
    p.add_argument("--resume", action="store_true",
                   help="read back a model's place and route from build/bench/synth where it routed "
                        "exactly today's design to the end, instead of running it again")
    p.add_argument("--reestimate", action="store_true",
                   help="measure nothing: recompute the estimate columns of the last run's rows with the "
                        "current estimator, for rows whose design (folding, cycles) is unchanged")
    args = p.parse_args(argv)
    try:
        outputs.check_file(args.output, "--output", **RESULTS_FILE)     # before hours of work
        return reestimate(Path(args.output)) if args.reestimate else run(args)
    except QloomError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2


def run(args):
    targets = TARGETS[:1] if args.quick else (args.target or TARGETS)
    kept = json.loads(ROWS.read_text()) if (args.only or args.target) and ROWS.exists() else []
    every = model_list(args.quick)
    kept = current(kept, {name: path for name, path, _ in every})
    chosen = [m for m in every if not args.only or args.only in m[0]]
    names = [m[0] for m in every]
    rows, every_row = [], merged([], kept, names)
    for name, model, inputs in chosen:
        for target in targets:
            t = time.time()
            slug = f"{Path(model).stem}-{target}"
            frames = next((n for key, n in FRAMES.items() if name.startswith(key)), args.frames)
            rows.append(measure(name, model, inputs, target, min(frames, args.frames), WORK / "synth" / slug,
                                route_limit=args.route_limit or None, resume=args.resume))
            print(f"{name} on {target}: {rows[-1]['status']} ({time.time() - t:.0f} s)", flush=True)
            every_row = merged(rows, kept, names)
            write(every_row, Path(args.output), names, quiet=True)     # a row kept as soon as it is measured
    print(markdown(every_row, machine(), names))
    return 1 if any(r.get("mismatches") for r in every_row) else 0


def merged(rows, kept, names):
    fresh = {(r["model"], r["target"]) for r in rows}
    return sorted(rows + [r for r in kept if (r["model"], r["target"]) not in fresh and r["model"] in names],
                  key=lambda r: (names.index(r["model"]), TARGETS.index(r["target"])))


def machine():
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write(rows, output, names, quiet=False):
    """RESULTS.md (printed too, unless ``quiet``) and bench/results.json, the rows a later
    --only keeps."""
    text = markdown(rows, machine(), names)
    outputs.write_file(output, "--output", lambda p: p.write_text(text), **RESULTS_FILE)
    ROWS.write_text(json.dumps(rows, indent=2) + "\n")
    if not quiet:
        print(text)


def verilog_sha256(text):
    """The circuit's hash: of its Verilog without Amaranth's ``src`` attributes (synth.circuit)."""
    return hashlib.sha256(synth.circuit(text).encode()).hexdigest()


def changed(row, design):
    """Whether ``design`` is not the circuit ``row`` measured: another Verilog, or for a row
    measured before the Verilog's hash was kept, another folding, cycle count, or (where the
    latency model is exact, so a hardware figure) latency."""
    d = design.dataflow
    if "verilog_sha256" in row:
        return verilog_sha256(synth.shell_verilog(design)) != row["verilog_sha256"]
    return (d.folding != row["folding"] or d.cycles_per_frame != row["model_cycles"]
            or (d.latency_exact and d.latency != row["model_latency"]))


def measured(rows, paths):
    """(row, today's design of its model and target, whether that ``changed`` since the row
    was measured) for each measured row of ``rows`` (``paths``: model name → file)."""
    for r in rows:
        if r["model"] in paths and r["status"] == "ok":
            design = qc.compile_model(paths[r["model"]], target=r["target"])
            yield r, design, changed(r, design)


def current(rows, paths):
    """The rows of ``rows`` that still describe today's design (``changed``): a row measured
    on another circuit is dropped, said so, and shows as "no row yet"."""
    stale = set()
    for r, _, was_changed in measured(rows, paths):
        if was_changed:
            print(f"dropped the row of {r['model']} on {r['target']}: its design changed since it was "
                  "measured", flush=True)
            stale.add(id(r))
    return [r for r in rows if id(r) not in stale]


def reestimate(output):
    """The calibration table again from the last run's measurements and today's estimator and
    latency model.  A row whose design changed since it was measured keeps its old estimate and
    is named: only a new measurement can update it."""
    if not ROWS.exists():
        raise SystemExit(f"{ROWS} does not exist: run `python -m bench results` first.")
    rows = json.loads(ROWS.read_text())
    paths = {name: path for name, path, _ in model_list()}
    stale = []
    for r, design, was_changed in measured(rows, paths):
        d = design.dataflow
        if was_changed:
            stale.append(f"{r['model']} on {r['target']}")
            continue
        r["estimate"], r["model_latency"] = resources.estimate(d, r["target"]), d.latency
        r["error_percent"] = {k: resources.error_percent(r["estimate"][k], r["measured"][k]) for k in r["estimate"]
                              if k in r["measured"]}
    write(rows, output, list(paths))
    if stale:
        print("kept the old estimate (design changed since measured): " + "; ".join(stale))
    return 0


def kernels_main(argv=None):
    """``python -m bench kernels MODEL [--target T] [--max-multipliers N]``: each kernel synthesized
    on its own (Yosys only), its LUT/FF/DSP/BRAM beside the estimator's: where the estimate is off."""
    p = argparse.ArgumentParser(prog="python -m bench kernels")
    p.add_argument("model")
    p.add_argument("--target", default="ice40-up5k", choices=TARGETS)
    p.add_argument("--max-multipliers", type=int)
    args = p.parse_args(argv)
    design = qc.compile_model(args.model, max_multipliers=args.max_multipliers, target=args.target)
    measured = synth.kernel_cells(design, args.target)
    lines = ["| kernel | LUT est. | meas. | FF est. | meas. | BRAM est. | meas. |", "|" + "---|" * 7]
    from qloom.mapper.dataflow import flat
    for k in design.dataflow.kernels:
        e = {"lut": 0, "ff": 0, "dsp": 0, "bram": 0}
        for part in flat([k]):                # a branch is synthesized whole: its paths and its join
            for key, v in resources.estimate_kernel(part, design.dataflow, args.target).items():
                e[key] += v
        m = measured[k.name]
        lines.append(f"| {k.name} | {e['lut']:,} | {m['lut']:,} | {e['ff']:,} | {m['ff']:,} | "
                     f"{e['bram']} | {m['bram']} |")
    print("\n".join(lines))
    return 0
