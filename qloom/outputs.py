"""Writing outputs without ever destroying what qloom did not create.

An output folder is written whole into a fresh temporary sibling and renamed into place, so it
appears complete or not at all.  The folder carries a marker file listing what qloom wrote; an
existing folder is replaced only when it is such a qloom output holding nothing else (``force``
allows replacing a qloom output that holds other files too), and never when it is the current
directory, a folder above it, or the folder of (or above) one of the command's own input files.
Output files (``simulate --output``, ``synth --json``) are written beside their target and
renamed over it the same way; an existing file is replaced only when it is of the kind qloom
writes there.  SIGTERM is turned into an exception by the CLI, so an interrupted run removes its
temporary folder on the way out."""
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .mapper.errors import QloomError

MARKER = ".qloom-output"


class OutputError(QloomError):
    """An output path qloom must not or cannot write."""


def _version():
    from . import __version__
    return __version__


def _describe(e):
    """An OSError in words: 'permission denied', 'read-only file system', ..."""
    return (e.strerror or type(e).__name__).lower()


def _is_within(inner, outer):
    return inner == outer or outer in inner.parents


def _marker_files(folder):
    """The files a qloom output folder's marker lists, or None when it is no qloom output."""
    try:
        info = json.loads((folder / MARKER).read_text())
        return set(info["files"]) if info.get("written_by", "").startswith("qloom") else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def check_folder(out_dir, what, *, protect=(), force=False, container=False):
    """Refuse ``out_dir`` (given as ``what``, e.g. '-o out') before any work if qloom may not
    write it; returns it as a Path.  A ``container`` is a folder qloom writes its outputs into
    (one per target) and never replaces itself: what it already holds is left to each output's
    own check."""
    if str(out_dir).strip() == "":
        raise OutputError(f"{what}: the output folder name is empty; give the path of a new "
                          "folder.")
    out = Path(out_dir)
    try:
        here = Path.cwd().resolve()
    except OSError:
        here = None
    real = out.resolve()
    if here is not None and _is_within(here, real):
        where = "the current directory" if real == here else "a folder above the current directory"
        raise OutputError(f"{what}: '{out}' is {where}; qloom replaces its output folder whole and "
                          "never writes into the folder it runs in. Give a new folder, e.g. -o "
                          "build/out.")
    for p in protect:
        if p and Path(p).exists() and _is_within(Path(p).resolve().parent, real):
            raise OutputError(f"{what}: '{out}' holds the input file '{p}'; qloom replaces its "
                              "output folder whole, so it must not hold the command's inputs. "
                              "Give a new folder.")
    if out.is_symlink():
        raise OutputError(f"{what}: '{out}' is a symbolic link; give the real folder it points to, "
                          "or a new folder.")
    for parent in out.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{what}: '{parent}' is a file, not a folder, so '{out}' cannot be "
                              "made; give a path under a folder.")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what}: '{out}' is a file, not a folder; qloom writes an output folder "
                          "there. Give the path of a new folder, or remove the file.")
    if out.is_dir() and not container:
        _check_replaceable(out, what, force)
    return out


def _check_replaceable(out, what, force):
    try:
        names = set(os.listdir(out))
    except OSError as e:
        raise OutputError(f"{what}: cannot read the existing folder '{out}' ({_describe(e)}); "
                          "give a new folder.") from None
    if not names:
        return
    listed = _marker_files(out)
    if listed is None:
        shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        raise OutputError(f"{what}: '{out}' already exists and is not a qloom output (it holds "
                          f"{shown}); qloom never replaces a folder it did not write. Give a new "
                          "folder, or remove this one yourself.")
    others = sorted(names - listed - {MARKER})
    if others and not force:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise OutputError(f"{what}: '{out}' is an earlier qloom output but now also holds files "
                          f"qloom did not write ({shown}); replacing it would delete them. Move "
                          "them out, give a new folder, or add --force to replace the folder and "
                          "delete them.")


