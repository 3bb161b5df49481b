"""The tensors of an ONNX model, checked before numpy reads them: each tensor's size known from
its dims and type before any data is read, external data read only from beside the model and
only when its place and size agree with the dims, values filling exactly one field, and 8-bit
weight codes within the memory bound.  Every failure is a QloomError naming the tensor."""
import math

import numpy as np
from onnx import TensorProto, helper

from ..errors import ModelFileError, onnx_node_label
from .files import open_file, stat_regular

TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data",
                "uint64_data")
PACKED = {getattr(TensorProto, name): per for name, per in
          (("INT4", 2), ("UINT4", 2), ("FLOAT4E2M1", 2), ("INT2", 4), ("UINT2", 4))
          if hasattr(TensorProto, name)}
SIX_BIT = {getattr(TensorProto, name) for name in ("FLOAT6E2M3", "FLOAT6E3M2")
           if hasattr(TensorProto, name)}


def _type_name(tensor):
    return TensorProto.DataType.Name(tensor.data_type).lower()


def _described(tensor):
    return f"shape ({', '.join(map(str, tensor.dims))}) of {_type_name(tensor)}"


def declared_size(path, tensor):
    """(elements, bytes as an array) from the tensor's dims and type alone; reads no data."""
    label = f"{path}: tensor '{tensor.name}'"
    if tensor.data_type not in TensorProto.DataType.values() or \
            tensor.data_type == TensorProto.UNDEFINED:
        raise ModelFileError(f"{label} has element type {tensor.data_type}, which is "
                             f"{'UNDEFINED' if tensor.data_type == 0 else 'not an ONNX type'}. "
                             "Export the model again.")
    if tensor.data_type == TensorProto.STRING:
        raise ModelFileError(f"{label} holds strings; qloom's models compute on numbers only. "
                             "Remove the tensor, or use a model without string data.")
    for i, d in enumerate(tensor.dims):
        if d < 0:
            raise ModelFileError(f"{label} has dimension {i} = {d}; a tensor's dimensions are "
                                 "sizes (0 or more). Export the model again.")
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
                raise ModelFileError(f"{path}: tensor '{tensor.name}' gives its external data "
                                     f"{key} as '{info[key]}', not a byte count. Export the model "
                                     "again.")
    return info.get("location", ""), numbers.get("offset", 0), numbers.get("length")


def load_external(path, folder, tensor):
    """Read the tensor's bytes from its data file beside the model, once their place and size in
    that file are known to agree with the tensor's dims."""
    location, offset, length = _external_info(path, tensor)
    label = f"{path}: tensor '{tensor.name}'"
    if "\0" in location:
        raise ModelFileError(f"{label} keeps its data at {location!r}, a location with a NUL byte, "
                             "which no file name can hold. Export the model again.")
    target = (folder / location).resolve()
    if not location or folder not in target.parents:
        raise ModelFileError(f"{label} keeps its data at '{location}', outside "
                             f"the model's folder {folder}. qloom only reads external data "
                             "stored beside the model; move the data file next to it.")
    if tensor.HasField("raw_data") or any(len(getattr(tensor, f)) for f in TYPED_FIELDS):
        raise ModelFileError(f"{label} keeps its data in '{location}' and also holds values in the "
                             "model; a tensor keeps its values in one place. Export the model "
                             "again.")
    try:
        info = stat_regular(target, f"{label} keeps its data in '{location}', which ",
                             "Copy the external data file next to the model.")
    except (FileNotFoundError, NotADirectoryError):
        raise ModelFileError(f"{label} keeps its data in '{location}', which does not exist. Copy "
                             "the external data file next to the model.") from None
    size = _stored_bytes(tensor, declared_size(path, tensor)[0])
    if length is not None and length != size:
        raise ModelFileError(f"{label} declares {length} bytes of data in '{location}', but its "
                             f"{_described(tensor)} takes {size} bytes. The model and its data "
                             "file do not match; export them again together.")
    if offset + size > info.st_size:
        raise ModelFileError(f"{label} needs bytes {offset} to {offset + size} of '{location}', "
                             f"which holds only {info.st_size} bytes: the data file is shorter "
                             "than the tensor (truncated?). Copy the whole data file, or export "
                             "the model again.")
    if length is None and offset + size < info.st_size:
        raise ModelFileError(f"{label} reads '{location}' from byte {offset} to its end, "
                             f"{info.st_size - offset} bytes, but its {_described(tensor)} takes "
                             f"{size} bytes: the data file is longer than the tensor. Export the "
                             "model and its data again together.")
    with open_file(target, f"{label} keeps its data in '{location}', which ") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise ModelFileError(f"{label}: '{location}' shrank while qloom read it; give files that "
                             "are not being written.")
    tensor.raw_data = data
    del tensor.external_data[:]
    tensor.data_location = TensorProto.DEFAULT


def check_values(path, tensor):
    """The tensor's values fill exactly its dims, in the one field its type uses (numpy would
    otherwise fail to reshape them, or pick one of two copies)."""
    label = f"{path}: tensor '{tensor.name}'"
    if tensor.HasField("segment"):
        raise ModelFileError(f"{label} is stored in segments, which qloom does not read. Save the "
                             "model with each tensor in one piece.")
    n = declared_size(path, tensor)[0]
    filled = (["raw_data"] if tensor.HasField("raw_data") else []) + \
        [f for f in TYPED_FIELDS if len(getattr(tensor, f))]
    if len(filled) > 1:
        raise ModelFileError(f"{label} holds its values twice (in {' and '.join(filled)}); a "
                             "tensor keeps them in one field. Export the model again.")
    field = helper.tensor_dtype_to_field(tensor.data_type)
    if filled and filled[0] not in ("raw_data", field):
        raise ModelFileError(f"{label} of type {_type_name(tensor)} keeps its values in "
                             f"{filled[0]}, but that type belongs in {field} or raw_data. Export "
                             "the model again.")
    if filled[:1] == ["raw_data"]:
        got, want, unit = len(tensor.raw_data), _stored_bytes(tensor, n), "bytes"
    else:
        got, want, unit = len(getattr(tensor, field)), _stored_values(tensor, n), f"{field} values"
    if got != want:
        raise ModelFileError(f"{label} holds {got} {unit}, but its {_described(tensor)} takes "
                             f"{want}: the data is {'shorter' if got < want else 'longer'} than "
                             "the tensor. Export the model again.")


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
    device = limits.device_bound(limits.MEMORY_BITS, limits.LARGEST_BRAM_BITS, "bits",
                                 "bits of block RAM")
    raise limits.LimitError(f"{path}: the model's 8-bit weight tensors hold {total:,} codes (the "
                            f"most in '{name}'{where}: {most:,}), and the design needs at least a "
                            f"bit of memory or logic for each, {device}. Use a smaller model, or "
                            f"{limits.MEMORY_BITS.raise_it()}.")
