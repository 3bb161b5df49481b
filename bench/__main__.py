"""python -m bench [results|foldings] [options]: results (default) writes bench/RESULTS.md;
foldings prints the digits MLP folding table (see each module's docstring)."""
import sys

from . import mlp_foldings, results

args = sys.argv[1:]
command = args.pop(0) if args and args[0] in ("results", "foldings") else "results"
raise SystemExit((results.main if command == "results" else mlp_foldings.main)(args))
