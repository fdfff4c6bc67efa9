"""Bring your own loss: plugin modules, the shared contracts, and bad plugin input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner

from losstune.studies import api
from losstune.studies.cli import cli
from losstune.studies.spec import StudyFileError
from tests.conftest import REPO, tiny_study


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


# ---------------------------------------------------------------------- contracts via the CLI
def test_check_loss_passes_built_in_and_plugin_losses() -> None:
    for target in ("db", "arcface", "tests.plugins.scaled_ce"):
        result = invoke("check-loss", target)
        assert result.exit_code == 0, result.output
        assert "meets the contract" in result.output


def test_check_loss_says_which_requirement_fails_and_how_to_fix() -> None:
    result = invoke("check-loss", "tests.plugins.faulty_loss")
    assert result.exit_code == 2
    assert "loss is nan" in result.output and "[forward]" in result.output


def test_check_model_and_dataset() -> None:
    assert invoke("check-model", "space").exit_code == 0
    ok = invoke("check-dataset", "synthetic", "-o", "num_classes=3")
    assert ok.exit_code == 0 and "meets the contract" in ok.output
    bad = invoke("check-dataset", "files", "-o", "path=/nonexistent.csv")
    assert bad.exit_code == 2 and "[load]" in bad.output


def _write_module(tmp_path: Path, name: str, body: str, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


LOSS_HEADER = """
    from __future__ import annotations
    import torch
    import torch.nn.functional as F
    from losstune.objectives.losses import BaseLoss, register_loss
    from losstune.search_spaces import FloatDist, register_loss_space
