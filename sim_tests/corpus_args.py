"""Bad-input corpus: command-line arguments and the files they name (--input, --labels,
--fold) and the numeric options, all refused before any work, as one paragraph naming the
argument, the file and what is wanted (see badinput.py).  The model is the shipped digits MLP
(frames of 64 values, 10 classes) for inputs and labels; a tiny 6 -> 4 -> 3 MLP written into
the folder (layers dense0 = gemm0 4x6, dense1 = gemm1 3x4) where the command compiles."""
import json
import os

import numpy as np
import onnx

import factory
from badinput import Case
from conftest import DIGITS

MLP = str(DIGITS / "digits_mlp_qdq.onnx")
WANT = r"give a \.npy file \(numpy\.save\) of float frames of shape \(frames, 64\)\.$"
NO_PICKLE = r"(?!.*(allow_pickle|unpickl(e|ing) (it|the file)))"     # never suggest unpickling
FIVE = np.random.default_rng(0).uniform(0, 16, size=(5, 64)).astype(np.float32)
ZERO_MISMATCHES = r": 5 frames, 50 outputs: 0 mismatches between qloom's integer reference and onnxruntime"


def tiny_model(path):
    spec = factory.random_mlp(np.random.default_rng(0), layers=2, widths=[6, 4, 3])
    onnx.save(factory.to_onnx(spec, "qdq"), path)


def check_with(files, *more, command=("check", MLP)):
    """make(): write ``files`` {name: bytes | array | callable(path)} and run ``command`` with ``more``
    (the tiny model is written as m.onnx when the command names it)."""
    def make(folder):
        if "m.onnx" in command:
            tiny_model(folder / "m.onnx")
        for name, content in files.items():
            if callable(content):
                content(folder / name)
            elif isinstance(content, bytes):
                (folder / name).write_bytes(content)
            elif isinstance(content, str):
                (folder / name).write_text(content)
            else:
                np.save(folder / name, content, allow_pickle=False)
        return [*command, *more]
    return make


def inputs(content, name="x.npy", *more):
    return check_with({name: content}, "--input", name, *more)


def with_object_array(path):
    np.save(path, np.array([[None] * 64] * 2, dtype=object), allow_pickle=True)


