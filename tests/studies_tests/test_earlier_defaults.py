"""A study created with an earlier default search space (``train.batch_size`` choices 32/64/128,
before the default became 256 of 32..512) is not silently resumed with another space: the run
says in one line which ``space:`` entry resumes it, and with that entry it resumes."""

from __future__ import annotations

import pytest

from losstune.search_spaces import training
from losstune.studies import api
from losstune.studies.runner import StudyMismatchError
from tests.conftest import tiny_study


def _run(study: dict, url: str) -> api.RunSummary:
    spec, text = api.study_from_dict(study)
    return api.run_study(spec, study_text=text, storage=url, progress=False)


def test_a_study_of_the_earlier_default_batch_sizes_resumes_once_the_file_pins_them(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = training.EARLIER_TRAIN_SPACES["batch_size"][0]
    with monkeypatch.context() as patch:  # the default space as an earlier losstune had it
        patch.setitem(training.TRAIN_SPACE, "batch_size", (earlier, 64))
        assert _run(tiny_study(n_trials=2), sqlite_url).finished == 2

    with pytest.raises(StudyMismatchError) as err:
        _run(tiny_study(n_trials=3), sqlite_url)
    message = str(err.value)
    assert "\n" not in message
    assert "`train.batch_size: {choices: [32, 64, 128]}` under `space:`" in message

    pinned = tiny_study(n_trials=3)
    pinned["space"]["train.batch_size"] = {"choices": list(earlier.choices)}
    summary = _run(pinned, sqlite_url)
    assert not summary.created and summary.finished == 3 and summary.started_here == 1


def test_other_space_changes_keep_the_full_difference_listing(sqlite_url: str) -> None:
    _run(tiny_study(n_trials=1), sqlite_url)
    changed = tiny_study(n_trials=2)
    changed["space"]["train.batch_size"] = {"choices": [16, 32]}  # the file's own change
    with pytest.raises(StudyMismatchError, match="Differences:\n  ~ train.batch_size"):
        _run(changed, sqlite_url)

