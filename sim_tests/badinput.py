"""The bad-input corpus: each case makes its own small files in an empty folder, runs one
qloom command there (in-process, the folder as the current directory) and is pinned to its exit
code and the start of its message.  Huge sizes are declared (sparse files, tensor dims), never
written.  ``python sim_tests/badinput.py DIR`` writes every case's files to DIR/<case>/ and
prints the command each one runs, to try them by hand.

A case module (``corpus_*.py``) holds a list ``CASES`` of :class:`Case`; ``test_bad_inputs.py``
runs them all."""
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Case:
    name: str                   # unique, used as the pytest id and the folder name
    make: Callable              # make(folder: Path) -> argv (list of str), paths relative to folder
    message: str                # regex matched at the start of the error text (after "qloom: error: ")
    code: int = 2               # exit code
    survive: tuple = ()         # files (relative to folder) that must still exist, unchanged, after the run
    after: Callable = None      # after(folder) -> None: further checks (e.g. no temporary folders left)
    stdout: str = None          # for exit 0/1 cases: a regex searched in stdout instead of an error
    tags: tuple = field(default=())


def run(argv, capsys):
    from qloom.cli import main
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def check(case, folder, capsys):
    """Build the case in ``folder`` (already the current directory), run it, assert its pins."""
    argv = case.make(folder)
    before = {p: (folder / p).read_bytes() for p in case.survive}
    code, out, err = run(argv, capsys)
    text = out + err
    assert "Traceback" not in text, text
    assert "internal error" not in text, text
    assert code == case.code, f"exit {code}, want {case.code}: {text}"
    if case.stdout is not None:
        assert re.search(case.stdout, out, re.S), out
    else:
        assert err.startswith("qloom: error: "), err
        assert re.match(case.message, err.removeprefix("qloom: error: "), re.S), err
        assert err.count("\n") <= 1, f"an error is one paragraph: {err}"
    for p, data in before.items():
        assert (folder / p).exists(), f"{p} was deleted"
        assert (folder / p).read_bytes() == data, f"{p} was changed"
    left = [str(p) for p in folder.rglob("*") if ".qloom-tmp-" in p.name or ".qloom-old-" in p.name]
    assert not left, f"temporary outputs left behind: {left}"
    if case.after:
        case.after(folder)


def all_cases():
    import corpus_args, corpus_frontend, corpus_models, corpus_outputs, corpus_sizes
    cases = [*corpus_outputs.CASES, *corpus_models.CASES, *corpus_args.CASES, *corpus_sizes.CASES,
             *corpus_frontend.CASES]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


def main(out):
    import os
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for case in all_cases():
        folder = Path(out) / case.name
        folder.mkdir(parents=True, exist_ok=False)
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            argv = case.make(folder)
        finally:
            os.chdir(cwd)
        print(f"{case.name}: (cd {folder} && qloom {' '.join(argv)})  # exit {case.code}")


if __name__ == "__main__":
    main(sys.argv[1])
