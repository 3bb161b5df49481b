"""Loading an ONNX file safely: external data confined to the model's folder,
the ONNX checker, and shape inference.  Every failure is a QloomError."""
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

from .errors import ModelFileError, ShapeError

MAX_PARAMETER_BYTES = 64 << 20   # on-chip weights: the largest supported FPGAs hold a few MiB


def _external_locations(model):
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in tensor.external_data}
            yield tensor.name, info.get("location", "")


def _human(n):
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def load(path):
    """Read, check and shape-infer ``path``; returns an onnx.ModelProto with all data loaded."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file. Give the path of an .onnx file.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:   # protobuf raises DecodeError, RuntimeWarning, ValueError ...
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e}). "
                             "The file may be truncated or not ONNX; export it again.") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(f"{path}: the file holds no ONNX graph (empty, truncated or not ONNX). "
                             "Export the model again.")
    folder = path.parent.resolve()
    for name, location in _external_locations(model):
        target = (folder / location).resolve()
        if not location or folder not in target.parents:
            raise ModelFileError(f"{path}: tensor '{name}' keeps its data at '{location}', outside "
                                 f"the model's folder {folder}. qloom only reads external data "
                                 "stored beside the model; move the data file next to it.")
        if not target.is_file():
            raise ModelFileError(f"{path}: tensor '{name}' keeps its data in '{location}', which "
                                 "does not exist. Copy the external data file next to the model.")
    try:
        external_data_helper.load_external_data_for_model(model, str(folder))
    except Exception as e:
        raise ModelFileError(f"{path}: could not read external data ({e}). "
                             "The data file may be truncated; export the model again.") from None
    total = sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    if total > MAX_PARAMETER_BYTES:
        raise ModelFileError(f"{path}: the model holds {_human(total)} of parameters; qloom keeps "
                             f"weights on chip and accepts at most {_human(MAX_PARAMETER_BYTES)}. "
                             "Use a smaller model.")
    init_names = {t.name for t in model.graph.initializer}
    for value_info in model.graph.input:
        if value_info.name not in init_names:
            static_input_shape(path, value_info)
    try:
        onnx.checker.check_model(model, full_check=False)
    except Exception as e:
        first = (str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__).rstrip(".")
        raise ModelFileError(f"{path}: the ONNX checker rejects this model: {first}. "
                             "Fix the exporter output or re-export the model.") from None
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0].rstrip(".")
        raise ShapeError(f"{path}: ONNX shape inference fails: {first}. Give the model a fixed "
                         "input shape (for example with onnxruntime.tools.make_dynamic_shape_fixed).") from None
    return model


def initializers(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def static_input_shape(path, value_info):
    """Per-sample shape of a graph input: the leading (batch) dimension may be
    symbolic or 1; every other dimension must be a fixed positive number."""
    dims = value_info.type.tensor_type.shape.dim
    if not value_info.type.tensor_type.HasField("shape") or len(dims) == 0:
        raise ShapeError(f"{path}: input '{value_info.name}' has an unknown shape. Give the model a "
                         "fixed input shape, e.g. python -m onnxruntime.tools.make_dynamic_shape_fixed "
                         f"--input_name {value_info.name} --input_shape 1,... in.onnx out.onnx")
    shape = []
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(d.dim_value)
        elif i == 0:
            shape.append(1)           # batch: frames stream one after another
        else:
            label = d.dim_param or "?"
            raise ShapeError(f"{path}: input '{value_info.name}' has dynamic dimension {i} "
                             f"('{label}'). qloom builds a circuit for one fixed shape; fix it, e.g. "
                             "python -m onnxruntime.tools.make_dynamic_shape_fixed --dim_param "
                             f"{label} --dim_value N in.onnx out.onnx")
    if shape[0] != 1:
        raise ShapeError(f"{path}: input '{value_info.name}' has batch size {shape[0]}; qloom streams "
                         "one frame at a time, so export with batch size 1 or a symbolic batch.")
    return tuple(shape[1:])


def as_int(a):
    return np.asarray(a).astype(np.int64)
