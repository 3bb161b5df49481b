"""Loading an ONNX file safely: the file size-checked before it is read (files.py), every
tensor's size known from its dims before any external data is read, external data confined to
the model's folder (tensors.py), opsets, names and shapes checked as strictly as onnxruntime's
loader, then the ONNX checker and shape inference.  Every failure is a QloomError."""
import functools
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from ..errors import ModelFileError, QloomError, ShapeError
from .files import human, open_file, stat_regular
from .tensors import check_values, declared_size, load_external

MAX_PARAMETER_BYTES = 64 << 20    # on-chip weights: the largest supported FPGAs hold a few MiB
MAX_MODEL_FILE_BYTES = 256 << 20  # four times what a model within MAX_PARAMETER_BYTES needs
MODEL_BYTES_VARIABLE = "QLOOM_MAX_MODEL_BYTES"   # raises MAX_MODEL_FILE_BYTES
PROTOBUF_LIMIT = 2 << 30          # no protobuf message (an .onnx file) can be this large
MIN_OPSET = 10                    # the first with QuantizeLinear, QLinearMatMul, MatMulInteger


def load(path):
    """Read, check and shape-infer ``path``; returns an onnx.ModelProto with all data loaded."""
    path = Path(path)
    model = _parse(path, _read_model_file(path))
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(f"{path}: the file holds no ONNX graph (empty, truncated or not "
                             "ONNX). Export the model again.")
    _check_opsets(path, model)
    if model.graph.sparse_initializer:
        name = model.graph.sparse_initializer[0].values.name
        raise ModelFileError(f"{path}: tensor '{name}' is a sparse initializer, which qloom does "
                             "not read. Store it as a dense initializer "
                             "(onnx.numpy_helper.from_array) and save the model again.")
    tensors = list(external_data_helper._get_all_tensors(model))
    total = sum(declared_size(path, t)[1] for t in tensors)
    if total > MAX_PARAMETER_BYTES:
        raise ModelFileError(f"{path}: the model holds {human(total)} of parameters; qloom keeps "
                             f"weights on chip and accepts at most {human(MAX_PARAMETER_BYTES)}. "
                             "Use a smaller model.")
    folder = path.parent.resolve()
    for tensor in tensors:
        if tensor.data_location == TensorProto.EXTERNAL:
            load_external(path, folder, tensor)
    for tensor in tensors:
        check_values(path, tensor)
    _check_names(path, model.graph)
    init_names = {t.name for t in model.graph.initializer}
    for value_info in model.graph.input:
        if value_info.name not in init_names:
            static_input_shape(path, value_info)
    _check_declared_shapes(path, model.graph)
    try:
        onnx.checker.check_model(model, full_check=False)
    except Exception as e:
        raise ModelFileError(f"{path}: the ONNX checker rejects this model: {_paragraph(e)}. "
                             "Fix the exporter output or re-export the model.") from None
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:
        raise ShapeError(f"{path}: ONNX shape inference fails: {_paragraph(e)}. Re-export the "
                         "model, or correct the shapes it declares (graph outputs, value_info) to "
                         "what its operators compute.") from None
    return model


