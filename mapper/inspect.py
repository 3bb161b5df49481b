"""``qloom inspect``: the QGraph as a table, one row per layer with its requantization plan
(planning.plans, partial: layers over the bounds are marked not proven)."""
from dataclasses import dataclass

from . import limits, qgraph as qg
from .planning import plans
from .requant import signed_bits


@dataclass(frozen=True)
class LayerRow:
    layer: str
    onnx_node: str
    op: str
    in_shape: tuple
    out_shape: tuple
    bits: str
    acc_range: str
    acc_bits: str
    requant: str
    macs: int


def rows(graph, requant_plans=None):
    requant_plans = plans(graph, partial=True) if requant_plans is None else requant_plans
    out = []
    for node in graph.nodes:
        in_shape = graph.shapes.get(node.inputs[0], ()) if node.inputs else ()
        out_shape = graph.shapes.get(node.output, ())
        if isinstance(node, (qg.Dense, qg.Conv)):
            consumer = graph.consumers(node.output)[0]
            p = requant_plans[consumer.name]
            wbits = signed_bits(node.weight.min(initial=0), node.weight.max(initial=0))
            tables = f" + {len(p.impl.tables)} table" if getattr(p.impl, "tables", ()) else ""
            op = "Dense" if isinstance(node, qg.Dense) else (
                f"Conv {'×'.join(map(str, node.kernel))}/{node.strides[0]}" +
                (" depthwise" if node.groups > 1 and node.groups == node.in_shape[0] else
                 f" g{node.groups}" if node.groups > 1 else ""))
            out.append(LayerRow(node.name, node.onnx_node, op, in_shape, out_shape,
                                f"x{_code_bits(graph, node.inputs[0])} w{wbits} → {consumer.code.name}",
                                f"[{int(p.acc_lo.min())}, {int(p.acc_hi.max())}]", str(p.acc_bits),
                                p.kind + tables, node.macs))
        elif isinstance(node, qg.Quantize):
            out.append(LayerRow(node.name, node.onnx_node, "Quantize (host)", in_shape, node.shape,
                                f"f32 → {node.code.name}", "", "", f"scale {node.scale:.6g}, zp {node.zero_point}", 0))
        elif isinstance(node, qg.Dequantize):
            out.append(LayerRow(node.name, node.onnx_node, "Dequantize (host)", in_shape, out_shape,
                                "→ f32", "", "", f"scale {node.scale:.6g}, zp {node.zero_point}", 0))
        elif isinstance(node, qg.Transpose):
            out.append(LayerRow(node.name, node.onnx_node, f"Transpose {node.perm}", in_shape, out_shape,
                                "", "", "", "", 0))
        elif isinstance(node, qg.Reshape):
            out.append(LayerRow(node.name, node.onnx_node, "Reshape", in_shape, node.shape, "", "", "", "", 0))
        elif isinstance(node, qg.Add):
            p = requant_plans[node.name]
            out.append(LayerRow(node.name, node.onnx_node, "Add (QLinearAdd)", in_shape, out_shape,
                                f"→ {node.code.name}", "", "",
                                f"line (a·{p.mul_a} + b·{p.mul_b} + {p.add}) >> {p.shift}", 0))
        elif isinstance(node, (qg.SumPool, qg.FloatSumPool)):
            consumer = graph.consumers(node.output)[0]
            p = requant_plans[consumer.name]
            op = "GlobalAveragePool" if isinstance(node, qg.SumPool) else \
                f"AveragePool {'×'.join(map(str, node.kernel))}/{node.strides[0]} (float sum)"
            out.append(LayerRow(node.name, node.onnx_node, op, in_shape, out_shape,
                                f"→ {consumer.code.name}", f"[{int(p.acc_lo.min())}, {int(p.acc_hi.max())}]",
                                str(p.acc_bits), p.kind, 0))
        elif isinstance(node, qg.Concat):
            out.append(LayerRow(node.name, node.onnx_node, "Concat (QLinearConcat)", in_shape, out_shape,
                                f"→ {node.code.name}", "", "",
                                "tables: " + ", ".join("copy" if t is None else "requantize" for t in node.tables), 0))
        elif isinstance(node, qg.MaxPool):
            out.append(LayerRow(node.name, node.onnx_node, f"MaxPool {'×'.join(map(str, node.kernel))}", in_shape,
                                out_shape, "", "", "", "", 0))
    return out


def _code_bits(graph, tensor):
    lo, hi = graph.code_range(tensor)
    return signed_bits(lo, hi) if lo < 0 else max(1, int(hi).bit_length())


def render(graph, title, console):
    from rich.markup import escape
    from rich.table import Table
    table = Table(title=title, show_lines=False)
    for col, justify in (("layer", "left"), ("ONNX node", "left"), ("op", "left"), ("in", "right"),
                         ("out", "right"), ("bits", "left"), ("acc range", "right"), ("acc bits", "right"),
                         ("requant", "left"), ("MACs", "right")):
        table.add_column(col, justify=justify)
    layer_rows = rows(graph)
    for r in layer_rows:
        table.add_row(r.layer, r.onnx_node, r.op, "×".join(map(str, r.in_shape)), "×".join(map(str, r.out_shape)),
                      r.bits, r.acc_range, r.acc_bits, r.requant, f"{r.macs:,}" if r.macs else "")
    dense = [r for r in layer_rows if r.op == "Dense" or r.op.startswith("Conv")]
    kinds = {}
    for r in dense:
        kinds[r.requant] = kinds.get(r.requant, 0) + 1
    weights = sum(n.weight.size for n in graph.layers(qg.Dense) + graph.layers(qg.Conv))
    table.caption = (f"{len(dense)} dense/conv layers · {sum(r.macs for r in dense):,} MACs per frame · "
                     f"{weights:,} weights · requant: " + ", ".join(f"{k} ×{v}" for k, v in sorted(kinds.items())))
    console.print(table)
    for note in graph.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for error in limits.violations(graph):
        console.print(f"[yellow]note:[/yellow] qloom compile refuses this model: {escape(str(error))}")
    return layer_rows
