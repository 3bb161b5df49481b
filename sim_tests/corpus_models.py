"""Bad-input corpus: the model file and its loading (mapper/frontend/loading.py) — odd files, external
data, opsets, names, shapes and tensors that the ONNX checker lets through or numpy would trip on
(see badinput.py).  Huge sizes are declared (sparse files, tensor dims), never written."""
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

import factory
from badinput import Case

M = r"m\.onnx: "   # messages start with the model's path as given


def tiny():
    """A one-layer 6 -> 3 QDQ MLP; nodes quant_in, dq_x0, dq_w0, dq_b0, gemm0, q0, dq_out."""
    spec = factory.random_mlp(np.random.default_rng(0), layers=1, widths=[6, 3])
    return factory.to_onnx(spec, "qdq")


def tensor(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def model_case(name, change, message, argv=("inspect", "m.onnx"), **kw):
    """A case whose m.onnx is the tiny model after ``change(model, folder)``."""
    def make(folder):
        model = tiny()
        change(model, folder)
        onnx.save(model, folder / "m.onnx")
        return list(argv)
    return Case(name, make, message, survive=kw.pop("survive", ("m.onnx",)), **kw)


def file_case(name, build, message, target="m.onnx", survive=()):
    """A case whose ``target`` is whatever ``build(folder)`` leaves there."""
    def make(folder):
        build(folder)
        return ["inspect", target]
    return Case(name, make, message, survive=survive)


def sparse(size):
    def build(folder):
        onnx.save(tiny(), folder / "m.onnx")
        os.truncate(folder / "m.onnx", size)   # a real model, then holes: nothing more is written
    return build


def written(data):
    return lambda folder: (folder / "m.onnx").write_bytes(data)


def directory(folder):
    (folder / "m.onnx").mkdir()
    onnx.save(tiny(), folder / "m.onnx" / "real.onnx")


# -- external data: w0 (6 x 3 int8, 18 bytes) kept in w.bin ----------------------------------------
def external(data=None, **info):
    """w0's bytes go to w.bin (``data`` instead, when given); ``info`` overrides its entries
    (location, offset, length; None drops one)."""
    def change(model, folder):
        w = tensor(model, "w0")
        raw = w.raw_data if data is None else data
        entries = {"location": "w.bin", "offset": "0", "length": str(len(w.raw_data)), **info}
        if entries["location"] == "w.bin":
            (folder / "w.bin").write_bytes(raw)
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for key, value in entries.items():
            if value is not None:
                w.external_data.add(key=key, value=value)
    return change


def huge_external(model, folder):
    w = tensor(model, "w0")
    w.ClearField("raw_data")
    del w.dims[:]
    w.dims.extend([1024, 1024, 1024])
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="w.bin")
    (folder / "w.bin").touch()
    os.truncate(folder / "w.bin", 1 << 30)


def then(*changes):
    def change(model, folder):
        for c in changes:
            c(model, folder)
    return change


def fifo_at(name):
    return lambda model, folder: os.mkfifo(folder / name)


def dir_at(name):
    return lambda model, folder: (folder / name).mkdir()


# -- small edits --------------------------------------------------------------------------------
def opsets(*pairs):
    def change(model, folder):
        del model.opset_import[:]
        model.opset_import.extend(helper.make_opsetid(d, v) for d, v in pairs)
    return change


def input_dim(i, value=None, param=None):
    def change(model, folder):
        d = model.graph.input[0].type.tensor_type.shape.dim[i]
        d.Clear()
        if value is not None:
            d.dim_value = value
        if param is not None:
            d.dim_param = param
    return change


def input_type(elem_type):
    def change(model, folder):
        model.graph.input[0].type.tensor_type.elem_type = elem_type
    return change


def output_dim(i, value):
    def change(model, folder):
        d = model.graph.output[0].type.tensor_type.shape.dim[i]
        d.Clear()
        d.dim_value = value
    return change


def w0(**edit):
    """Edit w0: raw (bytes), int32 (list), float (list), dtype, dims, clear_raw, segment."""
    def change(model, folder):
        w = tensor(model, "w0")
        if edit.get("clear_raw"):
            w.ClearField("raw_data")
        if "raw" in edit:
            w.raw_data = edit["raw"](w.raw_data)
        w.int32_data.extend(edit.get("int32", []))
        w.float_data.extend(edit.get("float", []))
        if "dtype" in edit:
            w.data_type = edit["dtype"]
        if "dims" in edit:
            del w.dims[:]
            w.dims.extend(edit["dims"])
        if edit.get("segment"):
            w.segment.begin, w.segment.end = 0, 1
    return change


