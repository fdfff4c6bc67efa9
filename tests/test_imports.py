"""The import graph of the four packages, read from the source with ``ast``: no import cycles,
one module that imports the public API, and no Ray on the CLI's import path."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_study

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("objectives", "search_spaces", "storage", "studies")


@dataclass
class Module:
    name: str
    path: Path
    #: project modules this module imports (top level, in functions and in classes)
    internal: set[str] = field(default_factory=set)
    #: the same, at the top level only (what importing the module runs)
    internal_top: set[str] = field(default_factory=set)
    #: first names of outside modules imported at the top level (``ray``, ``torch``, ...)
    external_top: set[str] = field(default_factory=set)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["losstune", *parts])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(node: ast.AST, top: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Import statements under ``node``, each with whether it runs when the module is imported
    (not inside a function). ``if TYPE_CHECKING:`` blocks never run and are left out."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, top
        elif isinstance(child, ast.If) and _is_type_checking(child):
            yield from _imports(ast.Module(body=child.orelse, type_ignores=[]), top)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _imports(child, False)
        else:
            yield from _imports(child, top)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _nearest(name: str, known: set[str]) -> str | None:
    """The most specific project module that ``name`` (a module or a module attribute) is in."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def import_graph() -> dict[str, Module]:
    """Every module of the four packages with what it imports. ``from a.b import c`` imports
    ``a.b.c`` when that is a module, else ``a.b``; a package's ``__init__`` is not counted as
    imported by its submodules (the edges are the imports written in the source)."""
    paths = [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]
    modules = {_module_name(p): Module(_module_name(p), p) for p in paths}
    known = set(modules)
    for mod in modules.values():
        tree = ast.parse(mod.path.read_text(encoding="utf-8"))
        is_package = mod.path.name == "__init__.py"
        for node, top in _imports(tree, True):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(mod.name, is_package, node)
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for target in targets:
                found = _nearest(target, known)
                if found is not None and target.startswith("losstune."):
                    if found != mod.name:
                        mod.internal.add(found)
                        if top:
                            mod.internal_top.add(found)
                elif top and not target.startswith("losstune"):
                    mod.external_top.add(target.split(".")[0])
    return modules


def cycles(modules: dict[str, Module], package: str) -> list[list[str]]:
    """Import cycles among the modules of ``losstune.<package>`` (strongly connected
    components of more than one module, by Tarjan's algorithm)."""
    prefix = f"losstune.{package}"
    nodes = sorted(n for n in modules if n == prefix or n.startswith(prefix + "."))
    edges = {n: sorted(t for t in modules[n].internal if t in nodes) for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, Module]:
    return import_graph()


def test_the_graph_sees_function_level_imports(graph: dict[str, Module]) -> None:
    session = graph["losstune.studies.session"]
    assert "losstune.studies.launchers" in session.internal  # imported inside run_study
    assert "losstune.studies.launchers" not in session.internal_top
    tune = graph["losstune.studies.launchers.tune"]
    assert "losstune.studies.launchers._tune_core" in tune.internal
    assert "ray" in graph["losstune.studies.launchers._tune_core"].external_top


# objectives is added when its registries stop importing plugins.py
@pytest.mark.parametrize("package", ["studies", "storage", "search_spaces"])
def test_no_import_cycle_within_a_package(graph: dict[str, Module], package: str) -> None:
    assert cycles(graph, package) == [], f"import cycles in {package}/"


def test_cycle_detection_finds_a_cycle(graph: dict[str, Module]) -> None:
    looped = dict(graph)
    store = graph["losstune.studies.store"]
    looped[store.name] = Module(store.name, store.path, internal={"losstune.studies.api"})
    assert any({"losstune.studies.api", "losstune.studies.store"} <= set(c)
               for c in cycles(looped, "studies"))


def test_only_the_cli_imports_the_public_api(graph: dict[str, Module]) -> None:
    importers = sorted(m.name for m in graph.values()
                       if "losstune.studies.api" in m.internal)
    assert importers == ["losstune.studies.cli"], (
        "import from losstune.studies.store / stats / ... instead of the API module")


def _imported_at_import_time(graph: dict[str, Module], root: str) -> set[str]:
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += graph[name].internal_top
        parts = name.split(".")  # importing a.b.c runs a/__init__ and a/b/__init__ first
        todo += [".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i])
                 in graph]
    return seen


def test_the_cli_module_imports_no_ray(graph: dict[str, Module]) -> None:
    loaded = _imported_at_import_time(graph, "losstune.studies.cli")
    with_ray = sorted(m for m in loaded if "ray" in graph[m].external_top)
    assert with_ray == []
    launchers = [m for m in graph if m.startswith("losstune.studies.launchers")]
    assert [m for m in launchers if "ray" in graph[m].external_top] == [
        "losstune.studies.launchers._tune_core"]


def _ray_after(code: str, cwd: Path) -> str:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print('RAY', 'ray' in sys.modules)"],
                         cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_help_and_a_local_run_never_import_ray(tmp_path: Path) -> None:
    helped = _ray_after(
        "from losstune.studies.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "try:\n    cli(['run', '--help'])\nexcept SystemExit:\n    pass\n", tmp_path)
    assert helped == "RAY False"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_study(name="noray", n_trials=1)))
    ran = _ray_after(
        "from losstune.studies.cli import cli\n"
        "cli(['run', 's.yaml', '--storage', 'sqlite:///s.db', '--no-progress'], "
        "standalone_mode=False)\n", tmp_path)
    assert ran == "RAY False"
