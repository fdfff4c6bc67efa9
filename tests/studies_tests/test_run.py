"""Running studies: budget, resume, pruning, failing trials, stale trials, Ctrl-C semantics."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from losstune.studies import api
from losstune.studies.runner import StudyMismatchError
from tests.conftest import tiny_study


def run(study: dict, url: str, **kw: object) -> api.RunSummary:
    spec, text = api.study_from_dict(study)
    return api.run_study(spec, study_text=text, storage=url, progress=False, **kw)


def test_run_reaches_budget_then_tops_up_then_nothing_to_do(sqlite_url: str) -> None:
    s = run(tiny_study(n_trials=3), sqlite_url)
    assert s.created and s.finished == 3 and s.started_here == 3
    s = run(tiny_study(n_trials=3), sqlite_url, n_trials=5)
    assert not s.created and s.finished == 5 and s.started_here == 2
    s = run(tiny_study(n_trials=3), sqlite_url, n_trials=5)
    assert s.started_here == 0 and s.stopped_reason == "nothing to do"


def test_trial_attributes_follow_the_schema(sqlite_url: str) -> None:
    run(tiny_study(n_trials=2), sqlite_url)
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert study.metric_names == ["macro_f1"]
    for key in ("study_file", "space_fingerprint", "losstune_version", "space"):
        assert key in study.user_attrs
    trial = study.trials[0]
    assert trial.user_attrs["baseline"] is True and trial.params["loss.name"] == "ce"
    attrs = trial.user_attrs
    assert attrs["metric.val.macro_f1"] == pytest.approx(trial.value)
    for key in ("metric.test.macro_f1", "metric.test.micro_f1", "metric.test.accuracy",
                "term.ce", "best_epoch", "prediction_rule", "config", "curve.val_macro_f1",
                "curve.train_loss"):
        assert key in attrs, key
    assert attrs["prediction_rule"] == "argmax"
    curve = attrs["curve.val_macro_f1"]
    assert trial.value == max(curve) and attrs["best_epoch"] == curve.index(max(curve))
    assert trial.intermediate_values == dict(enumerate(curve))


def test_median_pruner_stops_a_bad_trial(sqlite_url: str) -> None:
    good = {"loss.name": "ce", "loss.ce.label_smoothing": 0.0, "model.dropout": 0.0,
            "train.lr": 0.1, "train.weight_decay": 1e-6, "train.epochs": 4,
            "train.batch_size": 32}
    bad = dict(good, **{"train.lr": 1e-4})
    study = tiny_study(n_trials=2, loss={"choices": ["ce"], "baseline": False},
                       space={"train.epochs": {"low": 2, "high": 4}},
                       pruner={"name": "median", "args": {"n_startup_trials": 1,
                                                          "n_warmup_steps": 0}},
                       enqueue=[good, bad])
    s = run(study, sqlite_url)
    assert s.finished == 2 and s.pruned == 1
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert trials[1].state == TrialState.PRUNED
    assert "curve.val_macro_f1" in trials[1].user_attrs


def faulty_study(n_trials: int, modes: list[str], **kw: object) -> dict:
    return tiny_study(
        n_trials=n_trials, plugins=["tests.plugins.faulty_loss"],
        loss={"choices": ["faulty"], "baseline": False},
        enqueue=[{"loss.faulty.mode": m} for m in modes], **kw)


def test_nan_and_exception_fail_alone_and_study_goes_on(sqlite_url: str) -> None:
    s = run(faulty_study(3, ["ok", "nan", "raise", "ok", "ok"],
                         space={"train.epochs": {"low": 2, "high": 3}}), sqlite_url)
    assert s.finished == 3 and s.failed == 2
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    fails = [t for t in trials if t.state == TrialState.FAIL]
    assert "training loss became nan" in fails[0].user_attrs["fail_reason"]
    assert "raised on purpose" in fails[1].user_attrs["fail_reason"]


def test_max_failures_stops_the_study(sqlite_url: str) -> None:
    s = run(faulty_study(5, ["nan"] * 5, max_failures=2,
                         space={"loss.faulty.mode": ["nan"],
                                "train.epochs": {"low": 2, "high": 3}}), sqlite_url)
    assert s.failed == 2 and s.finished == 0
    assert s.stopped_reason.startswith("max_failures (2)")


def test_stale_running_trial_of_dead_process_is_failed_and_retried(sqlite_url: str) -> None:
    run(tiny_study(n_trials=1), sqlite_url)
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    # a RUNNING trial left behind by a process that no longer exists on this host
    trial = study.ask({"loss.name": optuna.distributions.CategoricalDistribution(
        ["ce", "bce", "focal"])})
    import socket

    trial.set_user_attr("worker", f"{socket.gethostname()}:999999")
    s = run(tiny_study(n_trials=2), sqlite_url)
    assert s.stale_failed == [trial.number]
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert trials[trial.number].state == TrialState.FAIL
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert s.finished == 2


def test_changed_space_is_refused_with_a_diff_and_new_name(sqlite_url: str) -> None:
    run(tiny_study(n_trials=1), sqlite_url)
    changed = tiny_study(n_trials=2, loss={"choices": ["ce", "focal"]})
    with pytest.raises(StudyMismatchError) as info:
        run(changed, sqlite_url)
    msg = str(info.value)
    assert "loss.name" in msg and "tiny_v2" in msg


def test_stop_flag_finishes_current_trial_and_leaves_study_consistent(sqlite_url: str) -> None:
    from losstune.studies.runner import StopFlag, run_worker

    spec, text = api.study_from_dict(tiny_study(n_trials=5))
    from losstune.studies.runner import create_or_load

    create_or_load(spec, text, sqlite_url)
    stop = StopFlag()

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        stop.set("interrupted (test)")

    out = run_worker(spec, sqlite_url, n_trials=5, stop=stop, on_trial_end=after_trial)
    assert out["started"] == 1 and out["reason"] == "interrupted (test)"
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE]
    s = run(tiny_study(n_trials=5), sqlite_url)
    assert s.finished == 5


def test_timeout_bounds_the_run(sqlite_url: str) -> None:
    s = run(tiny_study(n_trials=50), sqlite_url, timeout=0.01)
    assert s.started_here <= 1 and s.stopped_reason == "timeout reached"


def test_storage_from_environment(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("LOSSTUNE_STORAGE", url)
    spec, text = api.study_from_dict(tiny_study(n_trials=1))
    api.run_study(spec, study_text=text, progress=False)
    assert (tmp_path / "env.db").exists()
    assert [r.name for r in api.list_studies()] == ["tiny"]


def test_changed_metric_or_data_is_refused_on_resume(sqlite_url: str) -> None:
    run(tiny_study(n_trials=1), sqlite_url)
    with pytest.raises(StudyMismatchError, match="metric"):
        run(tiny_study(n_trials=2, metric="accuracy"), sqlite_url)
    with pytest.raises(StudyMismatchError, match=r"data\.options\.num_classes"):
        run(tiny_study(n_trials=2, data={"name": "synthetic", "options": {"num_classes": 3}}),
            sqlite_url)
    # settings that do not change what a value means may change
    s = run(tiny_study(n_trials=2, train={"threads": 2}), sqlite_url)
    assert s.finished == 2


def test_resumed_study_does_not_replay_the_same_random_trials(sqlite_url: str) -> None:
    study = tiny_study(n_trials=2, sampler={"name": "random"}, loss={"choices": ["ce", "bce",
                       "focal"], "baseline": False})
    run(study, sqlite_url)
    run(study, sqlite_url, n_trials=4)
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    first, second = [t.params for t in trials[:2]], [t.params for t in trials[2:4]]
    assert first != second


def test_failures_of_earlier_runs_do_not_stop_a_new_run(sqlite_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    study = faulty_study(5, ["nan", "nan"], max_failures=2,
                         space={"train.epochs": {"low": 2, "high": 3}})
    s = run(study, sqlite_url)
    assert s.stopped_reason.startswith("max_failures (2)") and s.failed == 2
    # the bug is fixed (every mode now trains): the study's 2 old failures do not count
    import torch.nn.functional as F

    from tests.plugins.faulty_loss import FaultyLoss

    monkeypatch.setattr(FaultyLoss, "compute",
                        lambda self, logits, labels: F.cross_entropy(logits, labels))
    s = run(study, sqlite_url)
    assert s.finished == 5 and s.stopped_reason == "budget reached"


def test_a_failure_while_building_the_config_counts_against_max_failures(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from losstune.objectives.objective import Objective

    def broken(self: Objective, trial: optuna.Trial) -> None:
        raise RuntimeError("config cannot be built")

    monkeypatch.setattr(Objective, "config_for", broken)
    s = run(tiny_study(n_trials=3, max_failures=2), sqlite_url)
    assert s.failed == 2 and s.stopped_reason.startswith("max_failures (2)")
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert all("config cannot be built" in t.user_attrs["fail_reason"] for t in trials)
