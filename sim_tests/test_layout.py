"""DESIGN.md §1: one namespace, and the import rules between the folders, with relative
imports resolved (``from ..mapper import x`` inside hdl/ is caught like ``import qloom.mapper``)."""
import ast
import subprocess
import sys

from conftest import REPO

PACKAGE = {"qloom": "qloom", "mapper": "qloom.mapper", "hdl": "qloom.hdl", "boards": "qloom.boards",
           "bench": "bench"}
STDLIB = set(sys.stdlib_module_names)

# folder: (third-party tops it may import, qloom packages it may import)
ALLOWED = {
    "mapper": ({"numpy", "onnx", "onnxruntime", "qonnx", "rich"}, {"qloom.mapper"}),
    "hdl": ({"amaranth", "numpy"}, {"qloom.hdl"}),
    "boards": ({"amaranth", "amaranth_boards"}, {"qloom.boards", "qloom.hdl", "qloom"}),
}
# within mapper/: onnx only in the frontend and the oracles' checks, onnxruntime and qonnx in
# their checks
CONFINED = {"onnx": ("mapper/frontend/", "mapper/ort_check.py", "mapper/qonnx_check.py"),
            "onnxruntime": ("mapper/ort_check.py", "mapper/frontend/"),
            "qonnx": ("mapper/qonnx_check.py",)}
BRIDGE = "qloom/lower.py"


def package_of(path):
    rel = path.relative_to(REPO)
    parts = [PACKAGE[rel.parts[0]], *rel.parts[1:-1]]
    if rel.name != "__init__.py":
        parts.append(rel.stem)
    return ".".join(parts)


def resolve(path, module, level):
    """The absolute name an import in ``path`` refers to."""
    if level == 0:
        return module
    base = package_of(path).split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports(path):
    """(absolute module, line) of every import in ``path``; ``from . import x`` names each x."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(path, node.module or "", node.level)
            if node.module is None:
                yield from ((f"{target}.{a.name}", node.lineno) for a in node.names)
            else:
                yield target, node.lineno


def sources(folder):
    return sorted(p for p in (REPO / folder).rglob("*.py") if ".venv" not in p.parts)


def within(module, package):
    return module == package or module.startswith(package + ".")


def test_resolving_relative_imports():
    p = REPO / "hdl" / "mvu.py"
    assert resolve(p, "mapper", 2) == "qloom.mapper" and resolve(p, "util", 1) == "qloom.hdl.util"
    q = REPO / "mapper" / "frontend" / "__init__.py"
    assert (resolve(q, "loading", 1) == "qloom.mapper.frontend.loading"
            and resolve(q, "errors", 2) == "qloom.mapper.errors")


def third_party_ok(rel, top, allowed):
    if top in STDLIB:
        return True
    places = CONFINED.get(top) if rel.startswith("mapper/") else None
    return top in allowed and (places is None or any(rel.startswith(p) for p in places))


def ours_ok(module, ours):
    """``qloom`` in ``ours`` is the public API: qloom's own modules, not its subpackages'."""
    public = module == "qloom" or (module.count(".") >= 1
                                   and module.split(".")[1] not in ("mapper", "hdl", "boards"))
    return any(within(module, p) for p in ours if p != "qloom") or ("qloom" in ours and public)


def test_folders_import_only_what_design_allows():
    bad = []
    for folder, (third_party, ours) in ALLOWED.items():
        for path in sources(folder):
            rel = str(path.relative_to(REPO))
            for module, line in imports(path):
                top = module.split(".")[0]
                ok = (ours_ok(module, ours) if top == "qloom"
                      else third_party_ok(rel, top, third_party))
                if not ok:
                    bad.append(f"{rel}:{line} imports {module}")
    assert bad == []


def test_only_the_lowering_bridges_mapper_and_hdl():
    bridges = []
    for folder in ("qloom", "mapper", "hdl", "boards", "bench"):
        for path in sources(folder):
            found = {m for m, _ in imports(path)}
            if (any(within(m, "qloom.mapper") for m in found)
                    and any(within(m, "qloom.hdl") for m in found)):
                bridges.append(str(path.relative_to(REPO)))
    assert bridges == [BRIDGE]


def test_subpackages_are_not_installed_as_top_level_names(tmp_path):
    for name in ("mapper", "hdl", "boards"):
        r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path,
                           capture_output=True, text=True)
        assert "ModuleNotFoundError" in r.stderr, name
    r = subprocess.run([sys.executable, "-c", "import qloom.mapper, qloom.hdl, qloom.boards"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_package_folder_is_in_the_distribution():
    """pyproject.toml lists its packages: a new subpackage missing there works in the editable
    install the tests use and is absent from a wheel."""
    import tomllib
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {package_of(init) for folder in ("qloom", "mapper", "hdl", "boards")
             for init in sources(folder) if init.name == "__init__.py"}
    assert listed == found