@contextlib.contextmanager
def folder(out_dir, what, *, protect=(), force=False):
    """Yield a fresh temporary folder beside ``out_dir``; when the block ends normally it
    becomes ``out_dir`` (replacing an earlier qloom output there), else it is removed."""
    out = check_folder(out_dir, what, protect=protect, force=force)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.qloom-tmp-", dir=parent))
    except OSError as e:
        raise OutputError(f"{what}: cannot create a folder in '{parent}' ({_describe(e)}); give a "
                          "folder you can write in.") from None
    try:
        try:
            yield tmp
            names = sorted(p.name for p in tmp.iterdir())
            marker = {"written_by": f"qloom {_version()}", "files": names}
            (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        except OSError as e:
            raise OutputError(f"{what}: cannot write the output in '{parent}' ({_describe(e)}); "
                              "give a folder you can write in, with room to spare.") from None
        _put_in_place(tmp, out, what, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _put_in_place(tmp, out, what, force):
    check_folder(out, what, force=force)        # again: the folder may have changed meanwhile
    old = None
    try:
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.qloom-old-",
                                        dir=out.absolute().parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
    except OSError as e:
        if old is not None and (old / out.name).exists() and not out.exists():
            os.replace(old / out.name, out)      # put the earlier output back
        raise OutputError(f"{what}: cannot put the output in place at '{out}' ({_describe(e)}); "
                          "give a folder you can write in.") from None
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def is_npy(p):
    with open(p, "rb") as f:
        return f.read(6) == b"\x93NUMPY"


def is_json(p):
    json.loads(Path(p).read_text())
    return True


NPY = dict(kind="a .npy file", suffix=".npy", ours=is_npy)
JSON = dict(kind="a JSON file", suffix=".json", ours=is_json)


def check_file(path, what, *, kind, suffix, ours, protect=()):
    """Refuse ``path`` before any work unless qloom may write a ``kind`` file there: an existing
    file is replaced only when ``ours(path)`` says it is of that kind."""
    if str(path).strip() == "":
        raise OutputError(f"{what}: the output file name is empty; give a path ending in {suffix}.")
    p = Path(path)
    if p.suffix != suffix:
        raise OutputError(f"{what}: '{p}' does not end in {suffix}; qloom writes {kind} there, "
                          f"give a path ending in {suffix}.")
    for q in protect:
        if q and p.exists() and Path(q).exists() and os.path.samefile(p, q):
            raise OutputError(f"{what}: '{p}' is one of the command's inputs; give another path.")
    if p.is_symlink() or (p.exists() and not p.is_file()):
        raise OutputError(f"{what}: '{p}' exists and is not a regular file; give another path.")
    if not p.absolute().parent.is_dir():
        raise OutputError(f"{what}: the folder of '{p}' does not exist; create it first or give "
                          "another path.")
    if p.exists() and not _safely(ours, p):
        raise OutputError(f"{what}: '{p}' exists and is not {kind}; qloom replaces only its own "
                          "kind of output file. Give another path, or remove the file yourself.")
    return p


def _safely(ours, p):
    try:
        return bool(ours(p))
    except (OSError, ValueError, UnicodeDecodeError):
        return False


def write_file(path, what, write, *, kind, suffix, ours, protect=()):
    """Write a file through ``write(tmp_path)`` into a sibling, then rename it over ``path``."""
    p = check_file(path, what, kind=kind, suffix=suffix, ours=ours, protect=protect)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{p.name}.qloom-tmp-", suffix=suffix,
                                    dir=p.absolute().parent)
        os.close(fd)
    except OSError as e:
        raise OutputError(f"{what}: cannot write in the folder of '{p}' ({_describe(e)}); give a "
                          "folder you can write in.") from None
    try:
        write(Path(name))
        os.replace(name, p)
    except OSError as e:
        raise OutputError(f"{what}: cannot write '{p}' ({_describe(e)}); give a path you can "
                          "write.") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
    return p
