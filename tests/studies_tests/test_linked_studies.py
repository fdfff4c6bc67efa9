"""`<study>--confirm` is marked as the confirmation runs of `<study>` everywhere a user looks:
`studies`, `show`, `compare`, the report and the dashboard note. (The suite's `<suite>--runs`
study is checked in test_suite.py, where a suite runs.)"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna_dashboard import get_note

from losstune.studies import api
from losstune.studies.cli import cli
from losstune.studies.compare import compare_studies
from losstune.studies.confirm import confirm_study
from losstune.studies.report import write_report
from losstune.studies.store import linked_study, only_study
from tests.conftest import tiny_study


@pytest.fixture
def confirmed(sqlite_url: str) -> str:
    spec, text = api.study_from_dict(tiny_study(n_trials=3))
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    confirm_study("tiny", storage=sqlite_url, top=1, seeds=2)
    return sqlite_url


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_confirm_study_is_marked_everywhere(confirmed: str, tmp_path: Path) -> None:
    rows = {r.name: r for r in api.list_studies(confirmed)}
    assert rows["tiny"].linked is None and rows["tiny"].best_trial is not None
    linked = rows["tiny--confirm"].linked
    assert linked is not None and linked.description == "confirmation runs of study 'tiny'"
    assert rows["tiny--confirm"].best_value is None  # no "best" of a search
    listing = invoke("studies", "--storage", confirmed)
    assert "confirmation runs of study 'tiny'" in listing.output

    shown = invoke("show", "tiny--confirm", "--storage", confirmed)
    assert shown.exit_code == 0
    assert shown.output.startswith("study tiny--confirm: confirmation runs of study 'tiny';")
    assert "Best run:" in shown.output and "Best trial" not in shown.output
    assert "losstune confirm" not in shown.output and "not confirmed" not in shown.output
    assert "losstune export tiny --confirmed -o best.yaml" in shown.output

    compared = compare_studies(["tiny", "tiny--confirm"], confirmed)
    assert compared[1]["linked"] == "confirmation runs of study 'tiny'"
    assert compared[1]["best_trial"] is None
    table = invoke("compare", "tiny", "tiny--confirm", "--storage", confirmed)
    assert "confirmation runs" in table.output

    index = write_report("tiny--confirm", tmp_path / "rep", storage=confirmed)
    page = index.read_text()
    assert "Confirmation runs of study &#x27;tiny&#x27;" in page
    assert "no search plots" in page and "<th>source_trial</th><th>seed</th>" in page
    assert "<div class='figure'>" not in page  # no figure at all
    assert not list((tmp_path / "rep" / "figures").iterdir())

    study = optuna.load_study(study_name="tiny--confirm", storage=confirmed)
    note = get_note(study)
    assert "Confirmation runs of study `tiny`" in note and "not a search" in note

    refused = CliRunner().invoke(cli, ["confirm", "tiny--confirm", "--storage", confirmed])
    assert refused.exit_code == 2
    assert refused.output.strip() == ("error: study 'tiny--confirm' holds the confirmation runs "
                                      "of study 'tiny', not a search; confirm 'tiny' instead")


def test_linked_study_attributes() -> None:
    assert linked_study({"confirms": "a"}).kind == "confirm"
    runs = linked_study({"suite": "paper"})
    assert runs.kind == "runs" and runs.description == "evaluation runs of suite 'paper'"
    assert linked_study({"study_file": "...", "dataset": "r8"}) is None


def test_only_study_with_no_search_study(confirmed: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="x--confirm", storage=url).set_user_attr("confirms", "x")
    with pytest.raises(api.StudyNotFoundError, match="no study in"):
        only_study(url)
    assert only_study(confirmed) == "tiny"
