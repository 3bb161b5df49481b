"""Foldings of the digits MLP from fully folded to highly parallel: simulated cycles per
inference against the MVU bound, and LUT/FF/DSP/BRAM/Fmax on iCE40 UP5K and ECP5-85F.

    python -m bench foldings            (make bench runs it after the results)
    python -m bench foldings --quick    (one folding, iCE40 only)
"""
import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from qloom import compile as qc, synth
from qloom.mapper import folding as fl
from qloom.mapper.errors import QloomError
from qloom.mapper.targets import NAMES

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "digits" / "digits_mlp_qdq.onnx"
BUDGETS = [("fully folded", 1), ("budget 4 (UP5K default)", 4), ("budget 32 (compile default)", 32),
           ("budget 128", 128)]


def fold_with_budget(graph, budget):
    if budget == 1:
        return {d.name: (1, 1) for d in fl.matrix_layers(graph)}
    return fl.balanced(graph, budget)


def measure(name, budget, targets, frames, workdir):
    design = qc.compile_model(MODEL)
    folding = fold_with_budget(design.graph, budget)
    path = workdir / f"fold-{budget}.json"
    path.write_text(json.dumps(fl.to_json(folding)))
    design = qc.compile_model(MODEL, fold=path)
    d = design.dataflow
    x = np.load(REPO / "models" / "digits" / "test_inputs.npy")[:frames]
    codes = design.graph.nodes[0].reference(x)
    want = design.graph.run({design.graph.inputs[0]: x})[design.output_codes]
    run = qc.run_hardware(design, codes, simulator="verilator")
    mvu = d.bottleneck
    bound = -(-mvu.dense.macs // (mvu.pe * mvu.simd))
    row = {"folding": name, "fold": fl.to_json(folding), "multipliers": d.multipliers,
           "mismatches": int(np.sum(run.codes.reshape(want.shape) != want)),
           "cycles_per_inference": run.cycles_per_inference, "model_cycles": d.cycles_per_frame,
           "mvu_bound": bound, "latency": run.latency, "model_latency": d.latency}
    for target in targets:
        try:
            r = synth.synthesize(design, target)
            row[target] = {"lut": r.lut, "ff": r.ff, "dsp": r.dsp, "bram": r.bram, "fmax": round(r.fmax_mhz, 1)}
        except QloomError as e:
            row[target] = {"error": str(e).splitlines()[0][:80]}
    return row


def table(rows, targets):
    head = ["folding", "mult.", "cycles/inf (sim)", "model", "⌈MACs/mult⌉", "latency"]
    for t in targets:
        head += [f"{t} LUT", "FF", "DSP", "BRAM", "Fmax MHz"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["folding"], str(r["multipliers"]), f"{r['cycles_per_inference']:g}", str(r["model_cycles"]),
                 str(r["mvu_bound"]), str(r["latency"])]
        for t in targets:
            s = r[t]
            cells += ([s["error"], "", "", "", ""] if "error" in s else
                      [str(s["lut"]), str(s["ff"]), str(s["dsp"]), str(s["bram"]), str(s["fmax"])])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench foldings")
    p.add_argument("--quick", action="store_true", help="one folding, iCE40 UP5K only")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--budgets", type=int, nargs="*", help="only these multiplier budgets")
    args = p.parse_args(argv)
    targets = NAMES[:1] if args.quick else NAMES
    budgets = BUDGETS[2:3] if args.quick else BUDGETS
    if args.budgets:
        budgets = [b for b in BUDGETS if b[1] in args.budgets]
    work = REPO / "build" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, budget in budgets:
        t = time.time()
        rows.append(measure(name, budget, targets, args.frames, work))
        print(f"{name}: done in {time.time() - t:.0f} s", flush=True)
    text = table(rows, targets)
    print(f"\nDigits MLP 64-32-10 ({MODEL.name}), {args.frames} frames in Verilator; "
          f"machine: {platform.machine()}, {platform.python_version()}\n")
    print(text)
    (work / "mlp_foldings.json").write_text(json.dumps(rows, indent=2))
    (work / "mlp_foldings.md").write_text(text + "\n")
    (REPO / "bench" / "FOLDINGS.md").write_text(
        f"# Foldings of the digits MLP\n\nWritten by `python -m bench foldings` (`make bench`): {MODEL.name}, "
        f"{args.frames} frames in Verilator; Yosys and nextpnr (YoWASP) inside the byte-wide I/O shell; "
        f"machine: {platform.machine()}, Python {platform.python_version()}.\n\n{text}\n")
    bad = [r for r in rows if r["mismatches"] or r["cycles_per_inference"] > r["mvu_bound"] + r["model_latency"]]
    return 1 if bad else 0