def rename(node_name, new):
    return lambda model, folder: setattr(node(model, node_name), "name", new)


def duplicate_output(model, folder):
    model.graph.output.append(model.graph.output[0])


def duplicate_initializer(model, folder):
    model.graph.initializer.append(tensor(model, "x_scale"))


def same_output(model, folder):
    node(model, "dq_w0").output[0] = node(model, "quant_in").output[0]


def bogus_attribute(model, folder):
    node(model, "gemm0").attribute.append(helper.make_attribute("bogus", 1))


def sequence_input(model, folder):
    model.graph.input[0].CopyFrom(helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [1, 6]))


def sparse_initializer(model, folder):
    model.graph.initializer.remove(tensor(model, "w0"))
    values = helper.make_tensor("w0", TensorProto.INT8, [2], [1, 2])
    indices = helper.make_tensor("w0_indices", TensorProto.INT64, [2], [0, 5])
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [6, 3]))


def no_output_written(folder):
    assert not (folder / "out").exists(), "a refused model must not leave an output folder"


W0 = r"m\.onnx: tensor 'w0' "
SHAPE = r"shape \(6, 3\) of int8"

CASES = [
    # -- the file itself: size before reading, kind before opening ------------------------------
    file_case("model_file_2_5_gb_sparse", sparse(2_500_000_000),
              M + r"the file is 2\.3 GiB; an \.onnx file is one protobuf message and cannot reach 2\.0 GiB "
                  r"\(large models keep their weights in external data files\)\. It is not an ONNX model"),
    file_case("model_file_over_the_model_file_limit", sparse(300 << 20),
              M + r"the file is 300\.0 MiB; qloom reads model files of at most 256\.0 MiB \(its parameters must "
                  r"fit in 64\.0 MiB on chip\)\. If this really is the model, raise the limit with the "
                  r"environment variable QLOOM_MAX_MODEL_BYTES=<bytes>\.$"),
    file_case("model_file_of_zeros", written(bytes(4096)),
              M + r"not a readable ONNX model: it starts with byte 0x00, which no ONNX file \(a protobuf "
                  r"message\) can\. The file is not ONNX or is corrupt; export it again\.$", survive=("m.onnx",)),
    file_case("model_file_empty", written(b""), M + r"the file is empty \(0 bytes\)\. Export the model again\.$",
              survive=("m.onnx",)),
    file_case("model_file_git_lfs_pointer",
              written(b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 12345\n"),
              M + r"the file is a Git LFS pointer, not the model itself; fetch the file with git lfs pull\.$",
              survive=("m.onnx",)),
    file_case("model_file_zip_archive", written(b"PK\x03\x04\x14\x00\x00\x00archive/data.pkl"),
              M + r"the file is a zip archive \(a PyTorch checkpoint, or a zipped model\?\), not an ONNX file",
              survive=("m.onnx",)),
    file_case("model_file_html_page", written(b"\n<!DOCTYPE html><html><body>model</body></html>"),
              M + r"the file is an HTML or XML page \(a web page saved instead of the model\?\), not an ONNX "
                  r"model\. Download the model file itself\.$", survive=("m.onnx",)),
    file_case("model_file_protobuf_garbage", written(b"\x08\x07\x3a\xff\xff\xff\xff\x0f garbage"),
              M + r"not a readable ONNX model \(DecodeError: .+\)\. The file may be truncated or not ONNX; "
                  r"export it again\.$", survive=("m.onnx",)),
    file_case("model_path_is_a_directory", directory,
              M + r"is a directory, not a file \(it holds real\.onnx\)\. Give the path of an \.onnx file\.$"),
    file_case("model_path_is_a_fifo", lambda folder: os.mkfifo(folder / "m.onnx"),
              M + r"is a FIFO \(named pipe\), not a regular file; qloom reads only regular files\. Give the "
                  r"path of an \.onnx file\.$"),
    file_case("model_path_is_dev_zero", lambda folder: None,
              r"/dev/zero: is a character device, not a regular file; qloom reads only regular files", "/dev/zero"),
    file_case("model_path_is_a_link_to_dev_null", lambda folder: os.symlink("/dev/null", folder / "m.onnx"),
              M + r"is a character device, not a regular file"),
    file_case("model_path_through_a_file", lambda folder: (folder / "notes").write_text("notes\n"),
              r"notes/m\.onnx: no such model file\. Give the path of an \.onnx file\.$", "notes/m.onnx",
              survive=("notes",)),

    # -- external data: every size known before anything is read ------------------------------
    model_case("model_external_weight_of_1_gib", huge_external,
               M + r"the model holds 1\.0 GiB of parameters; qloom keeps weights on chip and accepts at most "
                   r"64\.0 MiB\. Use a smaller model\.$"),
    model_case("model_inline_weight_of_3_tib_declared", w0(dims=[1 << 40, 3]),
               M + r"the model holds 3\.0 TiB of parameters"),
    model_case("model_external_data_shorter", external(data=bytes(17), length=None),
               W0 + r"needs bytes 0 to 18 of 'w\.bin', which holds only 17 bytes: the data file is shorter than "
                    r"the tensor \(truncated\?\)\. Copy the whole data file, or export the model again\.$",
               survive=("m.onnx", "w.bin")),
    model_case("model_external_data_longer", external(data=bytes(19), length=None),
               W0 + r"reads 'w\.bin' from byte 0 to its end, 19 bytes, but its " + SHAPE + r" takes 18 bytes: "
                    r"the data file is longer than the tensor\.", survive=("m.onnx", "w.bin")),
    model_case("model_external_length_not_the_tensor", external(length="17"),
               W0 + r"declares 17 bytes of data in 'w\.bin', but its " + SHAPE + r" takes 18 bytes\. The model "
                    r"and its data file do not match; export them again together\.$"),
    model_case("model_external_offset_beyond_the_file", external(offset="100"),
               W0 + r"needs bytes 100 to 118 of 'w\.bin', which holds only 18 bytes"),
    model_case("model_external_offset_not_a_number", external(offset="12abc"),
               W0 + r"gives its external data offset as '12abc', not a byte count\."),
    model_case("model_external_location_with_nul", external(location="w.bin\0.txt"),
               W0 + r"keeps its data at 'w\.bin\\x00\.txt', a location with a NUL byte, which no file name can "
                    r"hold\."),
    model_case("model_external_location_outside", external(location="../w.bin"),
               W0 + r"keeps its data at '\.\./w\.bin', outside the model's folder \S+\. qloom only reads external "
                    r"data stored beside the model"),
    model_case("model_external_location_missing", external(location="gone.bin"),
               W0 + r"keeps its data in 'gone\.bin', which does not exist\. Copy the external data file next to "
                    r"the model\.$"),
    model_case("model_external_location_is_a_directory", then(external(location="data"), dir_at("data")),
               W0 + r"keeps its data in 'data', which is a directory, not a file\. Copy the external data file"),
    model_case("model_external_location_is_a_fifo", then(external(location="pipe"), fifo_at("pipe")),
               W0 + r"keeps its data in 'pipe', which is a FIFO \(named pipe\), not a regular file"),

    # -- opsets: as onnxruntime's loader, and what qloom's operators need ----------------------
    model_case("model_opset_99", opsets(("", 99), ("com.microsoft", 1)),
               M + r"the model imports ONNX opset 99; qloom reads opsets 10 to \d+ \(10 is the first with "
                   r"QuantizeLinear; \d+ is the newest onnx [\d.]+ and onnxruntime [\d.]+ know\)\. Export it again "
                   r"with an opset in that range\.$",
               argv=("compile", "m.onnx", "-o", "out"), after=no_output_written),
    model_case("model_opset_9", opsets(("", 9)),
               M + r"the model imports ONNX opset 9; qloom reads opsets 10 to \d+ .*Export it again with an opset "
                   r"in that range, or convert it with onnx\.version_converter\.convert_version\(model, 17\)\.$"),
    model_case("model_com_microsoft_opset_2", opsets(("", 19), ("com.microsoft", 2)),
               M + r"the model imports com\.microsoft opset 2; onnx [\d.]+ and onnxruntime [\d.]+ define "
                   r"com\.microsoft opsets 1 to 1\. Export it again with com\.microsoft opset 1\.$"),
    model_case("model_two_default_opsets", opsets(("", 19), ("ai.onnx", 17)),
               M + r"the model imports opset 19 and opset 17 of domain 'ai\.onnx'; a model imports each domain once"),
    model_case("model_no_default_opset", opsets(("com.microsoft", 1)),
               M + r"the model imports no ONNX opset \(its opset_import has no entry for the default domain"),

    # -- names: unique as onnxruntime requires -------------------------------------------------
    model_case("model_duplicate_node_names", rename("dq_w0", "dq_x0"),
               M + r"two nodes are named 'dq_x0' \(DequantizeLinear and DequantizeLinear\); onnxruntime refuses "
                   r"a model whose node names repeat\."),
    model_case("model_duplicate_graph_output", duplicate_output,
               M + r"graph output 'y' is listed twice\."),
    model_case("model_duplicate_initializer", duplicate_initializer,
               M + r"the ONNX checker rejects this model: x_scale initializer name is not unique\. Fix the exporter"),
    model_case("model_duplicate_node_output", same_output,
               M + r"the ONNX checker rejects this model: Graph must be in single static assignment \(SSA\) form, "
                   r"however 'x_q' has been used as output names multiple times\. Fix the exporter output"),

    # -- the checker's and shape inference's whole text, naming the node -----------------------
    model_case("model_checker_names_the_node", bogus_attribute,
               M + r"the ONNX checker rejects this model: Unrecognized attribute: bogus for operator Gemm ==> "
                   r"Context: Bad node spec for node\. Name: gemm0 OpType: Gemm\. Fix the exporter output"),
    model_case("model_shape_inference_names_the_node", output_dim(1, 4),
               M + r"ONNX shape inference fails: .*node name: dq_out\).*Inferred shape and existing shape differ "
                   r"in dimension 1: \(3\) vs \(4\)\. Re-export the model, or correct the shapes it declares"),

    # -- shapes: invalid sizes are not dynamic dimensions --------------------------------------
    model_case("model_input_dimension_zero", input_dim(1, value=0),
               M + r"input 'x' dimension 1 is 0, which is not a size \(some converters write it for a dynamic "
                   r"dimension\)\. qloom builds a circuit for one fixed shape; give the input its real shape, e\.g\. "
                   r"python -m onnxruntime\.tools\.make_dynamic_shape_fixed --input_name x --input_shape 1,N "
                   r"in\.onnx out\.onnx$"),
    model_case("model_input_dimension_minus_one", input_dim(1, value=-1),
               M + r"input 'x' dimension 1 is -1, which is not a size"),
    model_case("model_input_dimension_unknown", input_dim(1),
               M + r"input 'x' dimension 1 is unknown \(neither a size nor a name\)\. .* --input_name x "
                   r"--input_shape 1,N in\.onnx out\.onnx$"),
    model_case("model_input_batch_zero", input_dim(0, value=0),
               M + r"input 'x' has batch size 0; qloom streams one frame at a time"),
    model_case("model_input_is_a_sequence", sequence_input,
               M + r"input 'x' is a sequence, not a tensor; qloom takes one tensor input\.$"),
    model_case("model_input_of_unknown_element_type", input_type(77),
               M + r"graph input 'x' is declared with element type 77, which is not an ONNX type\. Export the "
                   r"model again\.$"),
    model_case("model_output_dimension_minus_one", output_dim(1, -1),
               M + r"graph output 'y' is declared with dimension 1 = -1, which is not a size\."),

    # -- tensors: values that fill their dims exactly, in one field ----------------------------
    model_case("model_raw_data_longer", w0(raw=lambda r: r + b"\0"),
               W0 + r"holds 19 bytes, but its " + SHAPE + r" takes 18: the data is longer than the tensor\."),
    model_case("model_raw_data_shorter", w0(raw=lambda r: r[:-1]),
               W0 + r"holds 17 bytes, but its " + SHAPE + r" takes 18: the data is shorter than the tensor\."),
    model_case("model_typed_data_shorter", w0(clear_raw=True, int32=[1] * 17),
               W0 + r"holds 17 int32_data values, but its " + SHAPE + r" takes 18"),
    model_case("model_values_stored_twice", w0(int32=[1] * 18),
               W0 + r"holds its values twice \(in raw_data and int32_data\); a tensor keeps them in one field\."),
    model_case("model_values_in_the_wrong_field", w0(clear_raw=True, float=[1.0] * 18),
               W0 + r"of type int8 keeps its values in float_data, but that type belongs in int32_data or raw_data\."),
    model_case("model_string_tensor", w0(clear_raw=True, dtype=TensorProto.STRING),
               W0 + r"holds strings; qloom's models compute on numbers only\."),
    model_case("model_unknown_element_type", w0(dtype=77),
               W0 + r"has element type 77, which is not an ONNX type\. Export the model again\.$"),
    model_case("model_undefined_element_type", w0(dtype=TensorProto.UNDEFINED),
               W0 + r"has element type 0, which is UNDEFINED\."),
    model_case("model_negative_tensor_dimension", w0(dims=[-6, 3]),
               W0 + r"has dimension 0 = -6; a tensor's dimensions are sizes \(0 or more\)\."),
    model_case("model_tensor_in_segments", w0(segment=True),
               W0 + r"is stored in segments, which qloom does not read\."),
    model_case("model_sparse_initializer", sparse_initializer,
               W0 + r"is a sparse initializer, which qloom does not read\. Store it as a dense initializer"),
]
