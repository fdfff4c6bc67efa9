"""A NaN or infinite value never makes a COMPLETE trial: a loss that diverges in the last epoch,
or a validation ``loss`` metric that is infinite at the kept epoch, fails the trial with a
``fail_reason`` that names it, and the study goes on with its other trials."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from losstune.objectives.config import TrialConfig
from losstune.objectives.training import NonFiniteLossError, run_trial
from losstune.studies import api
from tests.conftest import tiny_study


def _study(modes: list[str], metric: str = "macro_f1") -> dict:
    return tiny_study(
        n_trials=len(modes), metric=metric, plugins=["tests.plugins.faulty_loss"],
        loss={"choices": ["faulty"], "baseline": False},
        space={"train.epochs": 3, "train.lr": 0.05, "loss.faulty.mode": sorted(set(modes))},
        enqueue=[{"loss.faulty.mode": m} for m in modes], max_failures=5)


def _run(study: dict, url: str) -> list[optuna.trial.FrozenTrial]:
    spec, text = api.study_from_dict(study)
    api.run_study(spec, study_text=text, storage=url, progress=False)
    return optuna.load_study(study_name=study["name"], storage=url).trials


def test_a_loss_diverging_in_the_last_epoch_fails_the_trial(sqlite_url: str) -> None:
    trials = _run(_study(["ok", "nan_last_epoch", "ok"]), sqlite_url)
    states = [t.state for t in trials[:3]]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    failed = trials[1]
    assert failed.values is None
    reason = failed.user_attrs["fail_reason"]
    assert reason.startswith("training loss became nan at epoch 2, batch 0"), reason
    # what the two finished epochs measured is kept for diagnosis
    assert failed.user_attrs["epochs_run"] == 2
    assert len(failed.user_attrs["curve.val_macro_f1"]) == 2


def test_an_infinite_loss_metric_at_the_kept_epoch_fails_the_trial(sqlite_url: str) -> None:
    trials = _run(_study(["inf_eval", "ok"], metric="loss"), sqlite_url)
    assert [t.state for t in trials[:2]] == [TrialState.FAIL, TrialState.COMPLETE]
    failed, ok = trials[0], trials[1]
    reason = failed.user_attrs["fail_reason"]
    assert reason.startswith("validation loss=inf at the kept epoch 0"), reason
    assert failed.values is None
    # the run's curves are stored with the failed trial (inf stored as None)
    assert failed.user_attrs["curve.val_loss"] == [None, None, None]
    assert len(failed.user_attrs["curve.train_loss"]) == 3
    assert ok.value is not None and math.isfinite(ok.value)


def test_run_trial_raises_for_a_non_finite_value_with_the_result() -> None:
    import tests.plugins.faulty_loss  # noqa: F401 - registers the 'faulty' loss

    config = TrialConfig(
        data={"name": "synthetic"}, encoder={"name": "hashing"},  # type: ignore[arg-type]
        loss={"terms": [{"name": "faulty", "params": {"mode": "inf_eval"}}]},  # type: ignore
        train={"epochs": 2, "threads": 1}, eval={"metric": "macro_f1",  # type: ignore
                                                  "metrics": ["loss"]})
    with pytest.raises(NonFiniteLossError, match=r"validation loss=inf at the kept epoch") as e:
        run_trial(config)
    assert e.value.result is not None and e.value.result.test  # measured to the end


@pytest.fixture(scope="module")
def ray_cluster():  # noqa: ANN201
    from tests.studies_tests.ray_helpers import local_ray

    yield from local_ray(num_cpus=2)


@pytest.mark.ray
def test_ray_tune_trials_keep_the_reason_and_the_curves_too(ray_cluster: object,
                                                            sqlite_url: str) -> None:
    study = dict(_study(["nan_last_epoch", "ok"]), name="tuned_nan",
                 ray={"workers": 1, "scheduler": "none"})
    spec, text = api.study_from_dict(study)
    api.run_study(spec, study_text=text, storage=sqlite_url, launcher="ray-tune",
                  progress=False)
    trials = optuna.load_study(study_name="tuned_nan", storage=sqlite_url).trials
    failed = next(t for t in trials if t.state == TrialState.FAIL)
    assert failed.user_attrs["fail_reason"].startswith("training loss became nan at epoch 2")
    assert failed.user_attrs["epochs_run"] == 2
    assert len(failed.user_attrs["curve.val_macro_f1"]) == 2
    assert any(t.state == TrialState.COMPLETE for t in trials)
