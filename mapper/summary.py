"""The Dataflow graph as a table: folding, cycles, latency, estimates, the bottleneck."""


def kernel_rows(design_json):
    """One row per kernel of design.json's dataflow (Dataflow.to_json): what the compile
    summary and the report's table show."""
    rows = []
    for k in design_json["kernels"]:
        kind = k["kind"]
        fold, detail = "", ""
        if kind == "MVU":
            fold = f"{k['pe']}×{k['simd']}"
            detail = f"{k['in_features']}→{k['out_features']}, w{k['weight_bits']} acc{k['acc_bits']}"
        elif kind == "Depthwise":
            fold = f"{k['pe']}×1"
            detail = f"depthwise {k['channels']} ch × {k['taps']} taps, w{k['weight_bits']} acc{k['acc_bits']}"
        elif kind == "Requant":
            fold, detail = str(k["pe"]), k["implementation"]
        elif kind == "WidthConverter":
            detail = f"{k['lanes_in']}→{k['lanes_out']} lanes"
        elif kind == "FIFO":
            detail = f"depth {k['depth']}"
        elif kind == "Window":
            detail = f"{k['for']} {'×'.join(map(str, k['kernel']))}, line buffer {k['line_buffer']} beats"
        elif kind == "Add":
            fold, line = str(k["lanes"]), k["line"]
            detail = f"fork → 2 paths → add, (a·{line['mul_a']} + b·{line['mul_b']} + K) >> {line['shift']}"
        elif kind == "Concat":
            fold = str(k["lanes"])
            detail = f"fork → 2 paths ({' and '.join(str(len(p)) for p in k['paths'])} kernels) → concat"
        est = k["estimate"]
        rows.append({"kernel": k["name"], "kind": kind, "layer": k.get("layer", ""), "onnx_node": k.get("onnx_node", ""),
                     "fold": fold, "detail": detail, "cycles_per_frame": k["cycles_per_frame"],
                     "latency": k["latency"], "est_lut": est["lut"], "est_ff": est["ff"], "est_dsp": est["dsp"],
                     "est_ram_bits": est["bram_bits"], "bottleneck": k["name"] == design_json["bottleneck"]})
    return rows


def render(dataflow, console, title):
    from rich.table import Table
    table = Table(title=title)
    for col, justify in (("kernel", "left"), ("layer", "left"), ("ONNX node", "left"), ("pe×simd", "right"),
                         ("detail", "left"), ("cycles/frame", "right"), ("latency", "right"),
                         ("est. LUT", "right"), ("est. FF", "right"), ("est. RAM bits", "right")):
        table.add_column(col, justify=justify)
    for r in kernel_rows(dataflow.to_json()):
        name = f"[bold red]{r['kernel']}[/]" if r["bottleneck"] else r["kernel"]
        table.add_row(name, r["layer"], r["onnx_node"], r["fold"], r["detail"], str(r["cycles_per_frame"]),
                      str(r["latency"]), f"{r['est_lut']:,}", f"{r['est_ff']:,}", f"{r['est_ram_bits']:,}")
    from .resources import TARGETS, estimate
    per_target = "; ".join(f"{t} {e['lut']:,} LUT, {e['ff']:,} FF, {e['dsp']} DSP, {e['bram']} BRAM"
                           for t, e in ((t, estimate(dataflow, t)) for t in TARGETS))
    table.caption = (f"{dataflow.cycles_per_frame} cycles per frame (bottleneck {dataflow.bottleneck.name}) · latency "
                     f"{dataflow.latency} cycles{'' if dataflow.latency_exact else ' (model)'} · "
                     f"{dataflow.multipliers} multipliers · estimated: {per_target}")
    console.print(table)
