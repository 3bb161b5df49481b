"""The Dataflow graph as a table: folding, cycles, latency, estimates, the bottleneck."""
from . import dataflow as df


def render(dataflow, console, title):
    from rich.table import Table
    table = Table(title=title)
    for col, justify in (("kernel", "left"), ("layer", "left"), ("ONNX node", "left"), ("pe×simd", "right"),
                         ("detail", "left"), ("cycles/frame", "right"), ("latency", "right"),
                         ("est. LUT", "right"), ("est. FF", "right"), ("est. RAM bits", "right")):
        table.add_column(col, justify=justify)
    bottleneck = dataflow.bottleneck
    for k in dataflow.all_kernels:
        r = k.resources()
        layer, node, fold, detail = "", "", "", ""
        if isinstance(k, df.MVUKernel):
            layer, node, fold = k.dense.name, k.dense.onnx_node, f"{k.pe}×{k.simd}"
            detail = f"{k.dense.in_features}→{k.dense.out_features}, w{k.weight_bits} acc{k.acc_bits}"
        elif isinstance(k, df.DepthwiseKernel):
            layer, node, fold = k.conv.name, k.conv.onnx_node, f"{k.pe}×1"
            detail = f"depthwise {k.conv.out_channels} ch × {k.taps} taps, w{k.weight_bits} acc{k.acc_bits}"
        elif isinstance(k, df.RequantKernel):
            layer, node, fold, detail = k.node.name, k.node.onnx_node, f"{k.pe}", k.plan.kind + " serial" * k.serial
        elif isinstance(k, df.WidthConverterKernel):
            detail = f"{k.lanes_in}→{k.lanes_out} lanes"
        elif isinstance(k, df.FifoKernel):
            detail = f"depth {k.depth}"
        elif isinstance(k, df.WindowKernel):
            detail = f"{k.what} {'×'.join(map(str, k.kernel))}, line buffer {k.depth} beats"
        elif isinstance(k, df.BranchKernel):
            layer, node, fold = k.join.node.name, k.join.node.onnx_node, f"{k.join.lanes}"
            detail = (f"fork → 2 paths → add, (a·{k.join.plan.mul_a} + b·{k.join.plan.mul_b} + K) >> "
                      f"{k.join.plan.shift}" if isinstance(k.join, df.AddKernel) else
                      f"fork → 2 paths → concat {'+'.join(map(str, k.join.channels))} channels")
        name = f"[bold red]{k.name}[/]" if k is bottleneck else k.name
        table.add_row(name, layer, node, fold, detail, str(k.cycles_per_frame), str(k.latency),
                      f"{r['lut']:,}", f"{r['ff']:,}", f"{r['bram_bits']:,}")
    from .resources import TARGETS, estimate
    per_target = "; ".join(f"{t} {e['lut']:,} LUT, {e['ff']:,} FF, {e['dsp']} DSP, {e['bram']} BRAM"
                           for t, e in ((t, estimate(dataflow, t)) for t in TARGETS))
    table.caption = (f"{dataflow.cycles_per_frame} cycles per frame (bottleneck {bottleneck.name}) · latency "
                     f"{dataflow.latency} cycles{'' if dataflow.latency_exact else ' (model)'} · "
                     f"{dataflow.multipliers} multipliers · estimated: {per_target}")
    console.print(table)
