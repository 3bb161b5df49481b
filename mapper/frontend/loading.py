"""Loading an ONNX file safely: the file size-checked before it is read, every tensor's size
known from its dims before any external data is read, external data confined to the model's
folder, opsets, names and shapes checked as strictly as onnxruntime's loader, then the ONNX
checker and shape inference.  Every failure is a QloomError."""
import functools
import math
import os
import stat
from itertools import islice
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from ..errors import ModelFileError, QloomError, ShapeError, onnx_node_label

MAX_PARAMETER_BYTES = 64 << 20    # on-chip weights: the largest supported FPGAs hold a few MiB
MAX_MODEL_FILE_BYTES = 256 << 20  # four times what a model within MAX_PARAMETER_BYTES needs
MODEL_BYTES_VARIABLE = "QLOOM_MAX_MODEL_BYTES"   # raises MAX_MODEL_FILE_BYTES
PROTOBUF_LIMIT = 2 << 30          # no protobuf message (an .onnx file) can be this large
MIN_OPSET = 10                    # QuantizeLinear, QLinearMatMul, MatMulInteger first appear in opset 10


def load(path):
    """Read, check and shape-infer ``path``; returns an onnx.ModelProto with all data loaded."""
    path = Path(path)
    model = _parse(path, _read_model_file(path))
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(f"{path}: the file holds no ONNX graph (empty, truncated or not ONNX). "
                             "Export the model again.")
    _check_opsets(path, model)
    if model.graph.sparse_initializer:
        name = model.graph.sparse_initializer[0].values.name
        raise ModelFileError(f"{path}: tensor '{name}' is a sparse initializer, which qloom does not read. "
                             "Store it as a dense initializer (onnx.numpy_helper.from_array) and save the "
                             "model again.")
    tensors = list(external_data_helper._get_all_tensors(model))
    total = sum(_declared_size(path, t)[1] for t in tensors)
    if total > MAX_PARAMETER_BYTES:
        raise ModelFileError(f"{path}: the model holds {_human(total)} of parameters; qloom keeps "
                             f"weights on chip and accepts at most {_human(MAX_PARAMETER_BYTES)}. "
                             "Use a smaller model.")
    folder = path.parent.resolve()
    for tensor in tensors:
        if tensor.data_location == TensorProto.EXTERNAL:
            _load_external(path, folder, tensor)
    for tensor in tensors:
        _check_values(path, tensor)
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
        raise ShapeError(f"{path}: ONNX shape inference fails: {_paragraph(e)}. Re-export the model, "
                         "or correct the shapes it declares (graph outputs, value_info) to what its "
                         "operators compute.") from None
    return model


