"""DESIGN.md §1: one namespace, and the import rules between the folders."""
import ast
import subprocess
import sys

from conftest import REPO

ALLOWED = {
    "mapper": {"numpy", "onnx", "onnxruntime", "rich"},
    "hdl": {"amaranth", "numpy"},
    "boards": {"amaranth", "amaranth_boards", "qloom"},
}
STDLIB = set(sys.stdlib_module_names)


def imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((a.name, 0) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def test_folders_import_only_what_design_allows():
    bad = []
    for folder, allowed in ALLOWED.items():
        for path in (REPO / folder).rglob("*.py"):
            for module, level in imports(path):
                top = module.split(".")[0]
                if level > 0 or top in STDLIB or top in allowed:
                    continue
                if top == "qloom" and folder == "boards":
                    continue
                bad.append(f"{path.relative_to(REPO)} imports {module}")
    assert bad == []


def test_only_the_lowering_bridges_mapper_and_hdl():
    bridges = [p.relative_to(REPO) for p in REPO.rglob("*.py") if ".venv" not in p.parts
               and any(m.startswith("qloom.hdl") or (m.startswith("hdl") and p.parent.name == "mapper")
                       for m, _ in imports(p)) and p.parent.name == "mapper"]
    assert len(bridges) <= 1, bridges


def test_subpackages_are_not_installed_as_top_level_names(tmp_path):
    for name in ("mapper", "hdl", "boards"):
        r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True)
        assert "ModuleNotFoundError" in r.stderr, name
    r = subprocess.run([sys.executable, "-c", "import qloom.mapper, qloom.hdl, qloom.boards"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
