"""The four import packages must resolve to this repository (PyPI has unrelated packages named
``storage`` and ``objectives``)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["objectives", "search_spaces", "storage", "studies"])
def test_package_resolves_inside_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None, f"{name} is a namespace package (missing __init__.py?)"
    assert Path(module.__file__).resolve().is_relative_to(REPO)


def test_cli_import_does_not_pull_torch() -> None:
    import subprocess
    import sys

    code = "import sys, studies.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "studies.cli must import torch lazily (fast --help)"
