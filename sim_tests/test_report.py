"""report.html / report.json written by every compile: the picture, the per-kernel rows and
the numbers, checked against design.json by parsing the page."""
import json
from html.parser import HTMLParser

import pytest

from test_compile_cli import qloom
from qloom.mapper.targets import NAMES


class Page(HTMLParser):
    """Collects the rows of table#layers, the kernels of svg#dataflow and every external reference."""
    def __init__(self):
        super().__init__()
        self.rows, self.kernels, self.external, self.stack = [], [], [], []
        self.table = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.stack.append(a.get("id"))
        if tag == "table":
            self.table = a.get("id")
        if self.table == "layers" and tag == "tr":
            self.rows.append({"class": a.get("class", ""), "cells": []})
        if self.table == "layers" and tag == "td":
            self.cell = ""
        if tag == "g" and "data-kernel" in a:
            self.kernels.append(a["data-kernel"])
        for key in ("src", "href"):
            if key in a:
                self.external.append(a[key])
        if tag in ("script", "link"):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = None
        if tag == "td" and self.cell is not None:
            self.rows[-1]["cells"].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


@pytest.mark.parametrize("name", ["digits_mlp_qdq.onnx", "digits_mlp_qop.onnx"])
def test_report_matches_design(tmp_path, digits, name):
    out = tmp_path / "out"
    r = qloom("compile", str(digits / name), "-o", str(out), "--max-multipliers", "4")
    assert r.returncode == 0, r.stderr
    design = json.loads((out / "design.json").read_text())
    report = json.loads((out / "report.json").read_text())
    page = Page()
    page.feed((out / "report.html").read_text())
    names = [k["name"] for k in design["kernels"]]
    assert page.kernels == names                                  # every kernel drawn, in stream order
    rows = [r for r in page.rows if r["cells"]]
    assert [r["cells"][0] for r in rows] == names
    for row, kernel in zip(rows, design["kernels"]):
        cells = dict(zip(("kernel", "kind", "layer", "onnx_node", "fold", "detail", "cycles", "latency",
                          "lut", "ff", "dsp", "ram"), row["cells"]))
        assert int(cells["cycles"].replace(",", "")) == kernel["cycles_per_frame"]
        assert int(cells["latency"].replace(",", "")) == kernel["latency"]
        assert int(cells["lut"].replace(",", "")) == kernel["estimate"]["lut"]
        assert int(cells["ram"].replace(",", "")) == kernel["estimate"]["bram_bits"]
        assert ("bottleneck" in row["class"]) == (kernel["name"] == design["bottleneck"])
    assert page.external == []                                    # readable offline
    assert report["cycles_per_frame"] == design["cycles_per_frame"]
    assert report["latency_cycles"] == design["latency_cycles"]
    assert [k["kernel"] for k in report["kernels"]] == names
    assert set(report["estimate_by_target"]) == set(NAMES)
