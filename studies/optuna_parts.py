"""Optuna samplers and pruners by study-file name, with their arguments checked."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from losstune.objectives.registry import did_you_mean, unknown_name_message

T = TypeVar("T")


def _samplers() -> dict[str, Callable[..., Any]]:
    import optuna

    s = optuna.samplers
    return {
        "tpe": s.TPESampler,
        "random": s.RandomSampler,
        "gp": s.GPSampler,
        "qmc": s.QMCSampler,
        "nsga2": s.NSGAIISampler,
        "nsga3": s.NSGAIIISampler,
        "cmaes": s.CmaEsSampler,
        "bruteforce": s.BruteForceSampler,
    }


def _pruners() -> dict[str, Callable[..., Any]]:
    import optuna

    p = optuna.pruners
    return {
        "median": p.MedianPruner,
        "percentile": p.PercentilePruner,
        "successive_halving": p.SuccessiveHalvingPruner,
        "hyperband": p.HyperbandPruner,
        "threshold": p.ThresholdPruner,
        "patient": p.PatientPruner,
        "none": p.NopPruner,
    }


#: Defaults losstune applies unless the study file sets them.
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    # group=True decomposes conditional spaces (a loss's knobs exist only with that loss).
    "tpe": {"multivariate": True, "group": True, "n_startup_trials": 5},
}
PRUNER_DEFAULTS: dict[str, dict[str, Any]] = {
    "median": {"n_startup_trials": 5, "n_warmup_steps": 2},
}
MULTI_OBJECTIVE_SAMPLERS = frozenset({"tpe", "random", "nsga2", "nsga3", "gp", "qmc",
                                      "bruteforce"})


def _check_args(kind: str, name: str, factory: Callable[..., Any], args: Mapping[str, Any],
                reserved: set[str]) -> None:
    params = inspect.signature(factory).parameters
    valid = sorted(n for n in params if n not in ("self", "kwargs", "args") and n not in reserved)
    for key in args:
        if key in reserved:
            raise ValueError(f"{kind}.args.{key}: set by losstune (from the study's seed); "
                             "remove it from the study file")
        if key not in params:
            hint = did_you_mean(key, valid)
            raise ValueError(
                f"{kind}.args: {name} takes no argument {key!r}.{hint} Valid: {', '.join(valid)}"
            )
        expected = _simple_types(params[key].annotation)
        if expected and not _matches(args[key], expected):
            raise ValueError(f"{kind}.args.{key}: {name} expects {' or '.join(expected)}, but "
                             f"got {args[key]!r}")


_SIMPLE = {"int", "float", "bool", "str", "None"}


def _simple_types(annotation: Any) -> list[str]:
    """The type names of an annotation made only of int/float/bool/str/None (else [])."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    names = [part.strip() for part in str(text).split("|")]
    return names if names and all(n in _SIMPLE for n in names) else []


def _matches(value: Any, names: list[str]) -> bool:
    checks = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "None": lambda v: v is None,
    }
    return any(checks[n](value) for n in names)


def check_sampler(name: str, args: Mapping[str, Any], *, multi: bool) -> None:
    samplers = _samplers()
    if name not in samplers:
        raise ValueError(unknown_name_message("sampler", name, samplers, path="sampler.name"))
    if multi and name not in MULTI_OBJECTIVE_SAMPLERS:
        raise ValueError(f"sampler.name: {name!r} cannot optimise several metrics; use one of "
                         f"{sorted(MULTI_OBJECTIVE_SAMPLERS)}")
    _check_args("sampler", name, samplers[name], args, {"seed"})
    if name == "cmaes":
        import importlib.util

        if importlib.util.find_spec("cmaes") is None:
            raise ValueError("sampler.name: 'cmaes' needs the 'cmaes' package "
                             "(pip install cmaes); or use 'tpe'")


def check_pruner(name: str, args: Mapping[str, Any]) -> None:
    pruners = _pruners()
    if name not in pruners:
        raise ValueError(unknown_name_message("pruner", name, pruners, path="pruner.name"))
    _check_args("pruner", name, pruners[name], args, set())
    if name in ("patient", "threshold") and not args:
        required = [n for n, p in inspect.signature(pruners[name]).parameters.items()
                    if p.default is inspect.Parameter.empty and n not in ("self",)]
        if required:
            raise ValueError(f"pruner.args: {name} needs argument(s) {required}")


def make_sampler(name: str, args: Mapping[str, Any], seed: int, *, multi: bool = False) -> Any:
    factory = _samplers()[name]
    kwargs = {**SAMPLER_DEFAULTS.get(name, {}), **dict(args)}
    if multi and name == "tpe":
        kwargs.pop("group", None)
    if "seed" in inspect.signature(factory).parameters:
        kwargs["seed"] = seed
    from losstune.storage import quiet_experimental

    with quiet_experimental():
        return factory(**kwargs)


def make_pruner(name: str, args: Mapping[str, Any]) -> Any:
    kwargs = {**PRUNER_DEFAULTS.get(name, {}), **dict(args)}
    if name == "patient" and "wrapped_pruner" not in kwargs:
        kwargs["wrapped_pruner"] = None
    return _pruners()[name](**kwargs)


def best_first(items: Iterable[T], value_of: Callable[[T], float | None],
               direction: str) -> list[T]:
    """``items`` sorted best first for ``direction`` ("maximize"/"minimize", any case);
    missing or NaN values go last."""
    sign = -1.0 if direction.lower() == "maximize" else 1.0

    def key(item: T) -> float:
        value = value_of(item)
        if value is None or math.isnan(value):
            return math.inf
        return sign * value

    return sorted(items, key=key)
