"""The qloom command line: inspect, check, demo (compile/simulate/synth arrive with the hardware)."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .mapper.errors import QloomError

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "models" / "digits"


def _console():
    from rich.console import Console
    return Console(highlight=False, width=140)


def load_inputs(path, graph):
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise QloomError(f"{path}: cannot read inputs ({e}). Give a .npy file of float32 frames.") from None
    shape = graph.nodes[0].shape
    if x.shape[1:] != tuple(shape):
        if x.size % int(np.prod(shape)) == 0 and x.shape[1:] and int(np.prod(x.shape[1:])) == int(np.prod(shape)):
            x = x.reshape((len(x),) + tuple(shape))
        else:
            raise QloomError(f"{path}: inputs have shape {x.shape}, the model takes frames of shape "
                             f"{tuple(shape)}; give an array of shape (frames, {', '.join(map(str, shape))}).")
    return x.astype(np.float32)


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
    x = load_inputs(args.input, graph) if args.input else agreement.random_inputs(graph, args.count)
    result = agreement.compare(graph, args.model, x)
    console.print(f"{args.model}: {result.frames} frames, {result.outputs} outputs: "
                  f"{result.mismatches} mismatches between qloom's integer reference and onnxruntime")
    if result.float_left:
        console.print(f"[yellow]note:[/yellow] onnxruntime runs {', '.join(result.float_left)} in float, "
                      "so its results cannot be matched bit for bit by integer hardware.")
    for note in graph.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if args.labels:
        labels = np.load(args.labels).reshape(-1)
        acc_ref = float((result.reference.argmax(axis=-1) == labels).mean())
        acc_ort = float((result.onnxruntime.argmax(axis=-1) == labels).mean())
        console.print(f"accuracy: qloom reference {acc_ref:.4f}, onnxruntime {acc_ort:.4f}")
    return 0 if result.mismatches == 0 else 1


def cmd_demo(args):
    console = _console()
    status = 0
    for name in ("digits_mlp_qdq.onnx", "digits_mlp_qop.onnx"):
        model = DIGITS / name
        console.rule(f"[bold]{model.relative_to(REPO)}")
        cmd_inspect(argparse.Namespace(model=str(model)))
        status |= cmd_check(argparse.Namespace(model=str(model), input=str(DIGITS / "test_inputs.npy"),
                                               labels=str(DIGITS / "test_labels.npy"), count=0))
    return status


def parser():
    p = argparse.ArgumentParser(prog="qloom", description="Compile quantized ONNX networks into "
                                "bit-exact streaming dataflow circuits.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("inspect", help="print the integer graph with accumulator ranges and requantization")
    s.add_argument("model")
    s.set_defaults(func=cmd_inspect)
    s = sub.add_parser("check", help="compare qloom's integer reference with onnxruntime, bit for bit")
    s.add_argument("model")
    s.add_argument("--input", help=".npy file of float input frames (default: random frames)")
    s.add_argument("--labels", help=".npy file of class labels, to print accuracy")
    s.add_argument("--count", type=int, default=1000, help="random frames when no --input (default 1000)")
    s.set_defaults(func=cmd_check)
    s = sub.add_parser("demo", help="the main job on the shipped digits models")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except QloomError as e:
        print(f"qloom: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qloom: interrupted", file=sys.stderr)
        return 130
