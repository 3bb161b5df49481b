"""The qloom command line: inspect, check, compile, simulate, synth and demo."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import inputs
from .mapper import targets
from .mapper.errors import QloomError

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "models" / "digits"


def _console():
    from rich.console import Console
    return Console(highlight=False, width=140)


def cmd_inspect(args):
    from .mapper import frontend, inspect
    graph = frontend.load_qgraph(args.model)
    inspect.render(graph, f"qloom inspect {args.model}", _console())
    return 0


def cmd_check(args):
    from . import agreement
    from .mapper import frontend
    console = _console()
    graph = frontend.load_qgraph(args.model)
    x = inputs.load_inputs(args.input, graph) if args.input else inputs.random_inputs(graph, args.count)
    labels = inputs.load_labels(args.labels, graph, len(x), args.input) if args.labels else None
    result = agreement.compare(graph, args.model, x)
    console.print(f"{args.model}: {result.frames} frames, {result.outputs} outputs: "
                  f"{result.mismatches} mismatches between qloom's integer reference and {result.oracle_name}")
    if result.float_left:
        console.print(f"[yellow]note:[/yellow] onnxruntime runs {', '.join(result.float_left)} in float, "
                      "so its results cannot be matched bit for bit by integer hardware.")
    for note in graph.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if args.labels:
        acc_ref = float((result.reference.argmax(axis=-1) == labels).mean())
        acc_ort = float((result.oracle.argmax(axis=-1) == labels).mean())
        console.print(f"accuracy: qloom reference {acc_ref:.4f}, {result.oracle_name} {acc_ort:.4f}")
    return 0 if result.mismatches == 0 else 1


def _design(args, target=None, console=None):
    """The design the options ask for: --fold, else --max-multipliers, else folded to the
    target's budget (--utilization), said on ``console``."""
    from . import compile as qc
    target = target or getattr(args, "target", None)
    if getattr(args, "utilization", None) and not target:
        raise inputs.UsageError(f"--utilization caps what the folding may fill of a target: give "
                                f"--target too (one of {', '.join(targets.NAMES)}).")
    design = qc.compile_model(args.model, fold=args.fold, max_multipliers=args.max_multipliers,
                              target=target, utilization=getattr(args, "utilization", None))
    if design.fit is not None and console is not None:
        console.print(design.fit.sentence())
    return design


def _inputs_of(args):
    """The command's input files: an output must never replace or hold them."""
    return [getattr(args, k, None) for k in ("model", "input", "labels", "fold")]


def cmd_compile(args):
    from . import compile as qc, outputs
    from .mapper import summary
    console = _console()
    outputs.check_folder(args.output, "-o", protect=_inputs_of(args), force=args.force)
    design = _design(args, console=console)
    summary.render(design.dataflow, console, f"qloom compile {args.model}")
    out = qc.write(design, args.output, protect=_inputs_of(args), force=args.force)
    console.print(f"wrote {out}/top.v ({len(design.verilog):,} characters), {out}/design.json, {out}/fold.json, "
                  f"{out}/report.html, {out}/report.json")
    if design.dataflow.load_words:
        console.print(f"wrote {out}/load.hex: its weights in SPRAM take these {design.dataflow.load_words:,} "
                      "16-bit words through the load stream after reset, before the first frame")
    return 0