def declared_huge(path):
    """A .npy whose header declares 2**22 frames of 64 float32 (1 GiB), as a sparse file."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 22, 64)})
        end = f.tell() + 2 ** 22 * 64 * 4
    os.truncate(path, end)


def truncated(path):
    np.save(path, np.zeros((1000, 64), np.float32))
    os.truncate(path, 4096)


def two_arrays(path):
    with open(path, "wb") as f:
        np.save(f, FIVE)
        np.save(f, FIVE)


def fifo(path):
    os.mkfifo(path)


def special_floats():
    x = FIVE.copy()
    x[0, :6] = [np.inf, -np.inf, np.nan, -np.nan, 3.4e38, -3.4e38]
    x[1, :4] = [1e-45, -1e-45, 0.0, -0.0]
    x[2, :4] = np.array([0.5, 1.5, 2.5, 254.5], np.float32) * np.float32(16.0 / 255)   # ties of a nearby scale
    return x


def float64_beyond_float32():
    x = FIVE.astype(np.float64)
    x[0, :3] = [1e300, -1e300, 1e-300]         # become inf, -inf, 0 as float32, as onnxruntime is given
    return x


def labels(content, name="y.npy", x=FIVE):
    return check_with({"x.npy": x, name: content}, "--input", "x.npy", "--labels", name)


def no_output_folder(folder):
    assert not (folder / "out").exists()


def fold(spec, name="fold.json"):
    text = spec if isinstance(spec, (str, bytes)) else json.dumps(spec)
    return check_with({name: text}, "-o", "out", "--fold", name, command=("compile", "m.onnx"))


def good(**changes):
    spec = {"dense0": {"pe": 1, "simd": 1}, "dense1": {"pe": 1, "simd": 1}}
    for layer, entry in changes.items():
        spec[layer] = entry
    return spec


def nested(path):
    path.write_text("[" * 100_000 + "]" * 100_000)


def big_fold(path):
    path.write_bytes(b"{}")
    os.truncate(path, 2 << 20)


FOLD_AT = r"--fold fold\.json: layer 'dense0' \(ONNX node 'gemm0'\): "
PE_CHOICES = r"choose one of \[1, 2, 4\] \(the divisors of its 4 outputs\)\.$"
SIMD_CHOICES = r"choose one of \[1, 2, 3, 6\] \(the divisors of its 6 inputs\)\.$"
FOLD_WANT = r'give --fold a JSON file like \{"dense0": \{"pe": 1, "simd": 1\}, \.\.\.\}, as qloom compile writes'
ARG = r"argument {}: {} must be {}; see 'qloom {} --help'\.$"


def argument(option, value, must, command):
    return ARG.format(option, value, must, command)


def fold_case(name, spec, message):
    return Case(name, fold(spec), message, after=no_output_folder)


def compile_case(name, *more, message):
    """`qloom compile m.onnx -o out MORE…` refused with ``message``, no folder written."""
    return Case(name, check_with({}, "-o", "out", *more, command=("compile", "m.onnx")), message,
                after=no_output_folder)


CASES = [
    # ---- --input: the file and its header, before it is read ----
    Case("args_input_npz", inputs(lambda p: np.savez(p, x=FIVE), "x.npz"),
         r"--input x\.npz: is a NumPy \.npz archive \(numpy\.savez\), not a \.npy array; " + WANT),
    Case("args_input_strings", inputs(np.array([["0.5"] * 64] * 5))
         , r"--input x\.npy: holds strings, not floats or integers; " + WANT),
    Case("args_input_objects", inputs(with_object_array),
         NO_PICKLE + r"--input x\.npy: holds Python objects \(qloom never unpickles a file\), not floats or "
         r"integers; " + WANT, survive=("x.npy",)),
    Case("args_input_complex", inputs(FIVE.astype(np.complex64)),
         r"--input x\.npy: holds complex numbers, not floats or integers; " + WANT),
    Case("args_input_bool", inputs(FIVE > 8), r"--input x\.npy: holds booleans, not floats or integers; " + WANT),
    Case("args_input_int_not_exact_in_float32", inputs(np.full((5, 64), 2 ** 25 + 1, np.int64)),
         r"--input x\.npy: holds integers of dtype int64, and 33554433 \(element 0 of the flattened array\) is "
         r"not exact as float32, the model's input type; give float32 frames, or integers within ±16,777,216\.$"),
    Case("args_input_random_bytes", inputs(np.random.default_rng(1).bytes(4000)),
         NO_PICKLE + r"--input x\.npy: is not a \.npy file \(it does not begin with NumPy's magic string\); " + WANT),
    Case("args_input_empty_file", inputs(b""), r"--input x\.npy: is empty; " + WANT),
    Case("args_input_directory", inputs(lambda p: p.mkdir(), "frames"), r"--input frames: is a directory; " + WANT),
    Case("args_input_missing", check_with({}, "--input", "gone.npy"), r"--input gone\.npy: no such file; " + WANT),
    Case("args_input_fifo", inputs(fifo, "pipe.npy"),            # opening it would block: refused from stat
         r"--input pipe\.npy: is not a regular file \(a FIFO, socket or device\); " + WANT),
    Case("args_input_one_frame_without_frames_axis", inputs(FIVE[0]),
         r"--input x\.npy: holds one array of shape \(64,\), which is one frame without the frames axis; give "
         r"shape \(1, 64\) \(x\[None\] in NumPy\) for one frame, or \(frames, 64\)\.$"),
    Case("args_input_wrong_frame_shape", inputs(np.zeros((5, 63), np.float32)),
         r"--input x\.npy: holds an array of shape \(5, 63\), but the model takes frames of shape \(64,\) "
         r"\(64 values each\); " + WANT),
    Case("args_input_no_frames", inputs(np.zeros((0, 64), np.float32)),
         r"--input x\.npy: holds no frames \(shape \(0, 64\)\); " + WANT),
    Case("args_input_scalar", inputs(np.float32(1.0)), r"--input x\.npy: holds a single number \(a 0-d array\); " + WANT),
    Case("args_input_declares_1_GiB", inputs(declared_huge),        # refused from the header, never read
         r"--input x\.npy: holds 268,435,456 values \(shape \(4194304, 64\)\), more than the 67,108,864 qloom "
         r"handles in one run; split the frames into several files\.$"),
    Case("args_input_truncated", inputs(truncated),
         r"--input x\.npy: is truncated: its header declares an array of shape \(1000, 64\) and dtype float32 "
         r"\(256,000 bytes\), but only 3,968 bytes follow; " + WANT),
    Case("args_input_two_arrays_in_one_file", inputs(two_arrays),
         r"--input x\.npy: holds 1,408 bytes after its array of shape \(5, 64\) \(several arrays saved to one "
         r"file\?\); " + WANT),
    # ---- --input: numbers onnxruntime is given, quantized as it does ----
    Case("args_input_inf_nan_subnormal_ties", inputs(special_floats()), "", code=0, stdout=ZERO_MISMATCHES),
    Case("args_input_float64_beyond_float32", inputs(float64_beyond_float32()), "", code=0, stdout=ZERO_MISMATCHES),
    Case("args_input_exact_integers", inputs(np.rint(FIVE).astype(np.int16)), "", code=0, stdout=ZERO_MISMATCHES),
    # ---- --labels ----
    Case("args_labels_wrong_length", labels(np.arange(4)),
         r"--labels y\.npy: holds 4 labels for the 5 frames of --input x\.npy; give a \.npy file of 5 class "
         r"indices \(integers from 0 to 9\), one per frame of --input x\.npy\.$"),
    Case("args_labels_not_npy", labels("3\n1\n4\n1\n5\n", "y.txt"),
         r"--labels y\.txt: is not a \.npy file \(it does not begin with NumPy's magic string\); give a \.npy "
         r"file of 5 class indices"),
    Case("args_labels_not_whole_numbers", labels(np.array([1, 2, 3.5, 4, 5])),
         r"--labels y\.npy: label 3\.5 \(at index 2\) is not a whole number; give a \.npy file of 5 class indices"),
    Case("args_labels_one_hot", labels(np.eye(10)[:5]),
         r"--labels y\.npy: holds an array of shape \(5, 10\); labels are one class index per frame, shape "
         r"\(5,\) \(for one-hot labels or scores, save labels\.argmax\(axis=-1\)\)\.$"),
    Case("args_labels_not_a_class", labels(np.array([1, 2, 10, 4, 5])),
         r"--labels y\.npy: label 10 \(at index 2\) is not a class of the model, whose output has 10 classes "
         r"\(0 to 9\); give a \.npy file of 5 class indices"),
    Case("args_labels_without_input", check_with({"y.npy": np.arange(5)}, "--count", "5", "--labels", "y.npy"),
         r"--labels y\.npy: labels need --input \(the frames they belong to\); without --input, check makes "
         r"random frames, which have no labels\.$"),
    # ---- numeric options: argparse, one line ----
    Case("args_count_negative", check_with({}, "--count", "-5"),
         argument("--count", "-5", "a whole number of at least 1", "check")),
    Case("args_count_zero", check_with({}, "--count", "0"),
         argument("--count", "0", "a whole number of at least 1", "check")),
    Case("args_count_not_a_number", check_with({}, "--count", "1e3"),
         r"argument --count: '1e3' is not a whole number; see 'qloom check --help'\.$"),
    Case("args_count_beyond_what_is_run_at_once", check_with({}, "--count", "1000000000"),
         r"--count 1000000000: 1,000,000,000 frames are more than qloom runs at once on this model \(1,048,576: "
         r"its largest tensor holds 64 values a frame, and at most 67,108,864 are held at once\); give at most "
         r"1,048,576 frames per run\.$"),
    Case("args_max_multipliers_negative", check_with({}, "-o", "out", "--max-multipliers", "-4",
                                                     command=("compile", MLP)),
         argument("--max-multipliers", "-4", "a whole number of at least 1", "compile"), after=no_output_folder),
    Case("args_max_multipliers_zero", check_with({}, "--target", "ice40-up5k", "--max-multipliers", "0",
                                                 command=("synth", MLP)),
         argument("--max-multipliers", "0", "a whole number of at least 1", "synth")),
    Case("args_gap_above_one", check_with({"x.npy": FIVE}, "--input", "x.npy", "--gap", "1.5", command=("simulate", MLP)),
         argument("--gap", "1.5", r"a probability from 0 to 0\.95 \(higher values only slow the simulation: "
                  r"1/\(1-p\) cycles a beat\)", "simulate")),
    Case("args_gap_negative", check_with({"x.npy": FIVE}, "--input", "x.npy", "--gap=-0.1", command=("simulate", MLP)),
         argument("--gap", "-0.1", r"a probability from 0 to 0\.95", "simulate").replace(r"; see", r".*; see")),
    Case("args_stall_two", check_with({"x.npy": FIVE}, "--input", "x.npy", "--stall", "2", command=("simulate", MLP)),
         argument("--stall", "2", r"a probability from 0 to 0\.95", "simulate").replace(r"; see", r".*; see")),
    Case("args_stall_nan", check_with({"x.npy": FIVE}, "--input", "x.npy", "--stall", "nan", command=("simulate", MLP)),
         argument("--stall", "nan", r"a probability from 0 to 0\.95", "simulate").replace(r"; see", r".*; see")),
    Case("args_chunk_zero", check_with({"x.npy": FIVE}, "--input", "x.npy", "--chunk", "0", command=("simulate", MLP)),
         argument("--chunk", "0", "a whole number of at least 1", "simulate")),
    Case("args_seed_negative", check_with({"x.npy": FIVE}, "--input", "x.npy", "--seed", "-1", command=("simulate", MLP)),
         argument("--seed", "-1", "a whole number of at least 0", "simulate")),
    Case("args_clock_negative", check_with({}, "--target", "ice40-up5k", "--clock=-1", command=("synth", MLP)),
         argument("--clock", "-1", "a clock frequency in MHz above 0 and at most 1000", "synth")),
    Case("args_simulate_without_input", check_with({}, command=("simulate", MLP)),
         r"the following arguments are required: --input; see 'qloom simulate --help'\.$"),
    Case("args_unknown_option", check_with({}, "--frames", "5"),
         r"unrecognized arguments: --frames 5; see 'qloom --help'\.$"),
    # ---- simulate: its files checked before the compile, the labels before any simulation ----
    Case("args_simulate_input_npz", check_with({"x.npz": lambda p: np.savez(p, x=FIVE)}, "--input", "x.npz",
                                               command=("simulate", MLP)),
         r"--input x\.npz: is a NumPy \.npz archive \(numpy\.savez\), not a \.npy array; give a \.npy file "
         r"\(numpy\.save\) of float frames of shape \(frames, \*the model's frame shape\)\.$"),
    Case("args_simulate_labels_wrong_length", check_with({"x.npy": FIVE[:, :6], "y.npy": np.arange(6)}, "--input",
                                                         "x.npy", "--labels", "y.npy", command=("simulate", "m.onnx")),
         r"--labels y\.npy: holds 6 labels for the 5 frames of --input x\.npy; give a \.npy file of 5 class "
         r"indices \(integers from 0 to 2\)"),
    # ---- --fold: the file, its JSON, each layer's pe and simd ----
    fold_case("args_fold_pe_zero", good(dense0={"pe": 0, "simd": 1}), FOLD_AT + r"pe 0 is not a positive whole "
              r"number; " + PE_CHOICES),
    fold_case("args_fold_simd_zero", good(dense0={"pe": 1, "simd": 0}), FOLD_AT + r"simd 0 is not a positive whole "
              r"number; " + SIMD_CHOICES),
    fold_case("args_fold_pe_true", good(dense0={"pe": True, "simd": 1}), FOLD_AT + r"pe true is not a whole number; "
              + PE_CHOICES),
    fold_case("args_fold_pe_negative", good(dense0={"pe": -4, "simd": 1}), FOLD_AT + r"pe -4 is not a positive "
              r"whole number; " + PE_CHOICES),
    fold_case("args_fold_simd_float", good(dense0={"pe": 1, "simd": 2.0}), FOLD_AT + r"simd 2\.0 is not a whole "
              r"number; " + SIMD_CHOICES),
    fold_case("args_fold_pe_string", good(dense0={"pe": "4", "simd": 1}), FOLD_AT + r'pe "4" is not a whole '
              r"number; " + PE_CHOICES),
    fold_case("args_fold_pe_missing", good(dense0={"simd": 1}), r"--fold fold\.json: layer 'dense0' \(ONNX node "
              r"'gemm0'\) has no \"pe\"; " + PE_CHOICES),
    fold_case("args_fold_pe_not_a_divisor", good(dense1={"pe": 2, "simd": 1}),
              r"--fold fold\.json: layer 'dense1' \(ONNX node 'gemm1'\): pe 2 does not divide its 3 outputs; "
              r"choose one of \[1, 3\]\.$"),
    fold_case("args_fold_unknown_key", good(dense0={"pe": 1, "simd": 1, "lanes": 4}),
              FOLD_AT + r"unknown key 'lanes'; an entry has \"pe\" and \"simd\", and may have "
              r"\"weights\"\.$"),
    fold_case("args_fold_list_at_top", [{"pe": 1, "simd": 1}], r"--fold fold\.json: holds a list at the top, "
              r"not an object of layers; " + FOLD_WANT),
    fold_case("args_fold_null_at_top", "null", r"--fold fold\.json: holds null at the top, not an object of "
              r"layers; " + FOLD_WANT),
    fold_case("args_fold_layer_null", good(dense1=None), r"--fold fold\.json: layer 'dense1' \(ONNX node 'gemm1'\) "
              r"needs an entry \{\"pe\": P, \"simd\": S\} with whole numbers; not null\.$"),
    fold_case("args_fold_unknown_layer", {**good(), "conv0": {"pe": 1, "simd": 1}},
              r"--fold fold\.json: 'conv0' is not a layer of this model; its layers are 'dense0', 'dense1' \(and "
              r"\"fifo_depths\" for join FIFOs\)\.$"),
    fold_case("args_fold_missing_layer", {"dense0": {"pe": 1, "simd": 1}}, r"--fold fold\.json: layer 'dense1' "
              r"\(ONNX node 'gemm1'\) needs an entry \{\"pe\": P, \"simd\": S\} with whole numbers; the file has none\.$"),
    fold_case("args_fold_invalid_json", '{"dense0": {"pe": 1, "simd": 1},', r"--fold fold\.json: is not valid "
              r"JSON \(Expecting property name enclosed in double quotes at line 1, column 33\); " + FOLD_WANT),
    fold_case("args_fold_key_twice", '{"dense0": {"pe": 1, "simd": 1}, "dense1": {"pe": 1, "simd": 1}, '
              '"dense0": {"pe": 2, "simd": 1}}', r"--fold fold\.json: is not valid JSON \(the key 'dense0' appears "
              r"twice in one object\); " + FOLD_WANT),
    fold_case("args_fold_nan", '{"dense0": {"pe": 1, "simd": NaN}, "dense1": {"pe": 1, "simd": 1}}',
              r"--fold fold\.json: is not valid JSON \(NaN is not a JSON number\); " + FOLD_WANT),
    Case("args_fold_nested_too_deep", check_with({"fold.json": nested}, "-o", "out", "--fold", "fold.json",
                                                 command=("compile", "m.onnx")),
         r"--fold fold\.json: nests its JSON too deeply; " + FOLD_WANT, after=no_output_folder),
    Case("args_fold_2_MiB", check_with({"fold.json": big_fold}, "-o", "out", "--fold", "fold.json",
                                       command=("compile", "m.onnx")),
         r"--fold fold\.json: is 2,097,152 bytes, more than the 1,048,576 a folding file may have \(a few lines a "
         r"layer\); " + FOLD_WANT, after=no_output_folder),
    Case("args_fold_missing_file", check_with({}, "-o", "out", "--fold", "fold.json", command=("compile", "m.onnx")),
         r"--fold fold\.json: no such file; " + FOLD_WANT, after=no_output_folder),
    Case("args_fold_directory", check_with({"folding": lambda p: p.mkdir()}, "-o", "out", "--fold", "folding",
                                           command=("compile", "m.onnx")),
         r"--fold folding: is a directory; " + FOLD_WANT, after=no_output_folder),
    fold_case("args_fold_fifo_depth_zero", {**good(), "fifo_depths": {"join_add0_b": 0}},
              r"--fold fold\.json: \"fifo_depths\": FIFO 'join_add0_b' has depth 0; \"fifo_depths\" maps join FIFO "
              r"names to depths in beats, whole numbers from 1 to 1,048,576"),
    fold_case("args_fold_fifo_depth_true", {**good(), "fifo_depths": {"join_add0_b": True}},
              r"--fold fold\.json: \"fifo_depths\": FIFO 'join_add0_b' has depth true; "),
    fold_case("args_fold_fifo_depths_a_list", {**good(), "fifo_depths": [300]},
              r"--fold fold\.json: \"fifo_depths\" is a list; \"fifo_depths\" maps join FIFO names to depths"),
    compile_case("args_utilization_not_a_number", "--target", "ice40-up5k", "--utilization", "lots",
                 message=r"argument --utilization: 'lots' is not a number; give --utilization a percentage for every "
                 r"resource \(e\.g\. 70\) or per resource, e\.g\. lut=85,bram=95 \(resources: lut, ff, bram, dsp, spram; "
                 r"defaults lut 80 %, ff 80 %, bram 90 %, dsp 100 %, spram 100 %\); see 'qloom compile --help'\.$"),
    Case("args_utilization_above_all", check_with({}, "--target", "ice40-up5k", "--utilization", "150",
                                                  command=("synth", "m.onnx")),
         r"argument --utilization: '150' is not a percentage above 0 and at most 100; give --utilization "),
    compile_case("args_utilization_zero", "--target", "ecp5-85k", "--utilization", "lut=0",
                 message=r"argument --utilization: '0' is not a percentage above 0 and at most 100; "),
    compile_case("args_utilization_unknown_resource", "--target", "ecp5-85k", "--utilization", "luts=80",
                 message=r"argument --utilization: 'luts=80' is not RESOURCE=PCT with RESOURCE one of lut, ff, "
                 r"bram, dsp, spram; "),
    compile_case("args_utilization_twice", "--target", "ecp5-85k", "--utilization", "lut=80,LUT=90",
                 message=r"argument --utilization: lut is given twice; give --utilization "),
    compile_case("args_utilization_empty_part", "--target", "ecp5-85k", "--utilization", "lut=80,",
                 message=r"argument --utilization: 'lut=80,' is empty or has an empty part; "),
    compile_case("args_target_nothing_fits", "--target", "ice40-up5k", "--utilization", "lut=0.5",
                 message=r"m\.onnx: does not fit the iCE40 UP5K at any folding: its smallest \(every layer at "
                 r"pe = simd = 1, [0-9,]+ cycles per frame\) needs an estimated [0-9,]+ LUT of the 26 allowed "
                 r"\(0\.5 % of 5,280\).*\. Build for a larger target, or raise --utilization\.$"),
    compile_case("args_utilization_without_target", "--utilization", "50",
                 message=r"--utilization caps what the folding may fill of a target: give --target too \(one of "
                 r"ice40-up5k, ecp5-25k, ecp5-45k, ecp5-85k\)\.$"),
]
