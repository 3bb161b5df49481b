"""The compile report: report.json (data) and report.html (the same data as a page that needs
no network: inline SVG and CSS).  The dataflow graph as a picture, a per-kernel table, bar
charts of cycles per frame and estimated LUTs, the bottleneck highlighted, and — after
``qloom synth`` — measured resources and Fmax beside the estimates."""
import html
import json
from pathlib import Path

from .mapper import resources
from .mapper.summary import kernel_rows

COLUMNS = ("kernel", "kind", "layer", "onnx_node", "fold", "detail", "cycles_per_frame", "latency",
           "est_lut", "est_ff", "est_dsp", "est_ram_bits")


def data(design, synth_results=()):
    """Everything the page shows, as plain JSON-able data."""
    info = design.dataflow.to_json()
    measured = []
    for r in synth_results:
        est = resources.estimate(design.dataflow, r.target)
        m = {"lut": r.lut, "ff": r.ff, "dsp": r.dsp, "bram": r.bram}
        measured.append({"target": r.target, "fmax_mhz": round(r.fmax_mhz, 2), "clock_mhz": r.clock_mhz,
                         "measured": m, "estimate": est,
                         "error_percent": {key: resources.error_percent(est[key], m[key]) for key in m}})
    return {"model": design.model, "top": info.get("top", "qloom_top"),
            "cycles_per_frame": info["cycles_per_frame"], "latency_cycles": info["latency_cycles"],
            "bottleneck": info["bottleneck"], "multipliers": info["multipliers"], "estimate": info["estimate"],
            "estimate_by_target": {t: resources.estimate(design.dataflow, t) for t in resources.TARGETS},
            "input": info["input"], "output": info["output"], "folding": info["folding"],
            "kernels": kernel_rows(info), "synthesis": measured}


