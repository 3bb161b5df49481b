"""python -m bench [results|foldings|kernels|fill] [options]: results (default) writes
bench/RESULTS.md; foldings prints the digits MLP folding table; kernels sets each kernel's
estimate beside its own synthesis; fill prints each model folded to each target's budget, as
estimated (see each module's docstring)."""
import sys

from . import fill, mlp_foldings, results

COMMANDS = {"results": results.main, "foldings": mlp_foldings.main, "kernels": results.kernels_main,
            "fill": fill.main}
args = sys.argv[1:]
command = args.pop(0) if args and args[0] in COMMANDS else "results"
raise SystemExit(COMMANDS[command](args))
