"""The CLI through click's CliRunner: every command, and errors as one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from losstune.studies.cli import cli
from tests.conftest import tiny_study


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_study(n_trials=3)))
    return path


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_on_every_command() -> None:
    import click

    commands = [[c] for c in cli.commands]
    commands += [[name, sub] for name, group in cli.commands.items()
                 if isinstance(group, click.Group) for sub in group.commands]
    for command in (["--help"], *[[*c, "--help"] for c in commands]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0, command
        assert "Usage:" in result.output


def test_run_show_export_train(study_file: Path, sqlite_url: str, tmp_path: Path) -> None:
    result = invoke("run", str(study_file), "--storage", sqlite_url, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "3/3 finished" in result.output and "Best trial" in result.output
    assert "losstune export tiny -o best.yaml" in result.output

    again = invoke("run", str(study_file), "--storage", sqlite_url)
    assert "nothing to do" in again.output and again.exit_code == 0

    listing = invoke("studies", "--storage", sqlite_url)
    assert listing.exit_code == 0 and "tiny" in listing.output

    shown = invoke("show", "tiny", "--storage", sqlite_url)
    assert shown.exit_code == 0 and "Best trial" in shown.output and "Top 5" in shown.output
    assert "test (never used for selection)" in shown.output

    out = tmp_path / "best.yaml"
    exported = invoke("export", "tiny", "-o", str(out), "--storage", sqlite_url)
    assert exported.exit_code == 0 and out.exists()
    doc = yaml.safe_load(out.read_text())
    assert set(doc) == {"losstune_export", "config", "provenance"}
    for key in ("study", "trial", "metric", "value", "params", "packages", "losstune_version"):
        assert key in doc["provenance"]
    assert doc["config"]["train"]["seed"] == 0

    refused = CliRunner().invoke(cli, ["export", "tiny", "-o", str(out), "--storage", sqlite_url])
    assert refused.exit_code == 2 and "--force" in refused.output

    trained = invoke("train", str(out))
    assert trained.exit_code == 0, trained.output
    assert "reproduced: the exported trial's validation macro_f1" in trained.output

    picked = invoke("show", "tiny", "--trial", "1", "--storage", sqlite_url)
    assert "Trial: #1" in picked.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["show", "nope"], "no study named 'nope'"),
        (["export", "nope", "-o", "x.yaml"], "no study named 'nope'"),
        (["show", "tiny", "--trial", "99"], "has no trial 99"),
    ],
)
def test_errors_are_one_line_exit_2(study_file: Path, sqlite_url: str, args: list[str],
                                    expected: str) -> None:
    invoke("run", str(study_file), "--storage", sqlite_url, "--n-trials", "1")
    result = CliRunner().invoke(cli, [*args, "--storage", sqlite_url])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]


def test_commands_on_missing_storage_do_not_create_it(tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    result = CliRunner().invoke(cli, ["studies", "--storage", f"sqlite:///{db}"])
    assert result.exit_code == 2 and "no study storage" in result.output
    assert not db.exists()


def test_train_rejects_an_edited_invalid_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"losstune_export": 1, "config": {
        "data": {"name": "synthetic"}, "loss": {"terms": [{"name": "ce", "wieght": 1}]}}}))
    result = CliRunner().invoke(cli, ["train", str(path)])
    assert result.exit_code == 2
    assert "config.loss.terms[0].wieght" in result.output


def test_space_command_prints_the_compiled_space(study_file: Path) -> None:
    result = invoke("space", str(study_file))
    assert result.exit_code == 0
    assert "loss.focal.gamma" in result.output and "loss.name=focal" in result.output


def test_dashboard_refuses_missing_storage(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--storage", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code == 2 and "no study storage" in result.output


def test_password_never_printed(study_file: Path) -> None:
    url = "postgresql://losstune:s3cret-pw@127.0.0.1:1/none"
    result = CliRunner().invoke(cli, ["studies", "--storage", url])
    assert result.exit_code == 2
    assert "s3cret-pw" not in result.output and "***" in result.output


def test_optuna_logging_is_set_by_the_cli_not_by_the_api(study_file: Path) -> None:
    import logging
    import subprocess
    import sys

    import optuna

    code = ("import optuna\noptuna.logging.set_verbosity(optuna.logging.DEBUG)\n"
            "from losstune.studies import api\nprint(optuna.logging.get_verbosity())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == str(logging.DEBUG), "importing the API must not change it"
    before = optuna.logging.get_verbosity()
    try:
        # -v: losstune's own lines (Optuna stays at WARNING); -vv: Optuna's per-trial lines too
        for flags, level in (([], logging.WARNING), (["-v"], logging.WARNING),
                             (["-vv"], logging.INFO), (["-vvv"], logging.INFO)):
            optuna.logging.set_verbosity(logging.ERROR)
            result = CliRunner().invoke(cli, [*flags, "space", str(study_file)])
            assert result.exit_code == 0, result.output
            assert optuna.logging.get_verbosity() == level, flags
    finally:
        optuna.logging.set_verbosity(before)
