"""The layers of the package import one way, down: cli -> webmap -> pipeline -> report -> io/aoi -> core.

Imports are read with ``ast`` from every module under ``src/sitewatch`` (those inside
functions too); imports under ``if TYPE_CHECKING:`` are for type hints only and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sitewatch"

# higher imports lower, never the other way; modules of one layer may import each other
LAYERS = {
    "cli": 5,
    "webmap": 4,
    "pipeline": 3,
    "report": 2,
    "io": 1,
    "aoi": 1,
    "coreg": 0,
    "radiometry": 0,
    "structures": 0,
    "railcars": 0,
    "synth": 0,
}
# shared by every layer: the package itself (its version), the exception hierarchy and the
# shipped model weights (a data package, read with importlib.resources)
FOUNDATION = {"", "errors", "models"}
CORE = {name for name, rank in LAYERS.items() if rank == 0}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names of the sitewatch modules an import statement reaches."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "sitewatch"]
    if node.level == 0:
        base = node.module or ""
        if base.split(".")[0] != "sitewatch":
            return []
    else:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    out = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        sub = PACKAGE.parent.joinpath(*candidate.split("."))
        out.append(candidate if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists() else base)
    return out


def _layer(module: str) -> str:
    """The layer of a sitewatch module: its first component below the package ("" for the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def import_edges() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every sitewatch import in the package."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text("utf-8"), str(path))
        for node in _runtime_imports(tree):
            for target in _imported(module, path.name == "__init__.py", node):
                edges.append((module, target, node.lineno))
    return edges


def test_every_module_has_a_layer():
    unknown = {_layer(_module_name(p)) for p in PACKAGE.rglob("*.py")} - set(LAYERS) - FOUNDATION
    assert not unknown, f"modules outside the layer list (add them to LAYERS and the README): {sorted(unknown)}"


def test_the_edges_are_found():
    edges = {(a, b) for a, b, _ in import_edges()}
    # one of each kind: relative from a package, relative from a module, absolute
    assert ("sitewatch.cli", "sitewatch.pipeline") in edges
    assert ("sitewatch.pipeline.detect", "sitewatch.structures") in edges
    assert any(a.startswith("sitewatch.structures") and b.startswith("sitewatch.radiometry") for a, b in edges)


def test_the_core_never_imports_io_pipeline_cli_report_or_webmap():
    bad = [
        f"{a} imports {b} (line {n})"
        for a, b, n in import_edges()
        if _layer(a) in CORE and _layer(b) in {"io", "aoi", "pipeline", "cli", "report", "webmap"}
    ]
    assert not bad, bad


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_nothing_imports_upward(layer):
    bad = [
        f"{a} imports {b} (line {n})"
        for a, b, n in import_edges()
        if _layer(a) == layer and _layer(b) not in FOUNDATION and LAYERS[_layer(b)] > LAYERS[layer]
    ]
    assert not bad, bad


def test_the_foundation_imports_no_layer():
    bad = [f"{a} imports {b}" for a, b, _ in import_edges() if _layer(a) in FOUNDATION and _layer(b) in LAYERS]
    assert not bad, bad