def cmd_simulate(args):
    from rich.progress import Progress
    from . import agreement, compile as qc, outputs
    from .mapper import numeric
    console = _console()
    if args.output:
        outputs.check_file(args.output, "--output", **outputs.NPY, protect=_inputs_of(args))
    inputs.peek(args.input, "--input")
    if args.labels:
        inputs.peek(args.labels, "--labels")
    design = _design(args)
    graph, d = design.graph, design.dataflow
    x = inputs.load_inputs(args.input, graph)
    labels = inputs.load_labels(args.labels, graph, len(x), args.input) if args.labels else None
    codes = graph.nodes[0].reference(x)
    values = graph.run({graph.inputs[0]: x})
    want = values[design.output_codes]
    chunks = [slice(k, min(k + args.chunk, len(x))) for k in range(0, len(x), args.chunk)]
    runs = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{args.simulator}: {len(x)} frames", total=len(x))
        for c in chunks:
            if args.simulator == "amaranth":
                runs.append(qc.run_amaranth(design, codes[c], gap=args.gap, stall=args.stall, seed=args.seed))
            else:
                runs.append(qc.run_hardware(design, codes[c], simulator=args.simulator, gap=args.gap,
                                            stall=args.stall, seed=args.seed))
            progress.advance(task, c.stop - c.start)
    got = np.concatenate([r.codes for r in runs]).reshape(want.shape)
    out_node = graph.producer(graph.outputs[0])
    floats = numeric.dequantize_linear(got, out_node.scale, out_node.zero_point) if hasattr(out_node, "scale") else got
    oracle_name, oracle_run = agreement.oracle(graph)
    ort_out = np.asarray(oracle_run(args.model, x)[0]).reshape(floats.shape)
    bad_ref, bad_ort = int(np.sum(got != want)), int(np.sum(floats != ort_out))
    console.print(f"{args.model} on {args.simulator}: {len(x)} frames, {got.size} outputs")
    width = max(len("qloom reference"), len(oracle_name)) + 1
    console.print(f"  mismatches vs {'qloom reference:':<{width}} {bad_ref}")
    console.print(f"  mismatches vs {oracle_name + ':':<{width}} {bad_ort}")
    run0 = runs[0]
    console.print(f"  initiation interval: {run0.cycles_per_inference:g} cycles per inference "
                  f"(model {d.cycles_per_frame}) · latency {run0.latency} cycles (model {d.latency})")
    if args.labels:
        console.print(f"  accuracy: hardware {float((floats.argmax(-1) == labels).mean()):.4f}, "
                      f"{oracle_name} {float((ort_out.argmax(-1) == labels).mean()):.4f}")
    if args.output:
        outputs.write_file(args.output, "--output", lambda p: np.save(p, floats), **outputs.NPY,
                           protect=_inputs_of(args))
        console.print(f"  wrote {args.output}")
    return 0 if bad_ref == 0 and bad_ort == 0 else 1


def render_synth(results, console, title):
    from rich.table import Table
    from .mapper.targets import TARGETS
    table = Table(title=title)
    for col in ("target", "folding (pe×simd)", "LUT", "FF", "DSP", "BRAM", "Fmax (MHz)", "clock asked (MHz)"):
        table.add_column(col, justify="left" if col in ("target", "folding (pe×simd)") else "right")
    for r in results:
        avail = TARGETS[r.target]["available"]
        fold = " ".join(f"{v['pe']}×{v['simd']}" for k, v in (r.folding or {}).items() if k != "fifo_depths")
        table.add_row(r.target, fold, f"{r.lut:,} / {avail['lut']:,}", f"{r.ff:,}", f"{r.dsp} / {avail['dsp']}",
                      f"{r.bram} / {avail['bram']}", f"{r.fmax_mhz:.1f}", f"{r.clock_mhz:g}")
    console.print(table)


def _synth_outputs(args):
    """Each target's output folder (one per target when several), checked before any work."""
    from . import outputs
    if args.json:
        outputs.check_file(args.json, "--json", **outputs.JSON, protect=_inputs_of(args))
    if not args.output:
        return {}
    if len(args.target) == 1:
        folders = {args.target[0]: Path(args.output)}
    else:
        outputs.check_folder(args.output, "-o", protect=_inputs_of(args), container=True)
        folders = {t: Path(args.output) / t for t in args.target}
    for out in folders.values():
        outputs.check_folder(out, "-o", protect=_inputs_of(args), force=args.force)
    return folders


