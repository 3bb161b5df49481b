"""What the user hands the command line besides the model: input frames and labels (.npy files,
checked from their header before they are read whole) and the numeric options (checked by
argparse, whose refusals are said like every other qloom error)."""
import argparse
import math

import numpy as np

from .mapper.errors import QloomError
from .mapper.frontend.files import option_file

MAX_VALUES = 2 ** 26      # frames × the graph's largest tensor the reference may hold at once
MAX_PROBABILITY = 0.95    # --gap/--stall: a beat then takes 20 cycles on average
MAX_CLOCK_MHZ = 1000.0


class InputFileError(QloomError):
    """An --input or --labels file is missing, unreadable, or not the array asked for."""


class UsageError(QloomError):
    """A command-line argument is wrong (argparse's own refusals included)."""


def _dims(shape):
    return ", ".join(map(str, shape))


def want_frames(shape=None):
    frame = (f"(frames, {_dims(shape)})" if shape is not None
             else "(frames, *the model's frame shape)")
    return f"give a .npy file (numpy.save) of float frames of shape {frame}"


# ---- .npy files: the header first --------------------------------------------------------------

def _open_regular(path, option, want):
    """The file ``path`` opened for reading, refused unless it is a regular file (a FIFO would
    block, a directory or device is no array)."""
    where = f"{option} {path}"
    if not str(path):
        raise InputFileError(f"{option} '' names no file; {want}.")
    st = option_file(path, where, want, InputFileError)
    if st.st_size == 0:
        raise InputFileError(f"{where}: is empty; {want}.")
    try:
        return open(path, "rb"), st.st_size
    except OSError as e:
        raise InputFileError(f"{where}: cannot be read ({e.strerror or e}); {want}.") from None


def _header(f, size, where, want):
    """(shape, dtype, data offset) of an open .npy file, refused unless the data that follows
    the header is exactly the declared array."""
    start = f.read(6)
    if start[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        raise InputFileError(f"{where}: is a NumPy .npz archive (numpy.savez), not a .npy array; "
                             f"{want}.")
    if start != b"\x93NUMPY":
        raise InputFileError(f"{where}: is not a .npy file (it does not begin with NumPy's magic "
                             f"string); {want}.")
    f.seek(0)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise InputFileError(f"{where}: uses .npy format version {version[0]}.{version[1]}; "
                                 "qloom reads versions 1.0 and 2.0, which numpy.save writes for "
                                 f"plain arrays; {want}.")
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, EOFError) as e:
        first = str(e).split("\n")[0][:200]
        raise InputFileError(f"{where}: has a corrupt .npy header ({first}); {want}.") from None
    if any(d < 0 for d in shape):
        raise InputFileError(f"{where}: has a corrupt .npy header (shape {shape}); {want}.")
    what = _kind(dtype)
    if what:
        raise InputFileError(f"{where}: holds {what}, not floats or integers; {want}.")
    offset = f.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if size - offset < nbytes:
        raise InputFileError(f"{where}: is truncated: its header declares an array of shape "
                             f"{shape} and dtype {dtype} ({nbytes:,} bytes), but only "
                             f"{size - offset:,} bytes follow; {want}.")
    if size - offset > nbytes:
        raise InputFileError(f"{where}: holds {size - offset - nbytes:,} bytes after its array of "
                             f"shape {shape} (several arrays saved to one file?); {want}.")
    return shape, dtype, offset


def _kind(dtype):
    """What a non-numeric dtype holds, in words (None for integers and floats)."""
    if dtype.kind in "iuf" and dtype.fields is None and dtype.subdtype is None:
        return None
    return {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "byte strings",
            "O": "Python objects (qloom never unpickles a file)", "M": "dates",
            "m": "time spans"}.get(
        dtype.kind, f"records of dtype {dtype}")


def _read(f, where, want):
    f.seek(0)
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputFileError(f"{where}: cannot be read ({str(e).splitlines()[0][:200]}); "
                             f"{want}.") from None


