"""``losstune confirm --splits R``: every confirmation seed also runs on R holdouts."""

from __future__ import annotations

import optuna
from click.testing import CliRunner

from losstune.studies import api
from losstune.studies.cli import cli
from losstune.studies.confirm import CONFIRM_SUFFIX, stored_confirmation
from tests.conftest import tiny_study


def test_confirm_runs_each_seed_on_each_holdout(sqlite_url: str) -> None:
    spec, text = api.study_from_dict(tiny_study(n_trials=2))
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    out = CliRunner().invoke(cli, ["confirm", "tiny", "--storage", sqlite_url, "--top", "1",
                                   "--seeds", "2", "--splits", "2"])
    assert out.exit_code == 0, out.output
    assert "1 trial(s) x 2 seeds x 2 holdouts" in out.output
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    (row,) = stored_confirmation(study).values()
    assert row.splits == 2 and row.seeds == [1, 2] and len(row.val) == 4
    linked = optuna.load_study(study_name="tiny" + CONFIRM_SUFFIX, storage=sqlite_url).trials
    runs = sorted((t.user_attrs["split"], t.user_attrs["seed"]) for t in linked)
    assert runs == [(0, 1), (0, 2), (1, 1), (1, 2)]
    # holdout 0 is the study's own split: its runs reproduce a plain confirmation's
    by = {(t.user_attrs["split"], t.user_attrs["seed"]): t.value for t in linked}
    plain = CliRunner().invoke(cli, ["confirm", "tiny", "--storage", sqlite_url, "--top", "1",
                                     "--seeds", "2"])
    assert plain.exit_code == 0, plain.output
    (again,) = stored_confirmation(optuna.load_study(study_name="tiny",
                                                     storage=sqlite_url)).values()
    assert again.splits == 1 and again.val == [by[(0, 1)], by[(0, 2)]]
    # holdout 1 (split_seed = DEFAULT_SPLIT_SEED + 1) validates on other documents
    assert by[(0, 1)] != by[(1, 1)] or by[(0, 2)] != by[(1, 2)]
