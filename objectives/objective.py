"""The Optuna objective: sample a config, train it, record what the dashboard should show.

This is the only module of :mod:`objectives` that knows Optuna. The search space is passed in
(anything with ``sample(trial) -> values`` and ``to_config(values, template) -> TrialConfig``),
so the objective itself never calls ``trial.suggest_*``.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import optuna

from losstune.objectives.config import TrialConfig
from losstune.objectives.training import (
    NonFiniteLossError,
    TrialPrunedSignal,
    TrialResult,
    run_trial,
)


class SpaceLike(Protocol):
    def sample(self, trial: Any) -> dict[str, Any]: ...

    def to_config(self, values: Mapping[str, Any], template: Mapping[str, Any]) -> TrialConfig: ...


class OptunaReporter:
    """Adapts an Optuna trial to :class:`losstune.objectives.training.Reporter`."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def report(self, value: float, step: int) -> None:
        self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.trial.should_prune()


def result_attributes(result: TrialResult) -> dict[str, Any]:
    """User attributes of a trial (conventions §2): scalars, ``curve.*`` lists and the
    ``per_class_f1.val`` / ``per_class_f1.test`` mappings."""
    attrs: dict[str, Any] = {}
    for name, value in result.val.items():
        attrs[f"metric.val.{name}"] = _finite(value)
    for name, value in result.test.items():
        attrs[f"metric.test.{name}"] = _finite(value)
    for name, value in result.terms.items():
        attrs[f"term.{name}"] = _finite(value)
    for name, values in result.curves.items():
        attrs[f"curve.{name}"] = [_finite(v) for v in values]
    # Per-class F1 as one {class name: F1} mapping per split, not one attribute per class:
    # the dashboard shows it as a single row, and results_dataframe() skips it (not a scalar).
    # None marks a class with neither true nor predicted documents in that split.
    for split, per_class in (("val", result.val_per_class_f1),
                             ("test", result.test_per_class_f1)):
        if per_class and len(per_class) == len(result.class_names):
            attrs[f"per_class_f1.{split}"] = {
                name: _finite(v) for name, v in zip(result.class_names, per_class, strict=True)
            }
    attrs["best_epoch"] = result.best_epoch
    attrs["epochs_run"] = result.epochs_run
    attrs["prediction_rule"] = result.prediction_rule
    if result.prediction_threshold is not None:
        attrs["prediction_threshold"] = result.prediction_threshold
    attrs["train_seconds"] = round(result.train_seconds, 4)
    attrs["device"] = result.device
    return attrs


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _set_each(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def config_attribute(config: TrialConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


class Objective:
    """``objective(trial)``: sample, train with per-epoch pruning, store attributes, return.

    Args:
        space: the compiled search space.
        template: the study's fixed settings (data, encoder, train settings, eval).
        multi_objective: return all metric values and never prune (Optuna cannot prune
            multi-objective trials).
    """

    def __init__(
        self,
        space: SpaceLike,
        template: Mapping[str, Any],
        *,
        multi_objective: bool = False,
        scrub: Callable[[str], str] | None = None,
        set_attrs: Callable[[optuna.Trial, Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.space = space
        self.template = dict(template)
        self.multi_objective = multi_objective
        self.scrub = scrub or (lambda text: text)
        # several attributes at once: the runner passes one that writes them in one transaction
        self.set_attrs = set_attrs or _set_each

    def config_for(self, trial: optuna.Trial) -> TrialConfig:
        """Sample the trial's parameters and build its plain config (threads made explicit:
        what this process uses, so that replays match)."""
        config = self.space.to_config(self.space.sample(trial), self.template)
        if config.train.threads is None:
            import torch

            config = config.model_copy(update={"train": config.train.model_copy(
                update={"threads": torch.get_num_threads()})})
        return config

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        try:
            config = self.config_for(trial)
            self.set_attrs(trial, {"config": config_attribute(config),
                                   "worker": f"{socket.gethostname()}:{os.getpid()}"})
            reporter = None if self.multi_objective else OptunaReporter(trial)
            result = run_trial(config, reporter=reporter)
        except TrialPrunedSignal as signal:
            self.set_attrs(trial, result_attributes(signal.result))
            raise optuna.TrialPruned(f"pruned at epoch {signal.epoch}") from None
        except NonFiniteLossError as exc:
            trial.set_user_attr("fail_reason", self.scrub(str(exc)))
            raise
        except Exception as exc:  # every failure records why: max_failures counts these
            trial.set_user_attr("fail_reason", self.scrub(f"{type(exc).__name__}: {exc}"))
            raise
        self.set_attrs(trial, result_attributes(result))
        if self.multi_objective:
            return [float(v) for v in result.values]
        return float(result.value)