def initializers(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def as_int(a):
    return np.asarray(a).astype(np.int64)


# -- the file --------------------------------------------------------------------------------------
def _read_model_file(path):
    """The bytes of ``path``, once it is known to be a readable regular file of bounded size."""
    info = _stat_regular(path, f"{path}: ", "Give the path of an .onnx file.", model=True)
    limit = _max_model_bytes()
    if info.st_size >= PROTOBUF_LIMIT:
        raise ModelFileError(f"{path}: the file is {_human(info.st_size)}; an .onnx file is one protobuf "
                             f"message and cannot reach {_human(PROTOBUF_LIMIT)} (large models keep their "
                             "weights in external data files). It is not an ONNX model; export it again.")
    if info.st_size > limit:
        raise ModelFileError(f"{path}: the file is {_human(info.st_size)}; qloom reads model files of at "
                             f"most {_human(limit)} (its parameters must fit in {_human(MAX_PARAMETER_BYTES)} "
                             f"on chip). If this really is the model, raise the limit with the environment "
                             f"variable {MODEL_BYTES_VARIABLE}=<bytes>.")
    if info.st_size == 0:
        raise ModelFileError(f"{path}: the file is empty (0 bytes). Export the model again.")
    with _open(path, f"{path}: ") as f:
        head = f.read(64)
        _sniff(path, head)
        data = head + f.read(limit + 1 - len(head))
    if len(data) > limit:
        raise ModelFileError(f"{path}: the file grew beyond {_human(limit)} while qloom read it; "
                             "give a file that is not being written.")
    return data


def _stat_regular(path, label, what_to_do, model=False):
    """os.stat of ``path``, refused unless it is a regular file; opens nothing (a FIFO would block)."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if model:
            raise ModelFileError(f"{label}no such model file. {what_to_do}") from None
        raise
    except PermissionError:
        raise ModelFileError(f"{label}cannot be read (permission denied). Give qloom read access to it "
                             "(chmod +r, and +x on its folders) or copy it somewhere readable.") from None
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{label}cannot be opened ({getattr(e, 'strerror', None) or e}). "
                             f"{what_to_do}") from None
    if stat.S_ISDIR(info.st_mode):
        try:
            inside = sorted(p.name for p in islice(Path(path).glob("*.onnx"), 100))[:3] if model else []
        except OSError:
            inside = []
        found = f" (it holds {', '.join(inside)})" if inside else ""
        raise ModelFileError(f"{label}is a directory, not a file{found}. {what_to_do}")
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"{label}is {_file_kind(info.st_mode)}, not a regular file; qloom reads only "
                             f"regular files. {what_to_do}")
    return info


def _file_kind(mode):
    kinds = [(stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "a special file")


def _open(path, label):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        raise ModelFileError(f"{label}cannot be read (permission denied). Give qloom read access to it "
                             "(chmod +r) or copy it somewhere readable.") from None
    except OSError as e:
        raise ModelFileError(f"{label}cannot be opened ({e.strerror}).") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):   # replaced since it was checked
        f.close()
        raise ModelFileError(f"{label}is not a regular file; qloom reads only regular files.")
    return f


def _max_model_bytes():
    value = os.environ.get(MODEL_BYTES_VARIABLE)
    if value is None:
        return MAX_MODEL_FILE_BYTES
    try:
        limit = int(value)
        if limit <= 0:
            raise ValueError
    except ValueError:
        raise QloomError(f"{MODEL_BYTES_VARIABLE}={value!r} is not a positive number of bytes; set it "
                         f"to e.g. {2 * MAX_MODEL_FILE_BYTES} or unset it.") from None
    return limit


SIGNATURES = [(b"version https://git-lfs", "a Git LFS pointer, not the model itself; fetch the file with "
                                           "git lfs pull"),
              (b"PK\x03\x04", "a zip archive (a PyTorch checkpoint, or a zipped model?), not an ONNX file; "
                              "export the model with torch.onnx.export, or unzip it"),
              (b"\x93NUMPY", "a NumPy array (.npy), not an ONNX model; give the .onnx file"),
              (b"\x89HDF", "an HDF5 file (a Keras model?), not an ONNX model; convert it with tf2onnx")]


def _sniff(path, head):
    """Refuse at once a file whose first bytes no protobuf message (ONNX model) can start with."""
    for magic, what in SIGNATURES:
        if head.startswith(magic):
            raise ModelFileError(f"{path}: the file is {what}.")
    if head.lstrip()[:1] == b"<":
        raise ModelFileError(f"{path}: the file is an HTML or XML page (a web page saved instead of the "
                             "model?), not an ONNX model. Download the model file itself.")
    tag, shift = 0, 0
    for byte in head[:5]:
        tag |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    if tag >> 3 == 0 or tag & 7 not in (0, 1, 2, 5):
        raise ModelFileError(f"{path}: not a readable ONNX model: it starts with byte 0x{head[0]:02x}, which "
                             "no ONNX file (a protobuf message) can. The file is not ONNX or is corrupt; "
                             "export it again.")


def _parse(path, data):
    try:
        return onnx.load_model_from_string(data)
    except Exception as e:   # protobuf raises DecodeError, RuntimeWarning, ValueError ...
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(e).__name__}: {_paragraph(e)}). "
                             "The file may be truncated or not ONNX; export it again.") from None


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
            raise ModelFileError(f"{path}: the model imports opset {seen[domain]} and opset {entry.version} of "
                                 f"domain '{entry.domain or 'ai.onnx'}'; a model imports each domain once. "
                                 "Keep one opset_import entry per domain and export it again.")
        seen[domain] = entry.version
    newest = _newest_opsets()
    if "" not in seen:
        raise ModelFileError(f"{path}: the model imports no ONNX opset (its opset_import has no entry for "
                             f"the default domain ai.onnx). Export it again with an opset from {MIN_OPSET} "
                             f"to {newest['']}.")
    if not MIN_OPSET <= seen[""] <= newest[""]:
        convert = (", or convert it with onnx.version_converter.convert_version(model, 17)"
                   if seen[""] < MIN_OPSET else "")
        raise ModelFileError(f"{path}: the model imports ONNX opset {seen['']}; qloom reads opsets "
                             f"{MIN_OPSET} to {newest['']} ({MIN_OPSET} is the first with QuantizeLinear; "
                             f"{newest['']} is the newest {_versions()} know). Export it again with an opset "
                             f"in that range{convert}.")
    version = seen.get("com.microsoft")
    if version is not None and not 1 <= version <= newest["com.microsoft"]:
        raise ModelFileError(f"{path}: the model imports com.microsoft opset {version}; {_versions()} "
                             f"define com.microsoft opsets 1 to {newest['com.microsoft']}. Export it again "
                             f"with com.microsoft opset 1.")


def _check_names(path, graph):
    """Node names and graph outputs once each, as onnxruntime requires (the ONNX checker does not)."""
    ops = {}
    for node in graph.node:
        if node.name and node.name in ops:
            raise ModelFileError(f"{path}: two nodes are named '{node.name}' ({ops[node.name]} and "
                                 f"{node.op_type}); onnxruntime refuses a model whose node names repeat. "
                                 "Give each node its own name and save the model again.")
        ops.setdefault(node.name, node.op_type)
    outputs = set()
    for output in graph.output:
        if output.name in outputs:
            raise ModelFileError(f"{path}: graph output '{output.name}' is listed twice. List each output "
                                 "once and save the model again.")
        outputs.add(output.name)


def _paragraph(error, limit=1500):
    """An exception's whole text as one line (the ONNX checker names the node on a later line)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()).rstrip(".")
    text = text or type(error).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _human(n):
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift or unit == "KiB":
            return f"{n / (1 << shift):.1f} {unit}"


# -- tensors ---------------------------------------------------------------------------------------
TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")
PACKED = {getattr(TensorProto, name): per for name, per in
          (("INT4", 2), ("UINT4", 2), ("FLOAT4E2M1", 2), ("INT2", 4), ("UINT2", 4)) if hasattr(TensorProto, name)}
SIX_BIT = {getattr(TensorProto, name) for name in ("FLOAT6E2M3", "FLOAT6E3M2") if hasattr(TensorProto, name)}


def _type_name(tensor):
    return TensorProto.DataType.Name(tensor.data_type).lower()


def _described(tensor):
    return f"shape ({', '.join(map(str, tensor.dims))}) of {_type_name(tensor)}"


def _declared_size(path, tensor):
    """(elements, bytes as an array) from the tensor's dims and type alone; reads no data."""
    label = f"{path}: tensor '{tensor.name}'"
    if tensor.data_type not in TensorProto.DataType.values() or tensor.data_type == TensorProto.UNDEFINED:
        raise ModelFileError(f"{label} has element type {tensor.data_type}, which is "
                             f"{'UNDEFINED' if tensor.data_type == 0 else 'not an ONNX type'}. "
                             "Export the model again.")
    if tensor.data_type == TensorProto.STRING:
        raise ModelFileError(f"{label} holds strings; qloom's models compute on numbers only. "
                             "Remove the tensor, or use a model without string data.")
    for i, d in enumerate(tensor.dims):
        if d < 0:
            raise ModelFileError(f"{label} has dimension {i} = {d}; a tensor's dimensions are sizes (0 or "
                                 "more). Export the model again.")
    n = int(np.prod(tensor.dims, dtype=object)) if tensor.dims else 1
    return n, n * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize


def _stored_bytes(tensor, n):
    """Bytes of raw_data (inline or external) that ``n`` elements of the tensor's type take."""
    if tensor.data_type in PACKED:
        return -(-n // PACKED[tensor.data_type])
    if tensor.data_type in SIX_BIT:
        return -(-n * 6 // 8)
    return n * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize


def _stored_values(tensor, n):
    """Entries of the typed field (int32_data, float_data ...) that ``n`` elements take."""
    if tensor.data_type in PACKED:
        return -(-n // PACKED[tensor.data_type])
    if tensor.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
        return 2 * n
    return n


def _external_info(path, tensor):
    """(location, offset, length or None) of an external tensor, the numbers checked."""
    info = {e.key: e.value for e in tensor.external_data}
    numbers = {}
    for key in ("offset", "length"):
        if key in info:
            try:
                numbers[key] = int(info[key])
            except ValueError:
                numbers[key] = -1
            if numbers[key] < 0:
                raise ModelFileError(f"{path}: tensor '{tensor.name}' gives its external data {key} as "
                                     f"'{info[key]}', not a byte count. Export the model again.")
    return info.get("location", ""), numbers.get("offset", 0), numbers.get("length")


def _load_external(path, folder, tensor):
    """Read the tensor's bytes from its data file beside the model, once their place and size in
    that file are known to agree with the tensor's dims."""
    location, offset, length = _external_info(path, tensor)
    label = f"{path}: tensor '{tensor.name}'"
    if "\0" in location:
        raise ModelFileError(f"{label} keeps its data at {location!r}, a location with a NUL byte, which no "
                             "file name can hold. Export the model again.")
    target = (folder / location).resolve()
    if not location or folder not in target.parents:
        raise ModelFileError(f"{label} keeps its data at '{location}', outside "
                             f"the model's folder {folder}. qloom only reads external data "
                             "stored beside the model; move the data file next to it.")
    if tensor.HasField("raw_data") or any(len(getattr(tensor, f)) for f in TYPED_FIELDS):
        raise ModelFileError(f"{label} keeps its data in '{location}' and also holds values in the model; "
                             "a tensor keeps its values in one place. Export the model again.")
    try:
        info = _stat_regular(target, f"{label} keeps its data in '{location}', which ",
                             "Copy the external data file next to the model.")
    except (FileNotFoundError, NotADirectoryError):
        raise ModelFileError(f"{label} keeps its data in '{location}', which "
                             "does not exist. Copy the external data file next to the model.") from None
    size = _stored_bytes(tensor, _declared_size(path, tensor)[0])
    if length is not None and length != size:
        raise ModelFileError(f"{label} declares {length} bytes of data in '{location}', but its "
                             f"{_described(tensor)} takes {size} bytes. The model and its data file do not "
                             "match; export them again together.")
    if offset + size > info.st_size:
        raise ModelFileError(f"{label} needs bytes {offset} to {offset + size} of '{location}', which holds "
                             f"only {info.st_size} bytes: the data file is shorter than the tensor (truncated?). "
                             "Copy the whole data file, or export the model again.")
    if length is None and offset + size < info.st_size:
        raise ModelFileError(f"{label} reads '{location}' from byte {offset} to its end, {info.st_size - offset} "
                             f"bytes, but its {_described(tensor)} takes {size} bytes: the data file is longer "
                             "than the tensor. Export the model and its data again together.")
    with _open(target, f"{label} keeps its data in '{location}', which ") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise ModelFileError(f"{label}: '{location}' shrank while qloom read it; give files that are not "
                             "being written.")
    tensor.raw_data = data
    del tensor.external_data[:]
    tensor.data_location = TensorProto.DEFAULT


def _check_values(path, tensor):
    """The tensor's values fill exactly its dims, in the one field its type uses (numpy would
    otherwise fail to reshape them, or pick one of two copies)."""
    label = f"{path}: tensor '{tensor.name}'"
    if tensor.HasField("segment"):
        raise ModelFileError(f"{label} is stored in segments, which qloom does not read. Save the model "
                             "with each tensor in one piece.")
    n = _declared_size(path, tensor)[0]
    filled = (["raw_data"] if tensor.HasField("raw_data") else []) + \
        [f for f in TYPED_FIELDS if len(getattr(tensor, f))]
    if len(filled) > 1:
        raise ModelFileError(f"{label} holds its values twice (in {' and '.join(filled)}); a tensor keeps "
                             "them in one field. Export the model again.")
    field = helper.tensor_dtype_to_field(tensor.data_type)
    if filled and filled[0] not in ("raw_data", field):
        raise ModelFileError(f"{label} of type {_type_name(tensor)} keeps its values in {filled[0]}, but "
                             f"that type belongs in {field} or raw_data. Export the model again.")
    if filled[:1] == ["raw_data"]:
        got, want, unit = len(tensor.raw_data), _stored_bytes(tensor, n), "bytes"
    else:
        got, want, unit = len(getattr(tensor, field)), _stored_values(tensor, n), f"{field} values"
    if got != want:
        raise ModelFileError(f"{label} holds {got} {unit}, but its {_described(tensor)} takes {want}: the "
                             f"data is {'shorter' if got < want else 'longer'} than the tensor. Export the "
                             "model again.")


# -- shapes ----------------------------------------------------------------------------------------
def static_input_shape(path, value_info):
    """Per-sample shape of a graph input: the leading (batch) dimension may be
    symbolic, unknown, 1 or -1 (as onnxruntime, a dynamic batch); every other dimension
    must be a fixed positive number."""
    name = value_info.name
    if value_info.type.WhichOneof("value") not in (None, "tensor_type"):
        raise ShapeError(f"{path}: input '{name}' is a {value_info.type.WhichOneof('value').removesuffix('_type')}, "
                         "not a tensor; qloom takes one tensor input.")
    tensor_type = value_info.type.tensor_type
    dims = tensor_type.shape.dim
    if not tensor_type.HasField("shape") or len(dims) == 0:
        raise ShapeError(f"{path}: input '{name}' has an unknown shape. Give the model a "
                         "fixed input shape, e.g. python -m onnxruntime.tools.make_dynamic_shape_fixed "
                         f"--input_name {name} --input_shape 1,... in.onnx out.onnx")
    fixed = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    example = ",".join(["1"] + [str(v) if v else "N" for v in fixed[1:]])
    command = ("python -m onnxruntime.tools.make_dynamic_shape_fixed --input_name "
               f"{name} --input_shape {example} in.onnx out.onnx")
    for i, d in enumerate(dims):
        if fixed[i] or i == 0 and not (d.HasField("dim_value") and d.dim_value == 0):
            continue
        if d.HasField("dim_value") and i == 0:
            raise ShapeError(f"{path}: input '{name}' has batch size 0; qloom streams "
                             "one frame at a time, so export with batch size 1 or a symbolic batch.")
        if d.HasField("dim_value"):
            raise ShapeError(f"{path}: input '{name}' dimension {i} is {d.dim_value}, which is not a size "
                             "(some converters write it for a dynamic dimension). qloom builds a circuit for "
                             f"one fixed shape; give the input its real shape, e.g. {command}")
        if not d.dim_param:
            raise ShapeError(f"{path}: input '{name}' dimension {i} is unknown (neither a size nor a name). "
                             f"qloom builds a circuit for one fixed shape; give the input its real shape, e.g. "
                             f"{command}")
        raise ShapeError(f"{path}: input '{name}' has dynamic dimension {i} "
                         f"('{d.dim_param}'). qloom builds a circuit for one fixed shape; fix it, e.g. "
                         "python -m onnxruntime.tools.make_dynamic_shape_fixed --dim_param "
                         f"{d.dim_param} --dim_value N in.onnx out.onnx")
    if fixed[0] not in (None, 1):
        raise ShapeError(f"{path}: input '{name}' has batch size {fixed[0]}; qloom streams "
                         "one frame at a time, so export with batch size 1 or a symbolic batch.")
    return tuple(fixed[1:])


def _check_declared_shapes(path, graph):
    """No input, output or intermediate value is declared with an element type ONNX does not
    define, nor an output or value with a negative dimension."""
    for kind, infos in (("graph input", graph.input), ("graph output", graph.output), ("value", graph.value_info)):
        for info in infos:
            elem_type = info.type.tensor_type.elem_type
            if elem_type not in TensorProto.DataType.values():
                raise ModelFileError(f"{path}: {kind} '{info.name}' is declared with element type {elem_type}, "
                                     "which is not an ONNX type. Export the model again.")
            for i, d in enumerate(info.type.tensor_type.shape.dim if kind != "graph input" else ()):
                if d.HasField("dim_value") and d.dim_value < 0:
                    raise ShapeError(f"{path}: {kind} '{info.name}' is declared with dimension {i} = "
                                     f"{d.dim_value}, which is not a size. Re-export the model, or set that "
                                     "dimension to its real size (or clear it) and save the model again.")


CODE_TYPES = (TensorProto.INT8, TensorProto.UINT8)


def check_weight_codes(model, path):
    """Refuse, before the frontend turns them into int64 matrices, 8-bit weight tensors (two
    or more dimensions) whose codes alone are beyond limits.MEMORY_BITS at one bit each: a lower
    bound of what limits.memory_violations counts once the QGraph exists (qloom compile only)."""
    from .. import limits
    sizes = [(math.prod(t.dims), t.name) for t in model.graph.initializer
             if t.data_type in CODE_TYPES and len(t.dims) >= 2]
    total = sum(n for n, _ in sizes)
    if total <= limits.MEMORY_BITS.value:
        return
    most, name = max(sizes)
    user = next((n for n in model.graph.node if name in n.input), None)
    where = f" of {onnx_node_label(user)}" if user is not None else ""
    device = limits.device_bound(limits.MEMORY_BITS, limits.LARGEST_BRAM_BITS, "bits", "bits of block RAM")
    raise limits.LimitError(f"{path}: the model's 8-bit weight tensors hold {total:,} codes (the most in "
                            f"'{name}'{where}: {most:,}), and the design needs at least a bit of memory or "
                            f"logic for each, {device}. Use a smaller model, or {limits.MEMORY_BITS.raise_it()}.")
