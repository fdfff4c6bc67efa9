"""After a run, everything the CLI shows and suggests uses the storage the run used: a study
file's ``storage:`` beside an unrelated ``./losstune.db``, a URL with a password (never
printed: the hint names ``LOSSTUNE_STORAGE``), ``$LOSSTUNE_STORAGE`` (no flag needed)."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner

import losstune.storage as storage_pkg
from losstune.studies import api
from losstune.studies.cli import cli
from tests.conftest import tiny_study
from tests.storage_tests.servers import require_postgres, study_cleanup, unique_name

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _best_line(output: str) -> str:
    match = re.search(r"Best trial: #\d+ \(COMPLETE\) validation macro_f1=[0-9.]+", output)
    assert match, output
    return match.group(0)


def test_study_file_storage_is_used_after_the_run_beside_a_default_db(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # an unrelated study of the same name in ./losstune.db, with a poor best trial
    other, text = api.study_from_dict(tiny_study(
        name="same", n_trials=1, loss={"choices": ["ce"], "baseline": False},
        space={"train.epochs": 1, "train.lr": 0.0001}))
    api.run_study(other, study_text=text, progress=False)
    assert Path("losstune.db").exists()
    study = tiny_study(name="same", n_trials=2, storage="sqlite:///mine.db",
                       space={"train.epochs": 3, "train.lr": 0.1})
    Path("study.yaml").write_text(yaml.safe_dump(study))

    result = CliRunner().invoke(cli, ["run", "study.yaml", "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    mine = api.show_study("same", "sqlite:///mine.db").chosen
    theirs = api.show_study("same", "sqlite:///losstune.db").chosen
    assert mine.values != theirs.values
    assert _best_line(result.output) == (f"Best trial: #{mine.number} (COMPLETE) "
                                         f"validation macro_f1={mine.values[0]:.4f}")
    hints = result.output.split("Next:", 1)[1]
    for command in ("losstune show same --storage sqlite:///mine.db",
                    "losstune dashboard --storage sqlite:///mine.db",
                    "losstune export same -o best.yaml --storage sqlite:///mine.db"):
        assert command in hints, hints
    shown = CliRunner().invoke(cli, ["show", "same", "--storage", "sqlite:///mine.db"])
    assert f"#{mine.number}" in shown.output  # the suggested command runs as printed


def test_default_and_environment_storages_need_no_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert storage_pkg.follow_up_hint(storage_pkg.DEFAULT_STORAGE) == ("", None)
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("LOSSTUNE_STORAGE", url)
    assert storage_pkg.follow_up_hint(url) == ("", None)
    monkeypatch.delenv("LOSSTUNE_STORAGE")
    assert storage_pkg.follow_up_hint(url) == (f" --storage {url}", None)
    flag, note = storage_pkg.follow_up_hint("postgresql://me:pw@db.example/studies")
    assert flag == "" and note and "LOSSTUNE_STORAGE" in note and "pw@" not in note


@pytest.mark.postgres
def test_password_url_hints_name_the_environment_variable(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    base = require_postgres()  # trust authentication: the password is accepted and unused
    url = base.replace("postgres@", "postgres:s3cr3t-pw@", 1)
    name = unique_name("hint")
    monkeypatch.chdir(tmp_path)
    Path("study.yaml").write_text(yaml.safe_dump(tiny_study(
        name=name, n_trials=1, space={"train.epochs": 2, "train.lr": 0.05})))
    with study_cleanup(name, base):
        result = CliRunner().invoke(cli, ["run", "study.yaml", "--storage", url,
                                          "--no-progress"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert "s3cr3t-pw" not in result.output
    assert "Best trial: #0" in result.output  # shown from PostgreSQL, not ./losstune.db
    assert not Path("losstune.db").exists()
    hints = result.output.split("Next:", 1)[1]
    assert "set LOSSTUNE_STORAGE to the storage URL with its password" in hints
    assert "postgres:***@" in hints and "--storage" not in hints
