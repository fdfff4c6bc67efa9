"""examples/own_loss: a separate package that adds a loss through the ``losstune.losses`` entry
point. It is installed (no download, no build isolation) and its study runs, tiny, in fresh
processes: locally and with the Ray launcher."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import REPO, require

EXAMPLE = REPO / "examples" / "own_loss"


@pytest.fixture(scope="module")
def installed_plugin() -> Iterator[None]:
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
           "-e", str(EXAMPLE)]
    out = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "losstune-asym-focal"],
                   capture_output=True, text=True, timeout=300)


def tiny_example(tmp_path: Path, **extra: object) -> Path:
    study = yaml.safe_load((EXAMPLE / "studies" / "r52_asym_focal.yaml").read_text())
    study.update(n_trials=3, name="asym_tiny")
    study["data"]["options"] = {"limit": {"train": 200, "val": 60, "test": 60}}
    study["space"]["train.epochs"] = {"low": 3, "high": 5}
    study.update(extra)
    path = tmp_path / "asym_tiny.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def fresh(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "losstune.studies.cli", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=900)


def test_example_plugin_study_runs_locally(installed_plugin: None, tmp_path: Path) -> None:
    check = fresh("check-loss", "asym_focal", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    url = f"sqlite:///{tmp_path / 'plugin.db'}"
    out = fresh("run", str(tiny_example(tmp_path)), "--storage", url, "--no-progress",
                cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    study = optuna.load_study(study_name="asym_tiny", storage=url)
    first = study.trials[0]
    assert first.params["loss.name"] == "asym_focal"
    assert first.params["loss.asym_focal.gamma_neg"] == 4.0  # the paper default, trial 0
    exported = fresh("export", "asym_tiny", "-o", str(tmp_path / "e.yaml"), "--trial", "0",
                     "--storage", url, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    doc = yaml.safe_load((tmp_path / "e.yaml").read_text())
    sources = doc["config"]["plugin_packages"]
    assert {"module": "losstune_asym_focal", "package": "losstune-asym-focal",
            "version": "0.1.0", "provides": ["loss:asym_focal"]} in sources
    replay = fresh("train", str(tmp_path / "e.yaml"), cwd=tmp_path)
    assert replay.returncode == 0 and "reproduced" in replay.stdout, replay.stderr


@pytest.mark.ray
def test_example_plugin_study_runs_on_ray(installed_plugin: None, tmp_path: Path) -> None:
    import importlib.util

    require(importlib.util.find_spec("ray") is not None, "Ray (the 'ray' extra)")
    url = f"sqlite:///{tmp_path / 'plugin_ray.db'}"
    out = fresh("run", str(tiny_example(tmp_path)), "--storage", url, "--launcher", "ray",
                "--workers", "2", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    study = optuna.load_study(study_name="asym_tiny", storage=url)
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == 3
    assert any(t.params.get("loss.name") == "asym_focal" and t.state.name == "COMPLETE"
               for t in study.trials)
