"""Bad-input corpus: outputs (`compile -o`, `synth -o/--json`, `simulate --output`) never
destroy a file qloom did not write, and refusals come before any work (see badinput.py)."""
import json
import os
from pathlib import Path

import numpy as np
import onnx

import factory
from badinput import Case

CANARY = b"the user's own notes\n"


def tiny_model(path):
    """A one-layer 6 -> 3 QDQ MLP: compiles in well under a second."""
    spec = factory.random_mlp(np.random.default_rng(0), layers=1, widths=[6, 3])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(factory.to_onnx(spec, "qdq"), path)
    return str(path)


def canary(path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(CANARY)


def no_temporaries(folder):
    left = [str(p) for p in Path(folder).rglob("*") if ".qloom-tmp-" in p.name or ".qloom-old-" in p.name]
    assert not left, left


def qloom_output(folder, extra=()):
    """A folder as an earlier `qloom compile -o` left it, plus ``extra`` files of the user's."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    (folder / "top.v").write_text("module qloom_top(); endmodule\n")
    (folder / ".qloom-output").write_text(json.dumps({"written_by": "qloom 0.1.0", "files": ["top.v"]}))
    for name in extra:
        canary(folder / name)


def compile_into(out, setup=None, *more):
    def make(folder):
        tiny_model(folder / "m.onnx")
        canary(folder / "notes.txt")
        if setup:
            setup(folder)
        return ["compile", "m.onnx", "-o", out, *more]
    return make


def replaced(folder, out="out"):
    names = sorted(p.name for p in (folder / out).iterdir())
    assert names == [".qloom-output", "design.json", "fold.json", "report.html", "report.json", "top.v"], names
    no_temporaries(folder)


def moved_into_sub(folder):
    """The model in sub/ and the command run from the folder: `-o sub` would hold the model."""
    tiny_model(folder / "sub" / "m.onnx")
    canary(folder / "sub" / "inputs.npy")


def symlink(folder):
    (folder / "real").mkdir()
    os.symlink("real", folder / "link")


def with_inputs(folder):
    np.save(folder / "x.npy", np.zeros((2, 6), np.float32))


KEEP = ("m.onnx", "notes.txt")
WRITTEN = r"\s*wrote out/top\.v"

CASES = [
    Case("out_dot", compile_into("."), r"^-o: '\.' is the current directory; qloom replaces its output folder "
         r"whole and never writes into the folder it runs in\. Give a new folder", survive=KEEP,
         after=no_temporaries),
    Case("out_dot_slash", compile_into("./"), r"^-o: '\.' is the current directory", survive=KEEP),
    Case("out_empty_name", compile_into(""), r"^-o: the output folder name is empty; give the path of a new folder",
         survive=KEEP),
    Case("out_blank_name", compile_into("  "), r"^-o: the output folder name is empty", survive=KEEP),
    Case("out_parent", compile_into(".."), r"^-o: '\.\.' is a folder above the current directory", survive=KEEP),
    Case("out_root", compile_into("/"), r"^-o: '/' is a folder above the current directory", survive=KEEP),
    Case("out_model_folder", lambda f: (moved_into_sub(f), ["compile", "sub/m.onnx", "-o", "sub"])[1],
         r"^-o: 'sub' holds the input file 'sub/m\.onnx'; qloom replaces its output folder whole, so it must not "
         r"hold the command's inputs", survive=("sub/m.onnx", "sub/inputs.npy")),
    Case("out_above_model_folder", lambda f: (tiny_model(f / "a" / "b" / "m.onnx"),
                                              ["compile", "a/b/m.onnx", "-o", "a"])[1],
         r"^-o: 'a' holds the input file 'a/b/m\.onnx'", survive=("a/b/m.onnx",)),
    Case("out_model_folder_force", lambda f: (moved_into_sub(f), ["compile", "sub/m.onnx", "-o", "sub", "--force"])[1],
         r"^-o: 'sub' holds the input file", survive=("sub/m.onnx", "sub/inputs.npy")),
    Case("out_holds_fold_file", compile_into("cfg", lambda f: (f / "cfg").mkdir() or
                                             (f / "cfg" / "fold.json").write_text("{}"), "--fold", "cfg/fold.json"),
         r"^-o: 'cfg' holds the input file 'cfg/fold\.json'", survive=KEEP + ("cfg/fold.json",)),
    Case("out_foreign_folder", compile_into("out", lambda f: canary(f / "out" / "thesis.tex")),
         r"^-o: 'out' already exists and is not a qloom output \(it holds thesis\.tex\); qloom never replaces a "
         r"folder it did not write\. Give a new folder, or remove this one yourself\.",
         survive=KEEP + ("out/thesis.tex",)),
    Case("out_foreign_folder_force", compile_into("out", lambda f: canary(f / "out" / "thesis.tex"), "--force"),
         r"^-o: 'out' already exists and is not a qloom output", survive=KEEP + ("out/thesis.tex",)),
    Case("out_foreign_hidden_file", compile_into("out", lambda f: canary(f / "out" / ".git")),
         r"^-o: 'out' already exists and is not a qloom output \(it holds \.git\)", survive=KEEP + ("out/.git",)),
    Case("out_bad_marker", compile_into("out", lambda f: (canary(f / "out" / "data.csv"),
                                                          (f / "out" / ".qloom-output").write_text("{not json"))),
         r"^-o: 'out' already exists and is not a qloom output", survive=KEEP + ("out/data.csv",)),
    Case("out_qloom_output_with_user_file", compile_into("out", lambda f: qloom_output(f / "out", ["my.txt"])),
         r"^-o: 'out' is an earlier qloom output but now also holds files qloom did not write \(my\.txt\); "
         r"replacing it would delete them\. Move them out, give a new folder, or add --force",
         survive=KEEP + ("out/my.txt",)),
    Case("out_qloom_output_replaced", compile_into("out", lambda f: qloom_output(f / "out")), "", code=0,
         stdout=WRITTEN, survive=KEEP, after=replaced),
    Case("out_qloom_output_with_user_file_force", compile_into("out", lambda f: qloom_output(f / "out", ["my.txt"]),
                                                               "--force"),
         "", code=0, stdout=WRITTEN, survive=KEEP, after=replaced),
    Case("out_empty_folder", compile_into("out", lambda f: (f / "out").mkdir()), "", code=0, stdout=WRITTEN,
         survive=KEEP, after=replaced),
    Case("out_new_nested", compile_into("deep/er/out"), "", code=0, stdout=r"\s*wrote deep/er/out/top\.v",
         survive=KEEP, after=lambda f: replaced(f, "deep/er/out")),
    Case("out_is_a_file", compile_into("notes.txt"),
         r"^-o: 'notes\.txt' is a file, not a folder; qloom writes an output folder there\. Give the path of a "
         r"new folder, or remove the file\.", survive=KEEP),
    Case("out_under_a_file", compile_into("notes.txt/sub"),
         r"^-o: '\S*notes\.txt' is a file, not a folder, so 'notes\.txt/sub' cannot be made", survive=KEEP),
    Case("out_is_the_model", compile_into("m.onnx"), r"^-o: 'm\.onnx' is a file, not a folder", survive=KEEP),
    Case("out_symlink_to_folder", compile_into("link", symlink),
         r"^-o: 'link' is a symbolic link; give the real folder it points to", survive=KEEP),
    Case("synth_out_dot", lambda f: (tiny_model(f / "m.onnx"), canary(f / "notes.txt"),
                                     ["synth", "m.onnx", "--target", "ice40-up5k", "-o", "."])[2],
         r"^-o: '\.' is the current directory", survive=KEEP),
    Case("synth_out_model_folder_two_targets",
         lambda f: (moved_into_sub(f), ["synth", "sub/m.onnx", "--target", "ice40-up5k", "--target", "ecp5-85k",
                                        "-o", "sub"])[1],
         r"^-o: 'sub' holds the input file 'sub/m\.onnx'", survive=("sub/m.onnx", "sub/inputs.npy")),
    Case("synth_json_foreign_file", lambda f: (tiny_model(f / "m.onnx"), canary(f / "notes.json"),
                                               ["synth", "m.onnx", "--target", "ice40-up5k", "--json", "notes.json"])[2],
         r"^--json: 'notes\.json' exists and is not a JSON file; qloom replaces only its own kind of output file",
         survive=("m.onnx", "notes.json")),
    Case("synth_json_is_the_model", lambda f: (tiny_model(f / "m.onnx"),
                                               ["synth", "m.onnx", "--target", "ice40-up5k", "--json", "m.onnx"])[1],
         r"^--json: 'm\.onnx' does not end in \.json; qloom writes a JSON file there", survive=("m.onnx",)),
    Case("simulate_output_is_the_model", lambda f: (tiny_model(f / "m.onnx"), with_inputs(f),
                                                    ["simulate", "m.onnx", "--input", "x.npy", "--output", "m.onnx"])[2],
         r"^--output: 'm\.onnx' does not end in \.npy; qloom writes a \.npy file there", survive=("m.onnx", "x.npy")),
    Case("simulate_output_is_the_input", lambda f: (tiny_model(f / "m.onnx"), with_inputs(f),
                                                    ["simulate", "m.onnx", "--input", "x.npy", "--output", "x.npy"])[2],
         r"^--output: 'x\.npy' is one of the command's inputs; give another path", survive=("m.onnx", "x.npy")),
    Case("simulate_output_foreign_npy", lambda f: (tiny_model(f / "m.onnx"), with_inputs(f), canary(f / "keep.npy"),
                                                   ["simulate", "m.onnx", "--input", "x.npy", "--output", "keep.npy"])[3],
         r"^--output: 'keep\.npy' exists and is not a \.npy file", survive=("m.onnx", "x.npy", "keep.npy")),
    Case("simulate_output_folder_missing", lambda f: (tiny_model(f / "m.onnx"), with_inputs(f),
                                                      ["simulate", "m.onnx", "--input", "x.npy", "--output",
                                                       "no/such/y.npy"])[2],
         r"^--output: the folder of 'no/such/y\.npy' does not exist; create it first", survive=("m.onnx", "x.npy")),
]
