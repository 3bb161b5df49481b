"""Opening a file qloom reads (a model, its external data) safely: stat first, refusing
anything but a regular file (a FIFO would block, a directory cannot be read), then open it
non-blocking and check again.  Every failure is a ModelFileError naming the file."""
import os
import stat
from itertools import islice
from pathlib import Path

from ..errors import ModelFileError, QloomError


def stat_regular(path, label, what_to_do, model=False):
    """os.stat of ``path``, refused unless it is a regular file; opens nothing (a FIFO would
    block)."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if model:
            raise ModelFileError(f"{label}no such model file. {what_to_do}") from None
        raise
    except PermissionError:
        raise ModelFileError(f"{label}cannot be read (permission denied). Give qloom read access "
                             "to it (chmod +r, and +x on its folders) or copy it somewhere "
                             "readable.") from None
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{label}cannot be opened ({getattr(e, 'strerror', None) or e}). "
                             f"{what_to_do}") from None
    if stat.S_ISDIR(info.st_mode):
        try:
            inside = sorted(p.name for p in islice(Path(path).glob("*.onnx"),
                                                   100))[:3] if model else []
        except OSError:
            inside = []
        found = f" (it holds {', '.join(inside)})" if inside else ""
        raise ModelFileError(f"{label}is a directory, not a file{found}. {what_to_do}")
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"{label}is {_file_kind(info.st_mode)}, not a regular file; qloom "
                             f"reads only regular files. {what_to_do}")
    return info


def _file_kind(mode):
    kinds = [(stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "a special file")


def option_file(path, where, want, error=QloomError):
    """os.stat of a file a command-line option names (``where``: "--fold f.json"), refused in one
    sentence ending in ``want`` unless it is a regular file; opens nothing."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{where}: no such file; {want}.") from None
    except (OSError, ValueError) as e:          # a NUL byte, a name too long, a symlink loop
        why = getattr(e, "strerror", None) or e
        raise error(f"{where}: cannot be read ({why}); {want}.") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{where}: is a directory; {want}.")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{where}: is not a regular file (a FIFO, socket or device); {want}.")
    return info


def open_file(path, label):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        raise ModelFileError(f"{label}cannot be read (permission denied). Give qloom read access "
                             "to it (chmod +r) or copy it somewhere readable.") from None
    except OSError as e:
        raise ModelFileError(f"{label}cannot be opened ({e.strerror}).") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):   # replaced since it was checked
        f.close()
        raise ModelFileError(f"{label}is not a regular file; qloom reads only regular files.")
    return f


def human(n):
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift or unit == "KiB":
            return f"{n / (1 << shift):.1f} {unit}"
