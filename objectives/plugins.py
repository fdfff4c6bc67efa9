"""Plugins: losses, models and datasets from installed packages (entry points) or study files.

Entry-point groups: ``losstune.losses``, ``losstune.models``, ``losstune.datasets``. Each entry
point names a module; importing it registers its parts (``register_loss`` and friends).
"""

from __future__ import annotations

import importlib
import logging
import threading
from importlib.metadata import entry_points

logger = logging.getLogger(__name__)

GROUPS = ("losstune.losses", "losstune.models", "losstune.datasets")
_loaded = False
_lock = threading.RLock()


class PluginError(RuntimeError):
    """A plugin could not be imported or registered."""


def load_entry_point_plugins() -> None:
    """Import every module named by an installed ``losstune.*`` entry point (once per process)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        _loaded = True
        for group in GROUPS:
            for ep in entry_points(group=group):
                try:
                    ep.load()
                except Exception as exc:  # noqa: BLE001 - reported with the plugin's name
                    _loaded = False
                    raise PluginError(
                        f"plugin {ep.name!r} (entry point {ep.value!r} in group {group!r}) "
                        f"failed to import: {type(exc).__name__}: {exc}"
                    ) from exc


def import_plugin_modules(modules: list[str]) -> None:
    """Import the modules a study file lists under ``plugins:``."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001
            raise PluginError(
                f"plugin module {module!r} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
