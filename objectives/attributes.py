"""The schema of a trial's stored parameters and user attributes: every key name once, the one
writer (:func:`result_attributes`) and the one reader (:class:`TrialRecord`).

Stored names are a schema: studies, exports and the dashboard depend on them, so they never
change. A trial of a losstune study carries:

* parameters ``loss.name`` (:data:`LOSS_PARAM`), ``loss.<loss>.<knob>``, ``weight.<term>``,
  ``train.*``, ``model.*``;
* user attributes written when it starts: ``config`` (the plain trial config), ``worker``
  (``HOST:PID`` of the process that trains it);
* user attributes of its result (:func:`result_attributes`): ``metric.val.<metric>``,
  ``metric.test.<metric>``, ``term.<term>`` (final loss terms), ``curve.<name>`` (per-epoch
  lists: ``curve.val_<metric>``, ``curve.term_<term>``, ``curve.train_loss``),
  ``per_class_f1.val`` / ``per_class_f1.test`` (``{class: F1}``), ``best_epoch``,
  ``epochs_run``, ``prediction_rule``, ``prediction_threshold``, ``train_seconds``, ``device``;
* when it fails: ``fail_reason`` (its own failure) or ``stale_reason`` (its worker died);
* markers: ``baseline`` and ``enqueued`` (queued by the study file), ``tune_owner`` (a Ray Tune
  driver's ``HOST:PID:NUMBER``), ``pruned_by`` (who stopped it early);
* in a ``<study>--confirm`` study: ``source_trial`` and ``seed``.

This module knows neither Optuna nor torch: :meth:`TrialRecord.from_trial` reads anything with
the attributes of an Optuna ``FrozenTrial`` (``number``, ``state``, ``values``, ``params``,
``user_attrs``), and :func:`result_attributes` anything shaped like a
:class:`losstune.objectives.training.TrialResult`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------- parameters
#: The categorical parameter of the loss choice.
LOSS_PARAM = "loss.name"

# ---------------------------------------------------------------------- user attributes
CONFIG = "config"
WORKER = "worker"
FAIL_REASON = "fail_reason"
STALE_REASON = "stale_reason"
BEST_EPOCH = "best_epoch"
EPOCHS_RUN = "epochs_run"
PREDICTION_RULE = "prediction_rule"
PREDICTION_THRESHOLD = "prediction_threshold"
TRAIN_SECONDS = "train_seconds"
DEVICE = "device"
BASELINE = "baseline"
ENQUEUED = "enqueued"
#: ``HOST:PID:NUMBER`` of the Ray Tune driver that asked for the trial. The trial number guards
#: against copies: Optuna's retry callback copies user attributes to the retry.
TUNE_OWNER = "tune_owner"
PRUNED_BY = "pruned_by"
SOURCE_TRIAL = "source_trial"
SEED = "seed"
SPLIT = "split"  # confirmation runs on another validation holdout (confirm --splits)

VAL_PREFIX = "metric.val."
TEST_PREFIX = "metric.test."
TERM_PREFIX = "term."
CURVE_PREFIX = "curve."
PER_CLASS_F1_PREFIX = "per_class_f1."
#: Curve names (after :data:`CURVE_PREFIX`) of the validation metrics and the loss terms.
VAL_CURVE = "val_"
TERM_CURVE = "term_"

#: Splits of the per-class F1 mappings.
SPLITS = ("val", "test")


# ---------------------------------------------------------------------- writer
def result_attributes(result: Any) -> dict[str, Any]:
    """User attributes of a trial result: scalars, ``curve.*`` lists and the
    ``per_class_f1.val`` / ``per_class_f1.test`` mappings (non-finite numbers stored as None).

    Args:
        result: a :class:`losstune.objectives.training.TrialResult` (or anything with its
            attributes).
    """
    attrs: dict[str, Any] = {}
    for name, value in result.val.items():
        attrs[VAL_PREFIX + name] = _finite(value)
    for name, value in result.test.items():
        attrs[TEST_PREFIX + name] = _finite(value)
    for rule, metrics in getattr(result, "test_by_rule", {}).items():  # run_trial(extra_rules)
        for name, value in metrics.items():
            attrs[f"{TEST_PREFIX}{rule}.{name}"] = _finite(value)
    for name, value in result.terms.items():
        attrs[TERM_PREFIX + name] = _finite(value)
    for name, values in result.curves.items():
        attrs[CURVE_PREFIX + name] = [_finite(v) for v in values]
    # Per-class F1 as one {class name: F1} mapping per split, not one attribute per class:
    # the dashboard shows it as a single row, and results_dataframe() skips it (not a scalar).
    # None marks a class with neither true nor predicted documents in that split.
    for split, per_class in zip(SPLITS, (result.val_per_class_f1, result.test_per_class_f1),
                                strict=True):
        if per_class and len(per_class) == len(result.class_names):
            attrs[PER_CLASS_F1_PREFIX + split] = {
                name: _finite(v) for name, v in zip(result.class_names, per_class, strict=True)
            }
    attrs[BEST_EPOCH] = result.best_epoch
    attrs[EPOCHS_RUN] = result.epochs_run
    attrs[PREDICTION_RULE] = result.prediction_rule
    if result.prediction_threshold is not None:
        attrs[PREDICTION_THRESHOLD] = result.prediction_threshold
    attrs[TRAIN_SECONDS] = round(result.train_seconds, 4)
    attrs[DEVICE] = result.device
    return attrs


def config_attribute(config: Any) -> dict[str, Any]:
    """The ``config`` attribute: a trial config (pydantic) as plain JSON data."""
    return config.model_dump(mode="json")


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------- reader
def _strip(attrs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in attrs.items() if k.startswith(prefix)}


def config_terms(config: Any) -> list[str]:
    """Names of the loss terms of a stored ``config`` attribute (empty when it has none)."""
    try:
        return [str(term["name"]) for term in config["loss"]["terms"]]
    except (TypeError, KeyError, IndexError):
        return []


@dataclass
class TrialRecord:
    """One trial as losstune stored it, parsed once.

    Attributes:
        number: the trial number.
        state: the trial state's name (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``,
            ``WAITING``).
        values: the objective values, or None.
        params: the sampled parameters by name.
        loss: the loss choice: the ``loss.name`` parameter, else the first loss term of the
            stored config (a study with one loss choice does not sample it), else None.
        val: validation metrics at the kept epoch (``metric.val.*``).
        test: test metrics at the kept epoch (``metric.test.*``).
        terms: final value of each loss term (``term.*``).
        curves: per-epoch lists by curve name (``curve.*``).
        per_class_f1: ``{split: {class: F1}}`` (``per_class_f1.*``).
        best_epoch: the kept epoch.
        epochs_run: epochs trained.
        prediction_rule: ``argmax``, ``threshold`` or ``centroid``.
        fail_reason: why it failed: its own ``fail_reason``, else ``stale_reason``.
        config: the stored trial config (a plain mapping), or None.
        worker: ``HOST:PID`` of the process that trained it, or None.
        device: the device it trained on, or None.
        baseline: queued as the study's paper-default baseline.
        enqueued: queued from the study file's ``enqueue:``.
        user_attrs: every stored user attribute, as stored.
    """

    number: int
    state: str
    values: list[float] | None
    params: dict[str, Any]
    loss: str | None
    val: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)
    terms: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list[Any]] = field(default_factory=dict)
    per_class_f1: dict[str, dict[str, Any]] = field(default_factory=dict)
    best_epoch: int | None = None
    epochs_run: int | None = None
    prediction_rule: str | None = None
    fail_reason: str | None = None
    config: dict[str, Any] | None = None
    worker: str | None = None
    device: str | None = None
    baseline: bool = False
    enqueued: bool = False
    user_attrs: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_trial(cls, trial: Any) -> TrialRecord:
        """Parse a trial (an Optuna ``FrozenTrial`` or anything with ``number``, ``state``,
        ``values``, ``params`` and ``user_attrs``)."""
        attrs = dict(trial.user_attrs)
        params = dict(trial.params)
        config = attrs.get(CONFIG)
        config = config if isinstance(config, dict) else None
        loss = params.get(LOSS_PARAM)
        if loss is None:
            terms = config_terms(config)
            loss = terms[0] if terms else None
        state = trial.state
        return cls(
            number=trial.number,
            state=getattr(state, "name", str(state)),
            values=list(trial.values) if trial.values else None,
            params=params,
            loss=loss,
            val=_strip(attrs, VAL_PREFIX),
            test=_strip(attrs, TEST_PREFIX),
            terms=_strip(attrs, TERM_PREFIX),
            curves=_strip(attrs, CURVE_PREFIX),
            per_class_f1=_strip(attrs, PER_CLASS_F1_PREFIX),
            best_epoch=attrs.get(BEST_EPOCH),
            epochs_run=attrs.get(EPOCHS_RUN),
            prediction_rule=attrs.get(PREDICTION_RULE),
            fail_reason=attrs.get(FAIL_REASON) or attrs.get(STALE_REASON),
            config=config,
            worker=attrs.get(WORKER),
            device=attrs.get(DEVICE),
            baseline=bool(attrs.get(BASELINE, False)),
            enqueued=bool(attrs.get(ENQUEUED, False)),
            user_attrs=attrs,
        )

    @property
    def loss_label(self) -> str:
        """The loss for one line of output: the ``loss.name`` parameter, else every loss term
        of the stored config joined with ``+`` (empty when neither is stored)."""
        chosen = self.params.get(LOSS_PARAM)
        return str(chosen) if chosen else "+".join(config_terms(self.config))

    @property
    def term_curves(self) -> dict[str, list[Any]]:
        """Per-epoch mean of each loss term, by term name (``curve.term_*``)."""
        return _strip(self.curves, TERM_CURVE)

    def val_curve(self, metric: str) -> list[Any]:
        """Per-epoch validation ``metric`` (``curve.val_<metric>``; empty when not stored)."""
        return list(self.curves.get(VAL_CURVE + metric) or [])

    def scalar_attributes(self) -> dict[str, Any]:
        """The user attributes that are single values (numbers, strings, booleans, None), in
        stored order: the columns of a results table."""
        return {k: v for k, v in self.user_attrs.items()
                if isinstance(v, (int, float, str, bool)) or v is None}
