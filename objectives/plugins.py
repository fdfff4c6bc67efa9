"""Plugins: your own losses, heads, encoders and datasets, from installed packages or study files.

Two ways in, both explicit:

* entry points of installed packages, in the groups ``losstune.losses``, ``losstune.models``,
  ``losstune.encoders`` and ``losstune.datasets``. The entry point's *name* is the plugin's
  identifier and its *value* is the class (a ``BaseLoss``, ``BaseHead`` or ``TextEncoder``
  subclass), a ``DatasetInfo``, or a module that registers its parts when imported. Each
  registry (:mod:`losstune.objectives.registry`) loads its group on its first lookup;
* modules listed under ``plugins:`` in a study file (or a config's ``plugins``), imported by
  name.

Nothing else is ever imported from text found in a configuration. Every plugin declares a short
identifier (``name = "asym_focal"``); that identifier — never an import path — is what study
files, ``loss.name`` and parameter names (``loss.asym_focal.gamma_neg``) use.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from typing import Any

from losstune.objectives.registry import SOURCES, PluginError, PluginSource, Registry

logger = logging.getLogger(__name__)

#: Entry-point group -> the kind of part its entry points provide.
GROUPS = {"losstune.losses": "loss", "losstune.models": "model",
          "losstune.encoders": "encoder", "losstune.datasets": "dataset"}


def registries() -> list[Registry[Any]]:
    """The four registries, in the order their plugins load: losses, heads, encoders, data."""
    from losstune.objectives.data.registry import DATASETS
    from losstune.objectives.encoders import ENCODERS
    from losstune.objectives.losses import LOSSES
    from losstune.objectives.models import MODELS

    return [LOSSES, MODELS, ENCODERS, DATASETS]


def package_of(module: str) -> tuple[str | None, str | None]:
    """(distribution name, version) of the installed package that provides ``module``."""
    top = module.split(".", 1)[0]
    try:
        dists = packages_distributions().get(top) or []
    except Exception:  # noqa: BLE001 - metadata of unrelated packages may be broken
        dists = []
    for dist in dists:
        try:
            return dist, version(dist)
        except PackageNotFoundError:
            continue
    return None, None


def load_entry_point_plugins() -> None:
    """Import and register every installed ``losstune.*`` entry point (once per process).

    Each registry also loads its own group on its first lookup; this loads all of them, for
    listings (``losstune data list``) and exports."""
    for registry in registries():
        registry.load_plugins()


def add_plugin_folder(folder: str | os.PathLike[str]) -> None:
    """Let ``plugins:`` modules be found in ``folder`` (a study file's folder), after the
    installed packages and the working directory."""
    path = os.path.abspath(folder)
    if path not in sys.path:
        sys.path.append(path)


_silent_warned: set[str] = set()


def import_plugin_modules(modules: list[str]) -> None:
    """Import the modules a study file or config lists under ``plugins:``.

    A module imported here for the first time that registers no part is reported (a logged
    warning): a study that names its loss would otherwise fail with an unknown name only."""
    parts = registries()
    load_entry_point_plugins()
    cwd = os.getcwd()
    if modules and cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # a study's own plugin modules beside it (installed ones win)
    for module in modules:
        if not isinstance(module, str) or not all(p.isidentifier() for p in module.split(".")):
            raise PluginError(f"plugin {module!r} is not a module name (write e.g. "
                              "`my_package.my_loss`)")
        before = [set(registry) for registry in parts]
        fresh = module not in sys.modules
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                raise PluginError(f"plugin module {module!r} is not installed or not on the path "
                                  f"(pip install it, or fix the name)") from None
            raise PluginError(f"plugin module {module!r} failed to import: "
                              f"ModuleNotFoundError: {exc}") from exc
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise PluginError(f"plugin module {module!r} raised on import: "
                              f"{type(exc).__name__}: {exc}") from exc
        package, pkg_version = package_of(module)
        source = SOURCES.get(f"module:{module}") or PluginSource(module, package, pkg_version)
        added = 0
        for registry, old in zip(parts, before, strict=True):
            for name in sorted(set(registry) - old):
                source.provides.append(f"{registry.key}:{name}")
                SOURCES[f"{registry.key}:{name}"] = source
                added += 1
        SOURCES[f"module:{module}"] = source
        if fresh and not added and module not in _silent_warned:
            _silent_warned.add(module)
            logger.warning(
                "imported %s but it registered no loss, model, encoder or dataset: a plugin "
                "module registers its parts when imported (register_loss, register_model, "
                "register_encoder, register_dataset from losstune.objectives.extend)", module)


def sources_for(kinds_and_names: list[str]) -> list[dict[str, Any]]:
    """Plugin sources (module, package, version) of the given ``"kind:name"`` parts."""
    seen: dict[str, PluginSource] = {}
    for key in kinds_and_names:
        src = SOURCES.get(key)
        if src is not None:
            seen[src.module] = src
    return [s.to_json() for s in seen.values()]


__all__ = [
    "GROUPS",
    "SOURCES",
    "PluginError",
    "PluginSource",
    "add_plugin_folder",
    "import_plugin_modules",
    "load_entry_point_plugins",
    "package_of",
    "registries",
    "sources_for",
]
