"""Study-file validation: field paths, valid choices, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from losstune.studies.cli import cli
from losstune.studies.spec import StudyFileError, load_study_file, parse_study
from tests.conftest import tiny_study


def _error(study: dict) -> str:
    with pytest.raises(StudyFileError) as info:
        parse_study(study, source="s.yaml")
    return str(info.value)


def test_valid_study_parses() -> None:
    spec = parse_study(tiny_study())
    assert spec.name == "tiny"
    assert spec.metric_names == ["macro_f1"]
    assert spec.directions == ["maximize"]


def test_misspelled_top_level_key_names_the_key_and_suggests() -> None:
    study = tiny_study()
    study["trian"] = {"threads": 1}
    msg = _error(study)
    assert "trian" in msg and "Did you mean 'train'" in msg and "Valid keys" in msg


def test_unknown_nested_key_has_its_path() -> None:
    study = tiny_study(train={"threads": 1, "learning_rate": 0.1})
    msg = _error(study)
    assert "train.learning_rate" in msg and "unknown key" in msg


def test_bad_type_names_the_field() -> None:
    msg = _error(tiny_study(n_trials="many"))
    assert msg.startswith("s.yaml: n_trials")


def test_low_greater_than_high() -> None:
    study = tiny_study(space={"train.lr": {"low": 0.5, "high": 0.1}})
    msg = _error(study)
    assert "space.train.lr" in msg and "`low <= high` must hold" in msg


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"loss": {"choices": ["ce", "focl"]}}, "Unknown loss 'focl'"),
        ({"data": {"name": "r9"}}, "Unknown dataset 'r9'"),
        ({"encoder": {"name": "minilmm"}}, "Unknown encoder 'minilmm'"),
        ({"model": {"head": "linea"}}, "Unknown model head 'linea'"),
        ({"metric": "macro_f2"}, "unknown metric 'macro_f2'"),
        ({"sampler": {"name": "tpee"}}, "unknown sampler 'tpee'"),
        ({"pruner": {"name": "median", "args": {"n_warmup": 2}}}, "takes no argument 'n_warmup'"),
    ],
)
def test_unknown_names_list_valid_choices(patch: dict, expected: str) -> None:
    msg = _error(tiny_study(**patch))
    assert expected in msg
    assert "expected one of" in msg or "Valid" in msg


def test_unknown_space_parameter_suggests_the_close_one() -> None:
    msg = _error(tiny_study(space={"loss.focal.gama": {"low": 0, "high": 1}}))
    assert "space.loss.focal.gama" in msg and "Did you mean 'loss.focal.gamma'" in msg


def test_restricting_loss_choice_to_unknown_loss_fails() -> None:
    msg = _error(tiny_study(space={"loss.name": ["ce", "db"]}))
    assert "not among loss.choices" in msg


def test_range_on_categorical_parameter_fails() -> None:
    msg = _error(tiny_study(space={"loss.name": {"low": 1, "high": 2}}))
    assert "categorical" in msg


def test_dataset_option_unknown() -> None:
    msg = _error(tiny_study(data={"name": "synthetic", "options": {"limt": 3}}))
    assert "limt" in msg and "valid options" in msg


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata: [unclosed\n")
    with pytest.raises(StudyFileError, match="line"):
        load_study_file(path)


def test_cli_rejects_bad_study_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    study = tiny_study(loss={"choices": ["ce", "focl"]})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(study))
    db = tmp_path / "x.db"
    result = CliRunner().invoke(cli, ["run", str(path), "--storage", f"sqlite:///{db}"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "focl" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not db.exists(), "a rejected study file must not create the storage"


def test_cli_missing_file_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_shipped_study_files_are_valid() -> None:
    configs = sorted((Path(__file__).resolve().parents[2] / "studies" / "configs").glob("*.yaml"))
    assert configs, "studies/configs has no study files"
    for path in configs:
        spec, _ = load_study_file(path)
        assert spec.name