def write(design, out_dir, synth_results=()):
    report = data(design, synth_results)
    out_dir = Path(out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.html").write_text(render_html(report))
    return report


# ---- the page -------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
tr.bottleneck td { background: #fde8e8; font-weight: bold; }
.summary span { display: inline-block; margin-right: 2em; }
svg text { font: 11px system-ui, sans-serif; }
"""


def _e(x):
    return html.escape(str(x))


def _colour(share):
    """White-to-blue by a share in [0, 1]."""
    level = int(235 - 150 * max(0.0, min(1.0, share)))
    return f"rgb({level},{level + 10 if level < 245 else 245},255)"


def dataflow_svg(rows):
    """Kernels as boxes left to right: height by cycles per frame, colour by estimated LUTs;
    FIFOs drawn as narrow queues on the edges, with their depth."""
    max_cycles = max(r["cycles_per_frame"] for r in rows) or 1
    max_lut = max(r["est_lut"] for r in rows) or 1
    x, parts, height = 10, [], 150
    for r in rows:
        fifo = r["kind"] == "FIFO"
        w = 46 if fifo else 120
        h = 24 if fifo else max(28, int(110 * r["cycles_per_frame"] / max_cycles))
        y = height // 2 - h // 2
        stroke = "#d00" if r["bottleneck"] else "#555"
        sw = 3 if r["bottleneck"] else 1
        label = r["detail"] if fifo else r["kernel"]
        title = (f"{r['kernel']}: {r['cycles_per_frame']} cycles/frame, latency {r['latency']}, "
                 f"est. {r['est_lut']} LUT")
        parts.append(f'<g class="kernel" data-kernel="{_e(r["kernel"])}"><title>{_e(title)}</title>'
                     f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{2 if fifo else 6}" '
                     f'fill="{"#eee" if fifo else _colour(r["est_lut"] / max_lut)}" stroke="{stroke}" '
                     f'stroke-width="{sw}"/>'
                     f'<text x="{x + w / 2}" y="{height // 2 + 4}" text-anchor="middle">{_e(label)}</text>')
        if not fifo:
            parts.append(f'<text x="{x + w / 2}" y="{y + h + 13}" text-anchor="middle">'
                         f'{r["cycles_per_frame"]} cyc</text>')
        parts.append("</g>")
        x += w
        parts.append(f'<line x1="{x}" y1="{height // 2}" x2="{x + 18}" y2="{height // 2}" stroke="#555" '
                     f'marker-end="url(#arrow)"/>')
        x += 22
    return (f'<svg id="dataflow" xmlns="http://www.w3.org/2000/svg" width="{x + 10}" height="{height + 10}">'
            '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="6" refY="3" orient="auto">'
            '<path d="M0,0 L6,3 L0,6 z" fill="#555"/></marker></defs>' + "".join(parts) + "</svg>")


def bar_chart(rows, key, title, element_id):
    values = [r[key] for r in rows]
    top = max(values) or 1
    bar_h, label_w, plot_w = 16, 150, 420
    parts = []
    for k, r in enumerate(rows):
        y = 20 + k * (bar_h + 4)
        w = int(plot_w * r[key] / top)
        fill = "#d55" if r["bottleneck"] else "#69c"
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_e(r["kernel"])}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{fill}"/>'
                     f'<text x="{label_w + w + 4}" y="{y + 12}">{r[key]:,}</text>')
    h = 30 + len(rows) * (bar_h + 4)
    return (f'<svg id="{element_id}" xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 80}" '
            f'height="{h}"><text x="0" y="12" font-weight="bold">{_e(title)}</text>' + "".join(parts) + "</svg>")


def _table(headers, rows, left=(), row_class=None, element_id=None):
    ident = f' id="{element_id}"' if element_id else ""
    head = "".join(f'<th class="{"l" if h in left else ""}">{_e(h)}</th>' for h in headers)
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{row_class(k)}"' if row_class and row_class(k) else ""
        body.append(f"<tr{cls}>" + "".join(
            f'<td class="{"l" if h in left else ""}">{_e(f"{v:,}" if isinstance(v, int) else v)}</td>'
            for h, v in zip(headers, row)) + "</tr>")
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(report):
    rows = report["kernels"]
    est = report["estimate"]
    summary = (f'<p class="summary"><span><b>{report["cycles_per_frame"]:,}</b> cycles per frame '
               f'(bottleneck <b>{_e(report["bottleneck"])}</b>)</span><span>latency <b>'
               f'{report["latency_cycles"]:,}</b> cycles</span><span><b>{report["multipliers"]}</b> multipliers</span>'
               f'<span>estimated {est["lut"]:,} LUT · {est["ff"]:,} FF · {est["dsp"]} DSP · '
               f'{est["bram_bits"]:,} RAM bits</span></p>')
    table = _table(list(COLUMNS), [[r[c] for c in COLUMNS] for r in rows],
                   left=("kernel", "kind", "layer", "onnx_node", "detail"),
                   row_class=lambda k: "bottleneck" if rows[k]["bottleneck"] else "", element_id="layers")
    targets = _table(["target", "est. LUT", "est. FF", "est. DSP", "est. BRAM"],
                     [[t, e["lut"], e["ff"], e["dsp"], e["bram"]] for t, e in report["estimate_by_target"].items()],
                     left=("target",), element_id="estimates")
    synth = ""
    if report["synthesis"]:
        head = ["target", "Fmax MHz", "clock MHz"]
        for key in ("lut", "ff", "dsp", "bram"):
            head += [f"{key.upper()} measured", "estimated", "error %"]
        body = []
        for s in report["synthesis"]:
            row = [s["target"], s["fmax_mhz"], s["clock_mhz"]]
            for key in ("lut", "ff", "dsp", "bram"):
                err = s["error_percent"][key]
                row += [s["measured"][key], s["estimate"][key], "" if err is None else f"{err:+.1f}"]
            body.append(row)
        synth = ("<h2>Synthesis: measured beside estimated</h2>"
                 "<p>Yosys <code>stat -json</code> and nextpnr <code>--report</code>, inside the byte-wide I/O shell.</p>"
                 + _table(head, body, left=("target",), element_id="synthesis"))
    io = report["input"], report["output"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>qloom report: {_e(report["model"])}</title>
<style>{CSS}</style></head><body>
<h1>qloom report: {_e(report["model"])}</h1>
{summary}
<p>Input: {_e(io[0]["shape"])} codes, {io[0]["lanes"]} per beat, {io[0]["bits"]}-bit
{"signed" if io[0]["signed"] else "unsigned"}. Output: {_e(io[1]["shape"])}, {io[1]["lanes"]} per beat.
Top module <code>{_e(report["top"])}</code>.</p>
<h2>Dataflow</h2>
<p>Boxes: kernels in stream order, height by cycles per frame, darker for more estimated LUTs;
the bottleneck outlined in red; narrow boxes are FIFOs with their depth.</p>
{dataflow_svg(rows)}
<h2>Kernels</h2>
{table}
<h2>Cycles per frame and estimated LUTs</h2>
{bar_chart(rows, "cycles_per_frame", "cycles per frame", "cycles-chart")}
{bar_chart(rows, "est_lut", "estimated LUTs", "lut-chart")}
<h2>Estimates by target</h2>
{targets}
{synth}
</body></html>
"""
