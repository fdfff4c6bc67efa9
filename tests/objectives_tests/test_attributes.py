"""The trial-attribute schema: the one writer and the one reader agree, the stored names stay
what studies and exports rely on, and the module needs neither Optuna nor torch."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from losstune.objectives import attributes
from losstune.objectives.attributes import TrialRecord, result_attributes


def _result(**overrides: object) -> SimpleNamespace:
    """Shaped like a TrialResult (the writer is duck-typed)."""
    data = dict(
        val={"macro_f1": 0.8, "accuracy": float("nan")}, test={"macro_f1": 0.7},
        terms={"ce": 0.3, "space.inter": 0.1},
        curves={"val_macro_f1": [0.5, 0.8], "term_ce": [0.9, 0.3], "train_loss": [1.0, 0.5]},
        val_per_class_f1=[0.9, 0.7], test_per_class_f1=[0.6, float("inf")],
        class_names=["earn", "acq"], best_epoch=1, epochs_run=2, prediction_rule="argmax",
        prediction_threshold=None, train_seconds=1.234567, device="cpu",
    )
    data.update(overrides)
    return SimpleNamespace(**data)


def _frozen(params: dict[str, object], user_attrs: dict[str, object],
            state: TrialState = TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
    dists = {"loss.name": CategoricalDistribution(["ce", "focal"]),
             "train.lr": FloatDistribution(1e-3, 1.0, log=True)}
    return optuna.trial.create_trial(
        params=params, distributions={k: dists[k] for k in params},
        value=0.8 if state == TrialState.COMPLETE else None, user_attrs=user_attrs,
        state=state)


def test_writer_uses_the_stored_names() -> None:
    attrs = result_attributes(_result())
    assert set(attrs) == {
        "metric.val.macro_f1", "metric.val.accuracy", "metric.test.macro_f1", "term.ce",
        "term.space.inter", "curve.val_macro_f1", "curve.term_ce", "curve.train_loss",
        "per_class_f1.val", "per_class_f1.test", "best_epoch", "epochs_run",
        "prediction_rule", "train_seconds", "device"}
    assert attrs["metric.val.accuracy"] is None  # non-finite numbers are stored as None
    assert attrs["per_class_f1.test"] == {"earn": 0.6, "acq": None}
    assert attrs["train_seconds"] == 1.2346
    threshold = result_attributes(_result(prediction_rule="threshold", prediction_threshold=0.5))
    assert threshold["prediction_threshold"] == 0.5


def test_reader_parses_what_the_writer_stored() -> None:
    config = {"loss": {"terms": [{"name": "ce"}, {"name": "triplet"}]}}
    stored = {**result_attributes(_result()), "config": config, "worker": "host:42",
              "baseline": True}
    record = TrialRecord.from_trial(_frozen({"loss.name": "focal", "train.lr": 0.1}, stored))
    assert (record.state, record.values) == ("COMPLETE", [0.8])
    assert record.loss == "focal" and record.loss_label == "focal"
    assert record.params == {"loss.name": "focal", "train.lr": 0.1}
    assert record.val == {"macro_f1": 0.8, "accuracy": None}
    assert record.test == {"macro_f1": 0.7}
    assert record.terms == {"ce": 0.3, "space.inter": 0.1}
    assert record.term_curves == {"ce": [0.9, 0.3]}
    assert record.val_curve("macro_f1") == [0.5, 0.8] and record.val_curve("accuracy") == []
    assert record.per_class_f1 == {"val": {"earn": 0.9, "acq": 0.7},
                                   "test": {"earn": 0.6, "acq": None}}
    assert (record.best_epoch, record.epochs_run, record.prediction_rule) == (1, 2, "argmax")
    assert (record.config, record.worker, record.device) == (config, "host:42", "cpu")
    assert record.baseline and not record.enqueued and record.fail_reason is None
    scalars = record.scalar_attributes()
    assert scalars["metric.val.macro_f1"] == 0.8 and "config" not in scalars
    assert "curve.val_macro_f1" not in scalars and "per_class_f1.val" not in scalars


def test_loss_without_a_sampled_choice_and_failure_reasons() -> None:
    config = {"loss": {"terms": [{"name": "ce"}, {"name": "triplet"}]}}
    fixed = TrialRecord.from_trial(_frozen({"train.lr": 0.1}, {"config": config}))
    assert fixed.loss == "ce" and fixed.loss_label == "ce+triplet"
    bare = TrialRecord.from_trial(_frozen({}, {}, state=TrialState.FAIL))
    assert bare.loss is None and bare.loss_label == "" and bare.values is None
    own = TrialRecord.from_trial(_frozen({}, {"fail_reason": "boom", "stale_reason": "died"},
                                         state=TrialState.FAIL))
    stale = TrialRecord.from_trial(_frozen({}, {"stale_reason": "no heartbeat"},
                                           state=TrialState.FAIL))
    assert (own.fail_reason, stale.fail_reason) == ("boom", "no heartbeat")


def test_reader_is_duck_typed_and_the_module_needs_no_optuna_or_torch() -> None:
    trial = SimpleNamespace(number=3, state=SimpleNamespace(name="PRUNED"), values=None,
                            params={"loss.name": "ce"},
                            user_attrs={"metric.val.macro_f1": 0.4, "pruned_by": "asha"})
    record = TrialRecord.from_trial(trial)
    assert (record.number, record.state, record.val, record.loss) == (
        3, "PRUNED", {"macro_f1": 0.4}, "ce")
    assert record.user_attrs[attributes.PRUNED_BY] == "asha"
    code = ("import sys\nimport losstune.objectives.attributes\n"
            "print(sorted({'optuna', 'torch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
