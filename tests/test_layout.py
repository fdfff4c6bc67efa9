"""The installed import surface: the four folders install as ``losstune.objectives``,
``losstune.search_spaces``, ``losstune.storage`` and ``losstune.studies``, so that a research
repository's own ``studies/`` or ``storage/`` folder never shadows them."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_study

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("objectives", "search_spaces", "storage", "studies")


@pytest.mark.parametrize("name", FOLDERS)
def test_package_resolves_inside_repository(name: str) -> None:
    module = importlib.import_module(f"losstune.{name}")
    assert module.__file__ is not None, f"{name} is a namespace package (missing __init__.py?)"
    assert Path(module.__file__).resolve().is_relative_to(REPO / name)


def test_every_package_folder_is_installed() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    on_disk = {
        "losstune." + ".".join(init.parent.relative_to(REPO).parts)
        for folder in FOLDERS for init in (REPO / folder).rglob("__init__.py")
    }
    # folders of package data (YAML files, no Python) are listed too, so that setuptools
    # installs them without warning
    on_disk |= {
        "losstune." + ".".join(data.parent.relative_to(REPO).parts)
        for folder in FOLDERS for data in (REPO / folder).rglob("*.yaml")
    }
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages"
    assert listed - on_disk == set(), "these listed packages have no folder"


def _project_modules() -> list[Path]:
    files = [p for folder in FOLDERS for p in (REPO / folder).rglob("*.py")]
    return files + list((REPO / "tests").rglob("*.py")) + list((REPO / "benchmarks").glob("*.py"))


def test_no_module_imports_a_bare_top_level_folder() -> None:
    bad = []
    for path in _project_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names
                    if n.split(".")[0] in FOLDERS]
    assert bad == [], "import these through the losstune namespace"


def test_cli_import_does_not_pull_torch() -> None:
    code = "import sys, losstune.studies.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "the CLI must import torch lazily (fast --help)"


def test_api_and_cli_work_beside_folders_with_the_same_names(tmp_path: Path) -> None:
    """A notebook or shell started in a research repository with its own ``studies/``,
    ``storage/``, ``objectives/`` and ``search_spaces/`` folders (each of which fails loudly
    when imported) still gets losstune's packages, through the API and the CLI."""
    for name in FOLDERS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise ImportError('the user folder {name}/ was imported instead of losstune')\n")
    study = tiny_study(name="beside", n_trials=2)
    (tmp_path / "beside.yaml").write_text(yaml.safe_dump(study))
    env = {**os.environ, "LOSSTUNE_STORAGE": ""}
    env.pop("LOSSTUNE_STORAGE")
    code = (
        "from losstune.studies import api\n"
        "spec, text = api.load_study('beside.yaml')\n"
        "summary = api.run_study(spec, study_text=text, progress=False, n_trials=1)\n"
        "print('finished', summary.finished)\n"
    )
    api_run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert api_run.returncode == 0, api_run.stderr
    assert "finished 1" in api_run.stdout
    cli = [sys.executable, "-m", "losstune.studies.cli"]  # -m puts the folder first on sys.path
    run = subprocess.run([*cli, "run", "beside.yaml", "--no-progress"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "beside: 2/2 finished" in run.stdout
    script = Path(sys.executable).with_name("losstune")
    shown = subprocess.run([str(script), "show", "beside"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "study beside" in shown.stdout
