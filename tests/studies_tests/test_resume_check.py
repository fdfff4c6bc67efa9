"""Resuming a study checks every fixed setting that changes what a trial's value means: the
optimizer, early stopping and gradient clipping among them. Settings that do not (threads,
device, seed) may change; studies created before the training settings were recorded still
resume."""

from __future__ import annotations

import optuna
import pytest

from losstune.storage import get_storage
from losstune.studies import api
from losstune.studies.runner import StudyMismatchError, comparable_template, create_or_load
from tests.conftest import tiny_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _spec(**train: object) -> tuple[object, str]:
    settings = {"threads": 1, **train}
    return api.study_from_dict(tiny_study(name="resume_check", n_trials=1, train=settings,
                                          space={"train.epochs": 2, "train.lr": 0.05}))


@pytest.fixture
def created(sqlite_url: str) -> str:
    spec, text = _spec(optimizer="adamw")
    summary = api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    assert summary.finished == 1
    return sqlite_url


@pytest.mark.parametrize(("change", "shown"), [
    ({"optimizer": "sgd"}, "train.optimizer: 'adamw' -> 'sgd'"),
    ({"patience": 3}, "train.patience: None -> 3"),
    ({"grad_clip": 1.0}, "train.grad_clip: None -> 1.0"),
])
def test_a_changed_training_setting_is_refused(created: str, change: dict[str, object],
                                              shown: str) -> None:
    spec, text = _spec(**{"optimizer": "adamw", **change})
    with pytest.raises(StudyMismatchError) as info:
        create_or_load(spec, text, created)
    assert shown in str(info.value) and "resume_check_v2" in str(info.value)


def test_settings_that_keep_values_comparable_may_change(created: str) -> None:
    spec, text = _spec(optimizer="adamw", threads=2, seed=7, device="cpu")
    study, was_created = create_or_load(spec, text, created)
    assert not was_created and len(study.trials) == 1
    assert set(comparable_template(spec)["train"]) == {"optimizer", "patience", "grad_clip"}


def test_a_study_created_before_training_settings_were_recorded_still_resumes(
        created: str) -> None:
    study = optuna.load_study(study_name="resume_check", storage=get_storage(created))
    old = {k: v for k, v in study.user_attrs["trial_template"].items() if k != "train"}
    study.set_user_attr("trial_template", old)  # what older losstune versions stored
    spec, text = _spec(optimizer="sgd")
    _, was_created = create_or_load(spec, text, created)
    assert not was_created
    # and a template with only some training keys compares only those
    study.set_user_attr("trial_template", dict(old, train={"optimizer": "sgd"}))
    spec, text = _spec(optimizer="sgd", patience=4)
    create_or_load(spec, text, created)
    spec, text = _spec(optimizer="adam")
    with pytest.raises(StudyMismatchError, match="train.optimizer"):
        create_or_load(spec, text, created)