def initializers(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def as_int(a):
    return np.asarray(a).astype(np.int64)


# -- the file --------------------------------------------------------------------------------------
def _read_model_file(path):
    """The bytes of ``path``, once it is known to be a readable regular file of bounded size."""
    info = stat_regular(path, f"{path}: ", "Give the path of an .onnx file.", model=True)
    limit = _max_model_bytes()
    if info.st_size >= PROTOBUF_LIMIT:
        raise ModelFileError(f"{path}: the file is {human(info.st_size)}; an .onnx file is one "
                             f"protobuf message and cannot reach {human(PROTOBUF_LIMIT)} (large "
                             "models keep their weights in external data files). It is not an "
                             "ONNX model; export it again.")
    if info.st_size > limit:
        raise ModelFileError(f"{path}: the file is {human(info.st_size)}; qloom reads model files "
                             f"of at most {human(limit)} (its parameters must fit in "
                             f"{human(MAX_PARAMETER_BYTES)} on chip). If this really is the "
                             "model, raise the limit with the environment variable "
                             f"{MODEL_BYTES_VARIABLE}=<bytes>.")
    if info.st_size == 0:
        raise ModelFileError(f"{path}: the file is empty (0 bytes). Export the model again.")
    with open_file(path, f"{path}: ") as f:
        head = f.read(64)
        _sniff(path, head)
        data = head + f.read(limit + 1 - len(head))
    if len(data) > limit:
        raise ModelFileError(f"{path}: the file grew beyond {human(limit)} while qloom read it; "
                             "give a file that is not being written.")
    return data


def _max_model_bytes():
    value = os.environ.get(MODEL_BYTES_VARIABLE)
    if value is None:
        return MAX_MODEL_FILE_BYTES
    try:
        limit = int(value)
        if limit <= 0:
            raise ValueError
    except ValueError:
        raise QloomError(f"{MODEL_BYTES_VARIABLE}={value!r} is not a positive number of bytes; set "
                         f"it to e.g. {2 * MAX_MODEL_FILE_BYTES} or unset it.") from None
    return limit


SIGNATURES = [(b"version https://git-lfs", "a Git LFS pointer, not the model itself; fetch the "
                                           "file with git lfs pull"),
              (b"PK\x03\x04", "a zip archive (a PyTorch checkpoint, or a zipped model?), not an "
                              "ONNX file; export the model with torch.onnx.export, or unzip it"),
              (b"\x93NUMPY", "a NumPy array (.npy), not an ONNX model; give the .onnx file"),
              (b"\x89HDF", "an HDF5 file (a Keras model?), not an ONNX model; convert it with "
                           "tf2onnx")]


def _sniff(path, head):
    """Refuse at once a file whose first bytes no protobuf message (ONNX model) can start with."""
    for magic, what in SIGNATURES:
        if head.startswith(magic):
            raise ModelFileError(f"{path}: the file is {what}.")
    if head.lstrip()[:1] == b"<":
        raise ModelFileError(f"{path}: the file is an HTML or XML page (a web page saved instead "
                             "of the model?), not an ONNX model. Download the model file itself.")
    tag, shift = 0, 0
    for byte in head[:5]:
        tag |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    if tag >> 3 == 0 or tag & 7 not in (0, 1, 2, 5):
        raise ModelFileError(f"{path}: not a readable ONNX model: it starts with byte "
                             f"0x{head[0]:02x}, which no ONNX file (a protobuf message) can. The "
                             "file is not ONNX or is corrupt; export it again.")


def _parse(path, data):
    try:
        return onnx.load_model_from_string(data)
    except Exception as e:   # protobuf raises DecodeError, RuntimeWarning, ValueError ...
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(e).__name__}: "
                             f"{_paragraph(e)}). The file may be truncated or not ONNX; export it "
                             "again.") from None


# -- opsets and names ------------------------------------------------------------------------------
@functools.cache
def _newest_opsets():
    """{domain: newest opset} that both the installed onnx and onnxruntime know."""
    newest = {"": onnx.defs.onnx_opset_version(), "com.microsoft": 1}
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as ort
        known = {}
        for schema in ort.get_all_operator_schema():
            known[schema.domain] = max(known.get(schema.domain, 0), schema.since_version)
        newest = {d: min(v, known.get(d, v)) for d, v in newest.items()}
    except Exception:   # an onnxruntime without the schema list: onnx's numbers stand
        pass
    return newest


def _versions():
    try:
        import onnxruntime
        return f"onnx {onnx.__version__} and onnxruntime {onnxruntime.__version__}"
    except Exception:
        return f"onnx {onnx.__version__}"


def _check_opsets(path, model):
    seen = {}
    for entry in model.opset_import:
        domain = "" if entry.domain == "ai.onnx" else entry.domain
        if domain in seen and seen[domain] != entry.version:
            raise ModelFileError(f"{path}: the model imports opset {seen[domain]} and opset "
                                 f"{entry.version} of domain '{entry.domain or 'ai.onnx'}'; a "
                                 "model imports each domain once. Keep one opset_import entry per "
                                 "domain and export it again.")
        seen[domain] = entry.version
    newest = _newest_opsets()
    if "" not in seen:
        raise ModelFileError(f"{path}: the model imports no ONNX opset (its opset_import has no "
                             "entry for the default domain ai.onnx). Export it again with an "
                             f"opset from {MIN_OPSET} to {newest['']}.")
    if not MIN_OPSET <= seen[""] <= newest[""]:
        convert = (", or convert it with onnx.version_converter.convert_version(model, 17)"
                   if seen[""] < MIN_OPSET else "")
        raise ModelFileError(f"{path}: the model imports ONNX opset {seen['']}; qloom reads opsets "
                             f"{MIN_OPSET} to {newest['']} ({MIN_OPSET} is the first with "
                             f"QuantizeLinear; {newest['']} is the newest {_versions()} know). "
                             f"Export it again with an opset in that range{convert}.")
    version = seen.get("com.microsoft")
    if version is not None and not 1 <= version <= newest["com.microsoft"]:
        raise ModelFileError(f"{path}: the model imports com.microsoft opset {version}; "
                             f"{_versions()} define com.microsoft opsets 1 to "
                             f"{newest['com.microsoft']}. Export it again with com.microsoft opset "
                             "1.")


