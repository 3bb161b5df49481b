"""``python -m bench fill``: each benchmark model folded to each target's whole budget
(mapper.budget), before any tool runs: the folding the estimator chooses, what binds, the
estimated resources and the modelled cycles.  Every figure here is the estimator's or the
cycle model's, none measured: the time columns are at the clock asked of nextpnr, not at a
measured Fmax (``python -m bench results`` measures).  ``--yosys`` adds Yosys's own counts of
each design (synthesis only, no place and route) beside the estimates, with the error."""
import argparse
import sys
import time

from qloom import compile as qc, synth
from qloom.mapper import budget, resources
from qloom.mapper.errors import QloomError
from qloom.mapper.targets import TARGETS

from .results import anchor, model_list


def rows(quick=False, targets=None, yosys=False, only=None):
    out = []
    for name, model, _ in model_list(quick):
        if only and only not in name:
            continue
        for target in targets or list(TARGETS):
            t = time.time()
            row = {"model": name, "target": target}
            try:
                d = qc.compile_model(model, target=target)
            except budget.DoesNotFit as e:
                row["status"] = f"does not fit (estimated {e.needs})"
                out.append(row)
                continue
            except QloomError as e:
                row["status"] = str(e).splitlines()[0][:120]
                out.append(row)
                continue
            f = d.dataflow
            mhz = TARGETS[target]["default_mhz"]
            macs = sum(k.macs for k in f.all_kernels)
            row.update(status="ok", multipliers=f.multipliers, cycles=f.cycles_per_frame, latency=f.latency,
                       estimate=d.fit.estimate, binds=", ".join(budget.NAMES[k] for k, _, _ in d.fit.binds) or
                       f"none ({f.bottleneck.name} sets the pace)", mhz=mhz,
                       latency_us=f.latency / mhz, per_inference_us=f.cycles_per_frame / mhz,
                       mac_utilization=macs / f.cycles_per_frame / max(f.multipliers, 1),
                       bound=-(-macs // max(f.multipliers, 1)), fit_s=time.time() - t)
            if yosys:
                t = time.time()
                row["yosys"] = synth.yosys_counts(d, target)
                row["yosys_s"] = time.time() - t
            out.append(row)
            print(f"{name} on {target}: {row['status']} ({time.time() - t:.0f} s)"
                  + (f" estimate {row['estimate']} Yosys {row['yosys']}" if "yosys" in row else ""),
                  file=sys.stderr, flush=True)
    return out


def markdown(rows):
    lines = ["| model | target | mult. | LUT est. | FF est. | DSP est. | BRAM est. | binds | cycles/inf "
             "| ⌈MACs/mult.⌉ | MAC util. | latency cycles | µs/inf at clock | latency µs at clock |",
             "|" + "---|" * 14]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {r['target']} | {r['status']} |" + " |" * 11)
            continue
        e, avail = r["estimate"], TARGETS[r["target"]]["available"]
        lines.append(f"| {r['model']} | {r['target']} | {r['multipliers']} | {e['lut']:,} / {avail['lut']:,} | "
                     f"{e['ff']:,} | {e['dsp']} / {avail['dsp']} | {e['bram']} / {avail['bram']} | {r['binds']} | "
                     f"{r['cycles']:,} | {r['bound']:,} | {r['mac_utilization']:.2f} | {r['latency']:,} | "
                     f"{r['per_inference_us']:,.1f} at {r['mhz']} MHz | {r['latency_us']:,.1f} |")
    measured = [r for r in rows if "yosys" in r]
    if measured:
        lines += ["", "Yosys (synthesis only, inside the I/O shell) against the estimate; error = (estimated − "
                  "Yosys) / Yosys:", "",
                  "| model | target | LUT est. | Yosys | error | FF est. | Yosys | error | DSP est. | Yosys "
                  "| BRAM est. | Yosys | error | Yosys s |", "|" + "---|" * 14]
        for r in measured:
            e, y = r["estimate"], r["yosys"]
            err = {k: resources.error_percent(e[k], y[k]) for k in e}
            pct = {k: "—" if v is None else f"{v:+.1f} %" for k, v in err.items()}
            lines.append(f"| {r['model']} | {r['target']} | {e['lut']:,} | {y['lut']:,} | {pct['lut']} | {e['ff']:,} | "
                         f"{y['ff']:,} | {pct['ff']} | {e['dsp']} | {y['dsp']} | {e['bram']} | {y['bram']} | "
                         f"{pct['bram']} | {r['yosys_s']:.0f} |")
    lines += ["", "| task | anchor | µs | qloom, ECP5-85F, modelled latency at 100 MHz | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        published = anchor(r["model"])
        if published and r["target"] == "ecp5-85k" and r["status"] == "ok":
            lines.append(f"| {r['model']} | {published[0]} | {published[1]:g} | {r['latency_us']:,.1f} | "
                         f"{r['latency_us'] / published[1]:.1f}× |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench fill")
    p.add_argument("--quick", action="store_true", help="the digits QDQ model only")
    p.add_argument("--target", action="append", choices=list(TARGETS), help="only this target (repeatable)")
    p.add_argument("--only", help="only the models whose name contains this")
    p.add_argument("--yosys", action="store_true", help="also synthesize each design with Yosys (minutes each)")
    args = p.parse_args(argv)
    print(markdown(rows(args.quick, args.target, args.yosys, args.only)))
    return 0