"""


def _loss_class(name: str, extra: str = "") -> str:
    return textwrap.dedent(LOSS_HEADER + f"""
    class PluginLoss(BaseLoss):
        '''Scaled CE. ``L = s * CE(z, y)``

        Args:
            s: a scale.

        References:
            none.

        Inputs:
            logits; class indices.
        '''
        name = {name!r}
        display_name = "P"
        targets = "index"
        single_label_only = True

        def __init__(self, *, s: float = 1.0) -> None:
            super().__init__()
            if not s > 0:
                raise ValueError(f"`s > 0` must hold, but got s={{s}}.")
            self.s = s

        def compute(self, logits, labels):
            return self.s * F.cross_entropy(logits, labels)

        def forward(self, outputs, batch):
            return self.compute(outputs.logits, batch.y)
    """) + extra


@pytest.mark.parametrize(
    ("module_body", "expected"),
    [
        ("import not_a_real_dependency_xyz\n", "failed to import"),
        ("raise RuntimeError('boom at import')\n", "raised on import: RuntimeError: boom"),
        (_loss_class("") + "\nregister_loss(PluginLoss)\n", "must declare a snake_case `name`"),
        (_loss_class("ce") + "\nregister_loss(PluginLoss)\n", "'ce' is already registered"),
        ("from losstune.objectives.losses import register_loss\nclass NotALoss: name = 'x'\n"
         "register_loss(NotALoss)\n", "is not a subclass of losstune.objectives.losses.BaseLoss"),
    ],
)
def test_bad_plugin_modules_give_one_message_and_write_nothing(
        module_body: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    module = _write_module(tmp_path, f"bad_plugin_{uuid.uuid4().hex[:8]}", module_body,
                           monkeypatch)
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(tiny_study(plugins=[module])))
    db = tmp_path / "s.db"
    result = invoke("run", str(study), "--storage", f"sqlite:///{db}")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and module in lines[0] and expected in lines[0]
    assert not db.exists()


def test_missing_plugin_module(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(tiny_study(plugins=["no_such_plugin_module"])))
    result = invoke("run", str(study), "--storage", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == 2
    assert "plugin module 'no_such_plugin_module' is not installed" in result.output


def test_space_that_does_not_match_the_constructor(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    module = _write_module(tmp_path, "mismatched_space_plugin", _loss_class(
        "mismatched", "\nregister_loss(PluginLoss)\n"
        "register_loss_space('mismatched', {'scale': FloatDist(0.1, 2.0)})\n"), monkeypatch)
    with pytest.raises(StudyFileError, match="'scale'.*constructor does not take"):
        api.study_from_dict(tiny_study(plugins=[module],
                                       loss={"choices": ["ce", "mismatched"]}))
    result = invoke("check-loss", module)
    assert result.exit_code == 2 and "[search space]" in result.output


# ---------------------------------------------------------------------- plugins in studies
def test_plugin_loss_with_a_declared_knob_runs_exports_and_replays(sqlite_url: str,
                                                                    tmp_path: Path) -> None:
    study = tiny_study(
        n_trials=3, plugins=["tests.plugins.scaled_ce"],
        loss={"choices": ["scaled_ce", "ce"], "baseline": ["scaled_ce"]},
        space={"loss.scaled_ce.temperature": {"type": "float", "low": 0.5, "high": 2.0,
                                              "log": True},
               "train.epochs": {"low": 2, "high": 3}})
    spec, text = api.study_from_dict(study)
    assert "loss.scaled_ce.temperature" in spec.compile_space().names()
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    st = optuna.load_study(study_name="tiny", storage=sqlite_url)
    first = st.trials[0]
    assert first.params["loss.name"] == "scaled_ce"
    assert first.params["loss.scaled_ce.temperature"] == 1.0  # the constructor default
    path, doc = api.export_trial("tiny", tmp_path / "p.yaml", storage=sqlite_url, trial=0)
    assert doc["config"]["plugins"] == ["tests.plugins.scaled_ce"]
    sources = doc["config"]["plugin_packages"]
    assert any(s["module"] == "tests.plugins.scaled_ce" and "loss:scaled_ce" in s["provides"]
               for s in sources)
    # a fresh process imports the plugin back from the config's `plugins:` list only
    out = subprocess.run([sys.executable, "-m", "losstune.studies.cli", "train", str(path)],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "reproduced" in out.stdout


def test_config_naming_a_plugin_that_is_not_installed(tmp_path: Path) -> None:
    config = {"data": {"name": "synthetic"}, "encoder": {"name": "hashing"},
              "loss": {"terms": [{"name": "asym_focal_missing"}]},
              "plugin_packages": [{"module": "losstune_missing", "package": "losstune-missing",
                                   "version": "1.0", "provides": ["loss:asym_focal_missing"]}]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"losstune_export": 1, "config": config, "provenance": {}}))
    result = invoke("train", str(path))
    assert result.exit_code == 2
    assert "comes from plugin package losstune-missing 1.0" in result.output
    assert "not installed" in result.output


def test_nothing_is_imported_from_other_text_in_a_config(tmp_path: Path) -> None:
    config = {"data": {"name": "synthetic"}, "encoder": {"name": "hashing"},
              "loss": {"terms": [{"name": "tests.plugins.scaled_ce:ScaledCrossEntropyLoss"}]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = invoke("train", str(path))
    assert result.exit_code == 2 and "Unknown loss" in result.output


# ---------------------------------------------------------------------- the Python API
def test_notebook_api_round_trip(sqlite_url: str, tmp_path: Path) -> None:
    spec, text = api.study_from_dict(tiny_study(n_trials=3, name="nb"))
    summary = api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    assert summary.finished == 3
    df = api.results_dataframe("nb", storage=sqlite_url)
    assert len(df) == 3
    for column in ("number", "state", "macro_f1", "loss.name", "train.lr",
                   "metric.test.macro_f1", "best_epoch"):
        assert column in df.columns, column
    best = df.loc[df["macro_f1"].idxmax()]
    path, doc = api.export_trial("nb", tmp_path / "nb.yaml", storage=sqlite_url)
    assert doc["provenance"]["trial"] == int(best["number"])
    from losstune.studies.export import read_config_file

    config, provenance = read_config_file(path)
    report = api.train_config(config, provenance=provenance)
    assert report.reproduced is True
    assert report.runs[0]["value"] == pytest.approx(best["macro_f1"])
    view = api.show_study("nb", storage=sqlite_url)
    assert view.chosen is not None and view.chosen.number == int(best["number"])
    assert view.chosen.loss == best["loss.name"]
    assert view.chosen.test["macro_f1"] == best["metric.test.macro_f1"]
    assert "not confirmed yet" in view.confirmation_note and len(view.top) == 3
    # what the API re-exports for notebooks (defined in studies/store.py and stats.py)
    assert api.get_study("nb", sqlite_url).study_name == "nb"
    with pytest.raises(api.StudyNotFoundError, match="Did you mean 'nb'"):
        api.get_study("nbb", sqlite_url)
    assert api.mean_ci([1.0, 3.0])["mean"] == 2.0
    spec2, _ = api.load_study(REPO / "studies" / "configs" / "quickstart.yaml")
    assert spec2.name == "quickstart"
    rows = api.list_studies(sqlite_url)
    assert [r.name for r in rows] == ["nb"]


def test_a_module_beside_the_study_file_that_registers_nothing_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import uuid

    name = f"silent_plugin_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "studies"
    folder.mkdir()
    (folder / f"{name}.py").write_text("VALUE = 1  # defines a loss nowhere\n")
    study = folder / "s.yaml"
    study.write_text(yaml.safe_dump(tiny_study(plugins=[name])))
    monkeypatch.chdir(tmp_path)  # not the study's folder
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        with caplog.at_level(logging.WARNING):
            api.load_study(study)  # found beside the study file; the study itself is valid
    finally:
        sys.modules.pop(name, None)
    assert str(folder) in sys.path
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"imported {name} but it registered no loss, model, encoder or "
                            "dataset") for m in messages), messages


def test_shipped_example_through_plugins_from_another_folder(tmp_path: Path) -> None:
    """examples/own_loss without installing it: its module beside a study file that lists it
    under ``plugins:``, run from an unrelated working directory in a fresh process."""
    import shutil

    folder = tmp_path / "my_study"
    shutil.copytree(REPO / "examples" / "own_loss" / "losstune_asym_focal",
                    folder / "losstune_asym_focal")
    study = tiny_study(n_trials=1, name="asym_plugins", plugins=["losstune_asym_focal"],
                       loss={"choices": ["asym_focal"], "baseline": True},
                       eval={"rule": "argmax"})
    (folder / "asym.yaml").write_text(yaml.safe_dump(study))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    url = f"sqlite:///{tmp_path / 'p.db'}"
    out = subprocess.run([sys.executable, "-m", "losstune.studies.cli", "run",
                          str(folder / "asym.yaml"), "--storage", url, "--no-progress"],
                         capture_output=True, text=True, cwd=elsewhere, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "registered no loss" not in out.stderr
    trial = optuna.load_study(study_name="asym_plugins", storage=url).trials[0]
    assert trial.params["loss.name"] == "asym_focal" and trial.state.name == "COMPLETE"
    assert trial.params["loss.asym_focal.gamma_neg"] == 4.0  # the paper default, trial 0