def cmd_synth(args):
    from . import compile as qc, outputs, synth
    console = _console()
    folders = _synth_outputs(args)
    results = []
    for target in args.target:
        design = _design(args, target, console)
        with console.status(f"Yosys + nextpnr for {target} …"):
            results.append(synth.synthesize(design, target, clock_mhz=args.clock))
        if target in folders:      # the design as compiled for this target, its report with measured figures
            out = qc.write(design, folders[target], results[-1:], protect=_inputs_of(args), force=args.force)
            console.print(f"wrote {out}/ (top.v, design.json, fold.json, report.html with measured resources)")
    render_synth(results, console, f"qloom synth {args.model} (inside the byte-wide I/O shell)")
    if args.json:
        text = json.dumps([r.to_json() for r in results], indent=2) + "\n"
        outputs.write_file(args.json, "--json", lambda p: p.write_text(text), **outputs.JSON, protect=_inputs_of(args))
        console.print(f"wrote {args.json}")
    return 0


def cmd_demo(args):
    console = _console()
    status = 0
    frames, labels = str(DIGITS / "test_inputs.npy"), str(DIGITS / "test_labels.npy")
    for name in ("digits_mlp_qdq.onnx", "digits_mlp_qop.onnx", "digits_cnn_qdq.onnx", "digits_resnet_qdq.onnx",
                 "digits_mlp_w1a1_qonnx.onnx"):
        model = str(DIGITS / name)
        design_args = dict(model=model, fold=None, max_multipliers=32, target=None, utilization=None)
        console.rule(f"[bold]{Path(model).relative_to(REPO)}")
        cmd_inspect(argparse.Namespace(model=model))
        status |= cmd_check(argparse.Namespace(model=model, input=frames, labels=labels, count=0))
        cmd_compile(argparse.Namespace(output=str(REPO / "build" / Path(model).stem), force=False, **design_args))
        status |= cmd_simulate(argparse.Namespace(input=frames, labels=labels, simulator="verilator", output=None,
                                                  gap=0.0, stall=0.0, seed=0, chunk=1024, **design_args))
        if name == "digits_mlp_qdq.onnx":
            # the UP5K filled to its budget; the ECP5-85F under 32 multipliers (a device-filling
            # ECP5 design takes hours in nextpnr's WebAssembly build)
            for target, budget in (("ice40-up5k", None), ("ecp5-85k", 32)):
                cmd_synth(argparse.Namespace(clock=None, json=None, force=False,
                                             output=str(REPO / "build" / f"digits_mlp_qdq_{target}"),
                                             **{**design_args, "max_multipliers": budget, "target": [target]}))
    return status


