"""Launchers: how a study's workers are started.

Every launcher runs workers that share one RDB study and one budget:

* ``local`` (:class:`LocalLauncher`): one worker in this process;
* ``ray`` (:class:`RayLauncher`): N Ray tasks, each running the study's worker loop;
* ``ray-tune`` (:class:`TuneLauncher`): Ray Tune trials sampled by Optuna's ``OptunaSearch``.

Each launcher class is thin; the Ray mechanics are in the private modules ``_ray_core``
(imports Ray inside functions) and ``_tune_core`` (imports Ray at the top, loaded only when a
Tune study runs). Importing this package never imports Ray.

:func:`losstune.studies.api.run_study` builds one :class:`LaunchRequest` per run and calls
``prepare(request)`` (before the study is created), ``launch(request)`` and ``close()``.
"""

from __future__ import annotations

from collections.abc import Callable

from losstune.studies.launchers.base import Launcher, LauncherError, LaunchRequest, WorkerResult
from losstune.studies.launchers.local import LocalLauncher
from losstune.studies.launchers.ray import RayLauncher
from losstune.studies.launchers.tune import TuneLauncher

LAUNCHERS: dict[str, Callable[[], Launcher]] = {
    "local": LocalLauncher,
    "ray": RayLauncher,
    "ray-tune": TuneLauncher,
}


def get_launcher(name: str) -> Launcher:
    """A new launcher of that name (``local``, ``ray`` or ``ray-tune``)."""
    if name not in LAUNCHERS:
        raise LauncherError(f"unknown launcher {name!r}; expected one of {sorted(LAUNCHERS)}")
    return LAUNCHERS[name]()


__all__ = [
    "LAUNCHERS",
    "LaunchRequest",
    "Launcher",
    "LauncherError",
    "LocalLauncher",
    "RayLauncher",
    "TuneLauncher",
    "WorkerResult",
    "get_launcher",
]