def _check_names(path, graph):
    """Node names and graph outputs once each, as onnxruntime requires (the ONNX checker does
    not)."""
    ops = {}
    for node in graph.node:
        if node.name and node.name in ops:
            raise ModelFileError(f"{path}: two nodes are named '{node.name}' ({ops[node.name]} and "
                                 f"{node.op_type}); onnxruntime refuses a model whose node names "
                                 "repeat. Give each node its own name and save the model again.")
        ops.setdefault(node.name, node.op_type)
    outputs = set()
    for output in graph.output:
        if output.name in outputs:
            raise ModelFileError(f"{path}: graph output '{output.name}' is listed twice. List each "
                                 "output once and save the model again.")
        outputs.add(output.name)


def _paragraph(error, limit=1500):
    """An exception's whole text as one line (the ONNX checker names the node on a later line)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()).rstrip(".")
    text = text or type(error).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


# -- shapes ----------------------------------------------------------------------------------------
def static_input_shape(path, value_info):
    """Per-sample shape of a graph input: the leading (batch) dimension may be
    symbolic, unknown, 1 or -1 (as onnxruntime, a dynamic batch); every other dimension
    must be a fixed positive number."""
    name = value_info.name
    if value_info.type.WhichOneof("value") not in (None, "tensor_type"):
        raise ShapeError(f"{path}: input '{name}' is a "
                         f"{value_info.type.WhichOneof('value').removesuffix('_type')}, not a "
                         "tensor; qloom takes one tensor input.")
    tensor_type = value_info.type.tensor_type
    dims = tensor_type.shape.dim
    if not tensor_type.HasField("shape") or len(dims) == 0:
        raise ShapeError(f"{path}: input '{name}' has an unknown shape. Give the model a fixed "
                         "input shape, e.g. python -m onnxruntime.tools.make_dynamic_shape_fixed "
                         f"--input_name {name} --input_shape 1,... in.onnx out.onnx")
    fixed = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    example = ",".join(["1"] + [str(v) if v else "N" for v in fixed[1:]])
    command = ("python -m onnxruntime.tools.make_dynamic_shape_fixed --input_name "
               f"{name} --input_shape {example} in.onnx out.onnx")
    for i, d in enumerate(dims):
        if fixed[i] or i == 0 and not (d.HasField("dim_value") and d.dim_value == 0):
            continue
        if d.HasField("dim_value") and i == 0:
            raise ShapeError(f"{path}: input '{name}' has batch size 0; qloom streams one frame at "
                             "a time, so export with batch size 1 or a symbolic batch.")
        if d.HasField("dim_value"):
            raise ShapeError(f"{path}: input '{name}' dimension {i} is {d.dim_value}, which is not "
                             "a size (some converters write it for a dynamic dimension). qloom "
                             "builds a circuit for one fixed shape; give the input its real "
                             f"shape, e.g. {command}")
        if not d.dim_param:
            raise ShapeError(f"{path}: input '{name}' dimension {i} is unknown (neither a size nor "
                             "a name). qloom builds a circuit for one fixed shape; give the input "
                             f"its real shape, e.g. {command}")
        raise ShapeError(f"{path}: input '{name}' has dynamic dimension {i} ('{d.dim_param}'). "
                         "qloom builds a circuit for one fixed shape; fix it, e.g. python -m "
                         f"onnxruntime.tools.make_dynamic_shape_fixed --dim_param {d.dim_param} "
                         "--dim_value N in.onnx out.onnx")
    if fixed[0] not in (None, 1):
        raise ShapeError(f"{path}: input '{name}' has batch size {fixed[0]}; qloom streams "
                         "one frame at a time, so export with batch size 1 or a symbolic batch.")
    return tuple(fixed[1:])


def _check_declared_shapes(path, graph):
    """No input, output or intermediate value is declared with an element type ONNX does not
    define, nor an output or value with a negative dimension."""
    for kind, infos in (("graph input", graph.input), ("graph output", graph.output),
                        ("value", graph.value_info)):
        for info in infos:
            elem_type = info.type.tensor_type.elem_type
            if elem_type not in TensorProto.DataType.values():
                raise ModelFileError(f"{path}: {kind} '{info.name}' is declared with element type "
                                     f"{elem_type}, which is not an ONNX type. Export the model "
                                     "again.")
            for i, d in enumerate(info.type.tensor_type.shape.dim if kind != "graph input" else ()):
                if d.HasField("dim_value") and d.dim_value < 0:
                    raise ShapeError(f"{path}: {kind} '{info.name}' is declared with dimension {i} "
                                     f"= {d.dim_value}, which is not a size. Re-export the model, "
                                     "or set that dimension to its real size (or clear it) and "
                                     "save the model again.")
