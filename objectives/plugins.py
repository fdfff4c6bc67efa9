"""Plugins: your own losses, models and datasets, from installed packages or study files.

Two ways in, both explicit:

* entry points of installed packages, in the groups ``losstune.losses``, ``losstune.models`` and
  ``losstune.datasets``. The entry point's *name* is the plugin's identifier and its *value* is
  the class (a ``BaseLoss`` or ``BaseHead`` subclass), a ``DatasetInfo``, or a module that
  registers its parts when imported;
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
import threading
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, entry_points, packages_distributions, version
from typing import Any

from losstune.objectives.errors import LosstuneError

logger = logging.getLogger(__name__)

GROUPS = {"losstune.losses": "loss", "losstune.models": "model", "losstune.datasets": "dataset"}
_loaded = False
_lock = threading.RLock()


class PluginError(LosstuneError, RuntimeError):
    """A plugin could not be imported or registered; the message names the plugin."""


@dataclass
class PluginSource:
    """Where a plugin part came from: its module and, when installed, its package and version."""

    module: str
    package: str | None = None
    version: str | None = None
    provides: list[str] = field(default_factory=list)  # e.g. ["loss:asym_focal"]

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "package": self.package, "version": self.version,
                "provides": sorted(self.provides)}


#: "kind:name" -> source, for every part registered by a plugin in this process.
SOURCES: dict[str, PluginSource] = {}


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


def _register(kind: str, name: str, obj: Any, source: PluginSource) -> None:
    """Register an entry point's object under ``name`` (its declared identifier)."""
    import types

    from losstune.objectives.data.registry import DatasetInfo, register_dataset
    from losstune.objectives.losses import BaseLoss, register_loss
    from losstune.objectives.models import BaseHead, register_model

    if isinstance(obj, types.ModuleType):
        return  # the module registered its parts on import
    if kind == "loss":
        if not (isinstance(obj, type) and issubclass(obj, BaseLoss)):
            raise PluginError(f"loss plugin {name!r} ({source.module}) points to {obj!r}, which "
                              "is not a subclass of losstune.objectives.losses.BaseLoss")
        declared = getattr(obj, "name", "")
    elif kind == "model":
        if not (isinstance(obj, type) and issubclass(obj, BaseHead)):
            raise PluginError(f"model plugin {name!r} ({source.module}) points to {obj!r}, "
                              "which is not a subclass of losstune.objectives.models.BaseHead")
        declared = getattr(obj, "name", "")
    else:
        if not isinstance(obj, DatasetInfo):
            raise PluginError(f"dataset plugin {name!r} ({source.module}) points to {obj!r}, "
                              "which is not an losstune.objectives.data.DatasetInfo")
        declared = obj.name
    if not declared:
        raise PluginError(f"{kind} plugin {name!r} ({source.module}) declares no identifier: set "
                          f"`name = {name!r}` on it")
    if declared != name:
        raise PluginError(f"{kind} plugin entry point {name!r} ({source.module}) loads a part "
                          f"named {declared!r}; the entry point name must equal its `name`")
    try:
        if kind == "loss":
            register_loss(obj)
        elif kind == "model":
            register_model(obj)
        else:
            register_dataset(obj)
    except (ValueError, TypeError) as exc:
        raise PluginError(f"{kind} plugin {name!r} ({source.module}): {exc}") from None
    source.provides.append(f"{kind}:{name}")
    SOURCES[f"{kind}:{name}"] = source


def load_entry_point_plugins() -> None:
    """Import and register every installed ``losstune.*`` entry point (once per process)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        _loaded = True
        try:
            for group, kind in GROUPS.items():
                for ep in entry_points(group=group):
                    module = ep.value.split(":", 1)[0]
                    dist = getattr(ep, "dist", None)
                    source = PluginSource(
                        module=module,
                        package=getattr(dist, "name", None) if dist else None,
                        version=getattr(dist, "version", None) if dist else None,
                    )
                    try:
                        obj = ep.load()
                    except Exception as exc:  # noqa: BLE001 - reported with the plugin's name
                        raise PluginError(
                            f"{kind} plugin {ep.name!r} (entry point {ep.value!r} of "
                            f"{source.package or 'an installed package'}) failed to import: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                    _register(kind, ep.name, obj, source)
        except BaseException:
            _loaded = False
            raise


def import_plugin_modules(modules: list[str]) -> None:
    """Import the modules a study file or config lists under ``plugins:``."""
    from losstune.objectives.data.registry import DATASETS
    from losstune.objectives.losses import LOSSES
    from losstune.objectives.models import MODELS

    load_entry_point_plugins()
    cwd = os.getcwd()
    if modules and cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # a study's own plugin modules beside it (installed ones win)
    for module in modules:
        if not isinstance(module, str) or not all(p.isidentifier() for p in module.split(".")):
            raise PluginError(f"plugin {module!r} is not a module name (write e.g. "
                              "`my_package.my_loss`)")
        before = (set(LOSSES), set(MODELS), set(DATASETS))
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
        for kind, registry, old in (("loss", LOSSES, before[0]), ("model", MODELS, before[1]),
                                    ("dataset", DATASETS, before[2])):
            for name in sorted(set(registry) - old):
                source.provides.append(f"{kind}:{name}")
                SOURCES[f"{kind}:{name}"] = source
        SOURCES[f"module:{module}"] = source


def sources_for(kinds_and_names: list[str]) -> list[dict[str, Any]]:
    """Plugin sources (module, package, version) of the given ``"kind:name"`` parts."""
    seen: dict[str, PluginSource] = {}
    for key in kinds_and_names:
        src = SOURCES.get(key)
        if src is not None:
            seen[src.module] = src
    return [s.to_json() for s in seen.values()]