def peek(path, option, want=None):
    """(shape, dtype) of a .npy file of numbers, from its header alone: every check that needs
    no model (the file, its format, its dtype, its size), to run before a long compile."""
    want = want or want_frames()
    f, size = _open_regular(path, option, want)
    with f:
        shape, dtype, _ = _header(f, size, f"{option} {path}", want)
    if math.prod(shape) > MAX_VALUES:
        raise InputFileError(f"{option} {path}: holds {math.prod(shape):,} values (shape {shape}), "
                             f"more than the {MAX_VALUES:,} qloom handles in one run; split the "
                             "frames into several files.")
    return shape, dtype


# ---- input frames ------------------------------------------------------------------------------

def max_frames(graph):
    """Frames the reference may run at once: its largest tensor times the frames stays within
    MAX_VALUES."""
    return max(1, MAX_VALUES // max(math.prod(s) for s in graph.shapes.values()))


def _frames_bound(graph, frames, what):
    limit = max_frames(graph)
    if frames > limit:
        largest = max(math.prod(s) for s in graph.shapes.values())
        raise UsageError(f"{what}: {frames:,} frames are more than qloom runs at once on this "
                         f"model ({limit:,}: its largest tensor holds {largest:,} values a frame, "
                         f"and at most {MAX_VALUES:,} are held at once); give at most {limit:,} "
                         "frames per run.")


def frame_shape(graph):
    return tuple(int(d) for d in graph.nodes[0].shape)


def _as_frames(shape, frame, where, want):
    """The array shape the file's shape is read as, (frames, *frame), or a refusal."""
    per_frame = math.prod(frame)
    if len(shape) == 0:
        raise InputFileError(f"{where}: holds a single number (a 0-d array); {want}.")
    if shape[0] == 0:
        raise InputFileError(f"{where}: holds no frames (shape {shape}); {want}.")
    if tuple(shape[1:]) == frame:
        return tuple(shape)
    # e.g. (frames, 8, 8) for frames of (64,)
    if len(shape) >= 2 and math.prod(shape[1:]) == per_frame:
        return (shape[0],) + frame
    if tuple(shape) == frame or (len(shape) == len(frame) and math.prod(shape) == per_frame):
        raise InputFileError(f"{where}: holds one array of shape {tuple(shape)}, which is one "
                             f"frame without the frames axis; give shape (1, {_dims(frame)}) "
                             f"(x[None] in NumPy) for one frame, or (frames, {_dims(frame)}).")
    raise InputFileError(f"{where}: holds an array of shape {tuple(shape)}, but the model takes "
                         f"frames of shape {frame} ({per_frame:,} values each); {want}.")


def load_inputs(path, graph, option="--input"):
    """The frames of a .npy file as float32, shape (frames, *frame shape).  Floats of any width
    are rounded to float32 (what onnxruntime is given: NaN and ±inf are quantized as it does);
    integers are accepted when float32 holds them exactly."""
    frame = frame_shape(graph)
    want = want_frames(frame)
    where = f"{option} {path}"
    shape, dtype = peek(path, option, want)
    target = _as_frames(shape, frame, where, want)
    _frames_bound(graph, target[0], where)
    f, _ = _open_regular(path, option, want)
    with f:
        x = _read(f, where, want)
    if x.dtype.kind in "iu":
        with np.errstate(invalid="ignore", over="ignore"):
            inexact = np.flatnonzero(x.astype(np.float32).astype(x.dtype) != x)
        if len(inexact):
            v = x.reshape(-1)[inexact[0]]
            raise InputFileError(f"{where}: holds integers of dtype {x.dtype}, and {v} (element "
                                 f"{inexact[0]:,} of the flattened array) is not exact as float32, "
                                 "the model's input type; give float32 frames, or integers within "
                                 "±16,777,216.")
    # float64 beyond float32's range: ±inf, as onnxruntime is given
    with np.errstate(over="ignore"):
        return x.reshape(target).astype(np.float32)


def random_inputs(graph, count):
    """``count`` random frames spanning the input code range (agreement.random_inputs), bounded."""
    from . import agreement
    _frames_bound(graph, count, f"--count {count}")
    return agreement.random_inputs(graph, count)


# ---- labels ------------------------------------------------------------------------------------

def load_labels(path, graph, frames, input_path, option="--labels"):
    """One class index per frame (int64, shape (frames,)) from a .npy file: integers, or floats
    with integer values; each a class of the model's output (its last axis)."""
    classes = int(graph.shapes[graph.outputs[0]][-1]) if graph.shapes[graph.outputs[0]] else 1
    want = (f"give a .npy file of {frames:,} class indices (integers from 0 to {classes - 1}), "
            "one per frame"
            + (f" of --input {input_path}" if input_path else ""))
    where = f"{option} {path}"
    if not input_path:
        raise UsageError(f"{where}: labels need --input (the frames they belong to); without "
                         "--input, check makes random frames, which have no labels.")
    shape, dtype = peek(path, option, want)
    if len(shape) == 0:
        raise InputFileError(f"{where}: holds a single number (a 0-d array); {want}.")
    if sum(d != 1 for d in shape) > 1:
        raise InputFileError(f"{where}: holds an array of shape {shape}; labels are one class "
                             f"index per frame, shape ({frames},) (for one-hot labels or scores, "
                             "save labels.argmax(axis=-1)).")
    if math.prod(shape) != frames:
        raise InputFileError(f"{where}: holds {math.prod(shape):,} labels for the {frames:,} "
                             f"frames of --input {input_path}; {want}.")
    f, _ = _open_regular(path, option, want)
    with f:
        y = _read(f, where, want).reshape(-1)
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if len(bad):
            raise InputFileError(f"{where}: label {y[bad[0]].item()} (at index {bad[0]:,}) is not "
                                 f"a whole number; {want}.")
    with np.errstate(invalid="ignore"):
        out = np.where((y >= 0) & (y < classes), y, -1).astype(np.int64)
    bad = np.flatnonzero(out < 0)
    if len(bad):
        raise InputFileError(f"{where}: label {y[bad[0]].item()} (at index {bad[0]:,}) is not a "
                             f"class of the model, whose output has {classes} classes (0 to "
                             f"{classes - 1}); {want}.")
    return out


# ---- argparse: option values and its own refusals ----------------------------------------------

def _number(text, convert, what):
    try:
        v = convert(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    return v


def positive_int(text):
    """A whole number >= 1 (--count, --max-multipliers, --chunk)."""
    v = _number(text, int, "a whole number")
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be a whole number of at least 1")
    return v


def non_negative_int(text):
    """A whole number >= 0 (--seed)."""
    v = _number(text, int, "a whole number")
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must be a whole number of at least 0")
    return v


def probability(text):
    """A probability of an idle cycle, from 0 up to MAX_PROBABILITY (--gap, --stall): at 1 the
    simulation would never move."""
    v = _number(text, float, f"a probability from 0 to {MAX_PROBABILITY:g}")
    if not 0.0 <= v <= MAX_PROBABILITY:         # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text} must be a probability from 0 to "
                                         f"{MAX_PROBABILITY:g} (higher values only slow the "
                                         "simulation: 1/(1-p) cycles a beat)")
    return v


def utilization(text):
    """--utilization: {resource: fraction} (mapper.budget.parse_caps)."""
    from .mapper import budget
    try:
        return budget.parse_caps(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def clock_mhz(text):
    """A clock frequency in MHz, above 0 and at most MAX_CLOCK_MHZ (--clock)."""
    v = _number(text, float, "a frequency in MHz")
    if not 0.0 < v <= MAX_CLOCK_MHZ:
        raise argparse.ArgumentTypeError(f"{text} must be a clock frequency in MHz above 0 and at "
                                         f"most {MAX_CLOCK_MHZ:g}")
    return v


class Parser(argparse.ArgumentParser):
    """argparse, whose refusals (a bad value, a missing or unknown argument) become a UsageError,
    said by qloom.cli.main like every other error: one paragraph, exit 2."""

    def error(self, message):
        raise UsageError(f"{' '.join(message.split())}; see '{self.prog} --help'.")
