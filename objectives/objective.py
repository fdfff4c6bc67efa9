"""The Optuna objective: sample a config, train it, record what the dashboard should show.

This is the only module of :mod:`objectives` that knows Optuna. The search space is passed in
(anything with ``sample(trial) -> values`` and ``to_config(values, template) -> TrialConfig``),
so the objective itself never calls ``trial.suggest_*``. The names of what it stores are in
:mod:`losstune.objectives.attributes`.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import optuna

from losstune.objectives.attributes import (
    CONFIG,
    FAIL_REASON,
    WORKER,
    config_attribute,
    result_attributes,
)
from losstune.objectives.config import TrialConfig
from losstune.objectives.training import (
    NonFiniteLossError,
    Reporter,
    TrialPrunedSignal,
    TrialResult,
    run_trial,
)

#: ``fail_reason`` of a trial aborted by a second Ctrl-C (KeyboardInterrupt).
INTERRUPTED_REASON = "interrupted: a second Ctrl-C aborted the trial"


class SpaceLike(Protocol):
    def sample(self, trial: Any) -> dict[str, Any]: ...

    def to_config(self, values: Mapping[str, Any], template: Mapping[str, Any]) -> TrialConfig: ...


class OptunaReporter(Reporter):
    """Adapts an Optuna trial to :class:`losstune.objectives.training.Reporter` (no
    :meth:`~losstune.objectives.training.Reporter.observe`: Optuna stores attributes at the
    end of the trial)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def report(self, value: float, step: int) -> None:
        self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.trial.should_prune()


class AbortableReporter(Reporter):
    """Passes epochs on to ``inner`` (None: nothing to report) and raises KeyboardInterrupt at
    the next epoch once ``abort()`` is true: a second Ctrl-C aborts the trial even when Python
    dropped the interrupt itself (it does inside garbage-collector callbacks)."""

    def __init__(self, inner: Reporter | None, abort: Callable[[], bool]) -> None:
        self.inner = inner
        self.abort = abort

    def _check(self) -> None:
        if self.abort():
            raise KeyboardInterrupt

    def observe(self, partial: TrialResult) -> None:
        if self.inner is not None:
            self.inner.observe(partial)

    def report(self, value: float, step: int) -> None:
        self._check()
        if self.inner is not None:
            self.inner.report(value, step)

    def should_prune(self) -> bool:
        self._check()
        return self.inner.should_prune() if self.inner is not None else False


def _set_each(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


class Objective:
    """``objective(trial)``: sample, train with per-epoch pruning, store attributes, return.

    Args:
        space: the compiled search space.
        template: the study's fixed settings (data, encoder, train settings, eval).
        multi_objective: return all metric values and never prune (Optuna cannot prune
            multi-objective trials).
        scrub: masks passwords in failure reasons.
        abort: when it turns true, the running trial stops at its next epoch as if
            interrupted (KeyboardInterrupt; ``fail_reason`` says so).
    """

    def __init__(
        self,
        space: SpaceLike,
        template: Mapping[str, Any],
        *,
        multi_objective: bool = False,
        scrub: Callable[[str], str] | None = None,
        abort: Callable[[], bool] | None = None,
        set_attrs: Callable[[optuna.Trial, Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.space = space
        self.template = dict(template)
        self.multi_objective = multi_objective
        self.scrub = scrub or (lambda text: text)
        self.abort = abort
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
            self.set_attrs(trial, {CONFIG: config_attribute(config),
                                   WORKER: f"{socket.gethostname()}:{os.getpid()}"})
            reporter: Reporter | None = None if self.multi_objective else OptunaReporter(trial)
            if self.abort is not None:
                reporter = AbortableReporter(reporter, self.abort)
            result = run_trial(config, reporter=reporter)
        except TrialPrunedSignal as signal:
            self.set_attrs(trial, result_attributes(signal.result))
            raise optuna.TrialPruned(f"pruned at epoch {signal.epoch}") from None
        except NonFiniteLossError as exc:  # a NaN/inf loss, or a NaN/inf value: FAIL, never
            # COMPLETE; what the run measured so far is kept for diagnosis
            attrs = result_attributes(exc.result) if exc.result is not None else {}
            self.set_attrs(trial, {**attrs, FAIL_REASON: self.scrub(str(exc))})
            raise
        except Exception as exc:  # every failure records why: max_failures counts these
            trial.set_user_attr(FAIL_REASON, self.scrub(f"{type(exc).__name__}: {exc}"))
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: Optuna fails the trial; say why
            trial.set_user_attr(FAIL_REASON, INTERRUPTED_REASON)
            raise
        values = [float(v) for v in result.values] if self.multi_objective else \
            [float(result.value)]
        if not all(math.isfinite(v) for v in values):  # run_trial raises first; never COMPLETE
            reason = f"the trial's value {values} is not finite"
            self.set_attrs(trial, {**result_attributes(result), FAIL_REASON: reason})
            raise NonFiniteLossError(reason, result)
        self.set_attrs(trial, result_attributes(result))
        return values if self.multi_objective else values[0]
