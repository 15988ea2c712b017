"""hsam_core's import structure, read from the source (every import, also those inside a
function): no cycle, and no module imports from a layer above its own."""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hsam_core"

# Lowest first. A module may import from its own layer and the layers below it.
LAYERS = (
    # the library people copy: optimizer, hybrids, data, training, and what they stand on
    {"sam", "hybrid", "data", "metrics", "regularizers", "ensemble", "train"}
    | {"settings", "runtime", "plotting"},
    # what a run is: experiments, the θ-free rule, the tasks and their references
    {"experiments", "select", "identifiability", "chambers", "references", "systems"},
    # the book's studies, the store, the sweep that fills it and the chapters' re-execution
    {"studies", "store", "sweep", "reproduce"},
    # what reads the store: tables and figures, the benchmark, the command line, the package
    {"report", "results", "figures", "bench", "__main__", "__init__"},
)


def _module(path: Path) -> str:
    """``systems/pendulum.py`` → ``systems.pendulum``; ``systems/__init__.py`` → ``systems``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for level, names in enumerate(LAYERS):
        if top in names:
            return level
    raise AssertionError(f"module {module} is in no layer of tests/test_imports.py: add it")


def imports() -> dict[str, set[str]]:
    """Every hsam_core module and the hsam_core modules it imports (package-relative names;
    ``__init__`` for the package itself)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
        if name == "__init__":
            package = []
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    targets.add(".".join(base + node.module.split(".")))
                else:  # from . import x: a module if there is one, else a package member
                    for alias in node.names:
                        full = ".".join(base + [alias.name])
                        targets.add(full if full in modules else ".".join(base) or "__init__")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hsam_core"):
                targets.add(node.module.removeprefix("hsam_core").lstrip(".") or "__init__")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("hsam_core"):
                        targets.add(alias.name.removeprefix("hsam_core").lstrip(".") or "__init__")
        graph[name] = {t for t in targets if t != name}
    return graph


def test_every_import_names_a_module_of_the_package():
    graph = imports()
    unknown = {(m, t) for m, targets in graph.items() for t in targets if t not in graph}
    assert not unknown


def test_no_module_imports_from_a_layer_above_its_own():
    graph = imports()
    upward = sorted(
        (m, t) for m, targets in graph.items() for t in targets if _layer(t) > _layer(m)
    )
    assert upward == []


def test_the_imports_have_no_cycle():
    graph, done, path = imports(), set(), []

    def visit(module: str) -> None:
        if module in path:
            raise AssertionError(f"import cycle: {' -> '.join(path[path.index(module) :])}")
        if module in done:
            return
        path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_sam_depends_on_torch_alone():
    """``sam.py`` is copied into other projects: it imports torch and the standard library."""
    tree = ast.parse((PACKAGE / "sam.py").read_text())
    roots = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert roots - set(sys.stdlib_module_names) == {"torch"}, roots
