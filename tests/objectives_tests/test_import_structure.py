"""The import structure of ``losstune.objectives``: no cycles, light leaf modules.

The graph is read from the source (AST), so that imports inside functions count as much as
those at the top of a module: a function-level import that closes a cycle still ties the two
modules together (and hides the tie from a reader).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = "losstune.objectives"
FOLDER = REPO / "objectives"


def _modules() -> dict[str, Path]:
    out = {}
    for path in FOLDER.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(FOLDER).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that ``name`` (a module or an attribute of one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in its body.

    ``import a.b`` and ``from a import b`` (``b`` a module) point to ``a.b``; ``from a import
    x`` (``x`` not a module) points to ``a``. Parent packages that Python initialises on the
    way are not edges of their own.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {_resolve(alias.name, modules) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules:
                        targets.add(f"{base}.{alias.name}")
                    else:
                        targets.add(_resolve(base, modules))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    assert len(graph) > 50
    # plugins.py reaches the registries inside a function only
    assert f"{PACKAGE}.losses" in graph[f"{PACKAGE}.plugins"]


def test_objectives_has_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles (break them with a leaf module):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_a_cycle_would_be_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_leaf_modules_import_no_other_part_of_objectives() -> None:
    graph = import_graph()
    allowed = {f"{PACKAGE}.errors"}
    for leaf in ("registry", "devices", "errors", "_checks", "types"):
        assert graph[f"{PACKAGE}.{leaf}"] <= allowed, (leaf, graph[f"{PACKAGE}.{leaf}"])


def test_registries_do_not_import_plugins() -> None:
    graph = import_graph()
    for module, targets in graph.items():
        if module != f"{PACKAGE}.plugins":
            assert f"{PACKAGE}.plugins" not in targets, module


def _loaded_by(statement: str) -> list[str]:
    """The losstune modules (and torch, if any) a fresh interpreter has after ``statement``."""
    code = (f"import sys\n{statement}\nimport json\n"
            "print(json.dumps(sorted(m for m in sys.modules "
            "if m.startswith('losstune.') or m == 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_one_loss_loads_no_head_loader_or_encoder() -> None:
    loaded = _loaded_by("import losstune.objectives.losses.ce")
    heavy = [m for m in loaded if m.startswith((f"{PACKAGE}.models", f"{PACKAGE}.data",
                                                f"{PACKAGE}.encoders", f"{PACKAGE}.plugins"))]
    assert heavy == [], heavy
    assert f"{PACKAGE}.types" in loaded


def test_leaf_modules_load_light() -> None:
    loaded = _loaded_by(f"import {PACKAGE}.registry, {PACKAGE}.devices")
    assert "torch" not in loaded
    assert set(loaded) <= {"losstune.objectives", f"{PACKAGE}.registry", f"{PACKAGE}.devices",
                           f"{PACKAGE}.errors"}, loaded


def test_the_plugin_surface_offers_every_part_and_its_registration() -> None:
    from losstune.objectives import extend, losses, models
    from losstune.objectives.models import outputs

    # one class per concept, whichever path a plugin used before
    assert extend.Batch is losses.Batch and extend.ModelOutputs is models.ModelOutputs
    assert outputs.ModelOutputs is extend.ModelOutputs and extend.BaseHead is models.BaseHead
    for name in ("BaseLoss", "BaseHead", "TextEncoder", "Batch", "ModelOutputs", "check",
                 "DatasetInfo", "RawDataset", "register_loss", "register_model",
                 "register_encoder", "register_dataset"):
        assert name in extend.__all__ and hasattr(extend, name), name