def parser():
    p = inputs.Parser(prog="qloom", description="Compile quantized ONNX networks into "
                                "bit-exact streaming dataflow circuits.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("inspect", help="print the integer graph with accumulator ranges and requantization")
    s.add_argument("model")
    s.set_defaults(func=cmd_inspect)
    s = sub.add_parser("check", help="compare qloom's integer reference with the model's oracle (onnxruntime; qonnx's executor for QONNX), bit for bit")
    s.add_argument("model")
    s.add_argument("--input", help=".npy file of float input frames (default: random frames)")
    s.add_argument("--labels", help=".npy file of class labels, to print accuracy")
    s.add_argument("--count", type=inputs.positive_int, default=1000, help="random frames when no --input (default 1000)")
    s.set_defaults(func=cmd_check)
    def budget_options(s):
        s.add_argument("--fold", help="folding file (JSON, as written to DIR/fold.json)")
        s.add_argument("--max-multipliers", type=inputs.positive_int,
                       help="fold under this multiplier budget instead of to the target's resources")
        s.add_argument("--utilization", type=inputs.utilization, help="share of the target the folding may "
                       "fill, a percentage for every resource or per resource, e.g. lut=85,bram=95 "
                       "(default lut 80, ff 80, bram 90, dsp 100)")

    def design_options(s):
        s.add_argument("--target", choices=targets.NAMES, help="fold to this FPGA's resources (estimated; "
                       "without it, and without --fold or --max-multipliers, under 32 multipliers)")
        budget_options(s)
    s = sub.add_parser("compile", help="emit the streaming circuit as Verilog with its design description")
    s.add_argument("model")
    s.add_argument("-o", "--output", required=True, help="output directory (top.v, design.json, fold.json)")
    s.add_argument("--force", action="store_true", help="replace an earlier qloom output in DIR even "
                   "when it now holds other files (never a folder qloom did not write)")
    design_options(s)
    s.set_defaults(func=cmd_compile)
    s = sub.add_parser("simulate", help="run frames through the emitted Verilog and compare bit for bit")
    s.add_argument("model")
    s.add_argument("--input", required=True, help=".npy file of float input frames")
    s.add_argument("--simulator", choices=["verilator", "icarus", "amaranth"], default="verilator")
    s.add_argument("--output", help="write the dequantized outputs to this .npy file")
    s.add_argument("--labels", help=".npy file of class labels, to print accuracy")
    s.add_argument("--gap", type=inputs.probability, default=0.0, help="probability of an idle input cycle (default 0)")
    s.add_argument("--stall", type=inputs.probability, default=0.0, help="probability of output backpressure (default 0)")
    s.add_argument("--seed", type=inputs.non_negative_int, default=0)
    s.add_argument("--chunk", type=inputs.positive_int, default=512, help="frames per simulator run (default 512)")
    design_options(s)
    s.set_defaults(func=cmd_simulate)
    s = sub.add_parser("synth", help="synthesize, place and route with Yosys and nextpnr; resources and Fmax")
    s.add_argument("model")
    s.add_argument("--target", action="append", choices=targets.NAMES, required=True,
                   help="FPGA to build for (repeat for several)")
    s.add_argument("--clock", type=inputs.clock_mhz, help="clock to place and route for, MHz (default 50 iCE40, 100 ECP5)")
    s.add_argument("--json", help="also write the results to this JSON file")
    s.add_argument("-o", "--output", help="also write the compiled design and its report, with the measured "
                   "resources beside the estimates, to this directory (one per target when several)")
    s.add_argument("--force", action="store_true", help="replace an earlier qloom output in DIR even "
                   "when it now holds other files (never a folder qloom did not write)")
    budget_options(s)
    s.set_defaults(func=cmd_synth)
    s = sub.add_parser("demo", help="the main job on the shipped digits models")
    s.set_defaults(func=cmd_demo)
    return p


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that every clean-up on the way out runs."""


def _terminate(signum, frame):
    raise Terminated()


def crash_log(exc):
    """Write the traceback of an unexpected exception to a log file; returns its path."""
    import os
    import tempfile
    import time
    import traceback
    from . import __version__
    text = (f"qloom {__version__}, {time.strftime('%Y-%m-%d %H:%M:%S')}\nargv: {sys.argv}\n\n"
            + "".join(traceback.format_exception(exc)))
    for folder in (Path(os.environ.get("QLOOM_CACHE", Path.home() / ".cache" / "qloom")) / "logs",
                   Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="crash-", suffix=".log", dir=folder)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return name
        except OSError:
            continue
    return None


def internal_error(exc):
    from . import __version__
    log = crash_log(exc)
    what = "ran out of memory" if isinstance(exc, MemoryError) else " ".join(f"{type(exc).__name__}: {exc}".split())
    where = f"the traceback is in {log}" if log else "no log file could be written"
    return (f"qloom: internal error in qloom {__version__} ({what[:300]}): please report it with the command "
            f"you ran; {where}.")


def main(argv=None):
    """Run one command; exit 0 (success), 1 (mismatches found), 2 (a user error, said as one
    paragraph), 3 (an internal error: its traceback goes to a log file), 130 (interrupted)."""
    import signal
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[sig] = signal.signal(sig, _terminate)
        except ValueError:       # not the main thread: leave signals alone
            pass
    try:
        args = parser().parse_args(argv)
        return args.func(args)
    except QloomError as e:
        print(f"qloom: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated):
        print("qloom: interrupted; nothing was left half-written", file=sys.stderr)
        return 130
    except Exception as e:       # the last resort: a bug of qloom's, never a traceback on screen
        print(internal_error(e), file=sys.stderr)
        return 3
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
