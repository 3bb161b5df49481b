"""The Dataflow graph as a table: folding, cycles, latency, estimates, the bottleneck."""
from .kernels import Join, Kernel


def _classes(base):
    for c in base.__subclasses__():
        yield c
        yield from _classes(c)


# design.json kind: (fold, detail) of its row (Kernel.summary, Join.summary for a branch)
SUMMARY = {c.kind: c.summary for base in (Kernel, Join) for c in _classes(base)
           if isinstance(c.kind, str) and c.kind}


def kernel_rows(design_json):
    """One row per kernel of design.json's dataflow (Dataflow.to_json): what the compile
    summary and the report's table show."""
    rows = []
    for k in design_json["kernels"]:
        kind = k["kind"]
        fold, detail = SUMMARY[kind](k) if kind in SUMMARY else ("", "")
        est = k["estimate"]
        rows.append({"kernel": k["name"], "kind": kind, "layer": k.get("layer", ""),
                     "onnx_node": k.get("onnx_node", ""), "fold": fold, "detail": detail,
                     "cycles_per_frame": k["cycles_per_frame"], "latency": k["latency"],
                     "est_lut": est["lut"], "est_ff": est["ff"], "est_dsp": est["dsp"],
                     "est_ram_bits": est["bram_bits"],
                     "bottleneck": k["name"] == design_json["bottleneck"]})
    return rows


COLUMNS = (("kernel", "left"), ("layer", "left"), ("ONNX node", "left"), ("pe×simd", "right"),
           ("detail", "left"), ("cycles/frame", "right"), ("latency", "right"),
           ("est. LUT", "right"), ("est. FF", "right"), ("est. RAM bits", "right"))


def render(dataflow, console, title):
    """The table of kernel_rows on ``console``, its caption the totals and each target's
    estimate."""
    from rich.table import Table
    table = Table(title=title)
    for col, justify in COLUMNS:
        table.add_column(col, justify=justify)
    for r in kernel_rows(dataflow.to_json()):
        name = f"[bold red]{r['kernel']}[/]" if r["bottleneck"] else r["kernel"]
        table.add_row(name, r["layer"], r["onnx_node"], r["fold"], r["detail"],
                      str(r["cycles_per_frame"]), str(r["latency"]), f"{r['est_lut']:,}",
                      f"{r['est_ff']:,}", f"{r['est_ram_bits']:,}")
    from .resources import TARGETS, estimate
    estimates = ((t, estimate(dataflow, t)) for t in TARGETS)
    per_target = "; ".join(f"{t} {e['lut']:,} LUT, {e['ff']:,} FF, {e['dsp']} DSP, "
                           f"{e['bram']} BRAM" for t, e in estimates)
    model = "" if dataflow.latency_exact else " (model)"
    table.caption = (f"{dataflow.cycles_per_frame} cycles per frame (bottleneck "
                     f"{dataflow.bottleneck.name}) · latency {dataflow.latency} cycles{model} · "
                     f"{dataflow.multipliers} multipliers · estimated: {per_target}")
    console.print(table)
