"""``qloom inspect``: the QGraph as a table, one row per layer with its requantization plan
(planning.plans, partial: layers over the bounds are marked not proven)."""
from dataclasses import dataclass

from . import limits, qgraph as qg
from .planning import plans
from .numeric import signed_bits


@dataclass(frozen=True)
class LayerRow:
    """One row of the table, as text (shapes as tuples, MACs per frame as a number)."""
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
    """One LayerRow per node the table shows (a Requant is shown in the layer before it), with
    ``requant_plans`` or else planning.plans(graph, partial=True)."""
    requant_plans = plans(graph, partial=True) if requant_plans is None else requant_plans
    out = []
    for node in graph.nodes:
        fields = _computing(graph, node, requant_plans) or _moving(node)
        if fields is None:
            continue
        in_shape = graph.shapes.get(node.inputs[0], ()) if node.inputs else ()
        out_shape = node.shape if isinstance(node, (qg.Quantize, qg.Reshape)) else \
            graph.shapes.get(node.output, ())
        out.append(LayerRow(node.name, node.onnx_node, fields[0], in_shape, out_shape, *fields[1:]))
    return out


def _computing(graph, node, requant_plans):
    """(op, bits, acc range, acc bits, requant, MACs) of a layer with a plan, or None."""
    if isinstance(node, qg.Add):
        p = requant_plans[node.name]
        return ("Add (QLinearAdd)", f"→ {node.code.name}", "", "",
                f"line (a·{p.mul_a} + b·{p.mul_b} + {p.add}) >> {p.shift}", 0)
    if not isinstance(node, (qg.Dense, qg.Conv, qg.SumPool, qg.FloatSumPool)):
        return None
    consumer = graph.consumers(node.output)[0]
    p = requant_plans[consumer.name]
    acc = (f"[{int(p.acc_lo.min())}, {int(p.acc_hi.max())}]", str(p.acc_bits))
    if isinstance(node, (qg.SumPool, qg.FloatSumPool)):
        op = "GlobalAveragePool" if isinstance(node, qg.SumPool) else \
            f"AveragePool {'×'.join(map(str, node.kernel))}/{node.strides[0]} (float sum)"
        return (op, f"→ {consumer.code.name}", *acc, p.kind, 0)
    wbits = signed_bits(node.weight.min(initial=0), node.weight.max(initial=0))
    tables = f" + {len(p.impl.tables)} table" if getattr(p.impl, "tables", ()) else ""
    op = "Dense" if isinstance(node, qg.Dense) else (
        f"Conv {'×'.join(map(str, node.kernel))}/{node.strides[0]}" +
        (" depthwise" if node.groups > 1 and node.groups == node.in_shape[0] else
         f" g{node.groups}" if node.groups > 1 else ""))
    bits = f"x{_code_bits(graph, node.inputs[0])} w{wbits} → {consumer.code.name}"
    return (op, bits, *acc, p.kind + tables, node.macs)


def _moving(node):
    """(op, bits, acc range, acc bits, requant, MACs) of a node without a plan, or None."""
    if isinstance(node, qg.Quantize):
        return ("Quantize (host)", f"f32 → {node.code.name}", "", "",
                f"scale {node.scale:.6g}, zp {node.zero_point}", 0)
    if isinstance(node, qg.Dequantize):
        return ("Dequantize (host)", "→ f32", "", "",
                f"scale {node.scale:.6g}, zp {node.zero_point}", 0)
    if isinstance(node, qg.Concat):
        tables = ", ".join("copy" if t is None else "requantize" for t in node.tables)
        return ("Concat (QLinearConcat)", f"→ {node.code.name}", "", "", "tables: " + tables, 0)
    op = f"Transpose {node.perm}" if isinstance(node, qg.Transpose) else \
        "Reshape" if isinstance(node, qg.Reshape) else \
        f"MaxPool {'×'.join(map(str, node.kernel))}" if isinstance(node, qg.MaxPool) else None
    return None if op is None else (op, "", "", "", "", 0)


def _code_bits(graph, tensor):
    lo, hi = graph.code_range(tensor)
    return signed_bits(lo, hi) if lo < 0 else max(1, int(hi).bit_length())


def render(graph, title, console):
    from rich.markup import escape
    from rich.table import Table
    table = Table(title=title, show_lines=False)
    for col, justify in (("layer", "left"), ("ONNX node", "left"), ("op", "left"), ("in", "right"),
                         ("out", "right"), ("bits", "left"), ("acc range", "right"),
                         ("acc bits", "right"),
                         ("requant", "left"), ("MACs", "right")):
        table.add_column(col, justify=justify)
    layer_rows = rows(graph)
    for r in layer_rows:
        table.add_row(r.layer, r.onnx_node, r.op, "×".join(map(str, r.in_shape)),
                      "×".join(map(str, r.out_shape)),
                      r.bits, r.acc_range, r.acc_bits, r.requant, f"{r.macs:,}" if r.macs else "")
    dense = [r for r in layer_rows if r.op == "Dense" or r.op.startswith("Conv")]
    kinds = {}
    for r in dense:
        kinds[r.requant] = kinds.get(r.requant, 0) + 1
    weights = sum(n.weight.size for n in graph.layers(qg.Dense) + graph.layers(qg.Conv))
    table.caption = (f"{len(dense)} dense/conv layers · {sum(r.macs for r in dense):,} MACs per "
                     f"frame · {weights:,} weights · requant: "
                     "" + ", ".join(f"{k} ×{v}" for k, v in sorted(kinds.items())))
    console.print(table)
    for note in graph.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for error in limits.violations(graph):
        console.print("[yellow]note:[/yellow] qloom compile refuses this model: "
                      f"{escape(str(error))}")
    return layer_rows
