"""Threads that fit the cores, progress of long commands, and what -v / -vv log.

Real CLI runs (CliRunner) of a tiny study on SQLite; Ray resource planning on described
clusters (the real Ray runs are in test_ray_launcher.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from click.testing import CliRunner

from losstune.objectives.config import default_threads, usable_cores
from losstune.studies import api
from losstune.studies.cli import cli
from losstune.studies.launchers._ray_core import RayCluster, plan_resources
from losstune.studies.launchers.base import ThreadPlan
from tests.conftest import tiny_study


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def cli_process(*args: str) -> str:
    """``losstune ARGS`` in a fresh process: its stdout and stderr together (exit code 0)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "losstune.studies.cli", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def unpinned(**overrides: Any) -> dict[str, Any]:
    """The tiny study without ``train.threads`` (as the shipped study files are now)."""
    study = tiny_study(**overrides)
    study["train"] = {}
    return study


def trial_threads(name: str, url: str) -> list[int]:
    from losstune.storage import get_storage

    study = optuna.load_study(study_name=name, storage=get_storage(url))
    return [t.user_attrs["config"]["train"]["threads"] for t in study.trials
            if "config" in t.user_attrs]


# ---------------------------------------------------------------------- thread counts
def test_default_threads_share_the_usable_cores_between_workers() -> None:
    assert usable_cores() == len(os.sched_getaffinity(0))
    assert default_threads(1, cores=8) == 8
    assert default_threads(3, cores=8) == 2
    assert default_threads(16, cores=8) == 1  # never zero
    assert default_threads() == usable_cores()
    # heads that gain from threads, and a fine-tuned encoder, share the cores too
    assert default_threads(2, cores=8, head="textcnn") == 4
    assert default_threads(2, cores=8, head="linear", fine_tune=True) == 4


@pytest.mark.parametrize("head", ["linear", "mlp", "projection", "space", "birnn"])
def test_heads_that_gain_nothing_from_threads_default_to_one(head: str) -> None:
    assert default_threads(1, cores=8, head=head) == 1
    assert default_threads(4, cores=8, head=head) == 1


def threaded(**overrides: Any) -> dict[str, Any]:
    """:func:`unpinned` with a head whose trials gain from threads (textcnn on GloVe ids)."""
    return unpinned(model={"head": "textcnn"}, encoder={"name": "glove"}, **overrides)


def test_oversubscription_warning_names_the_counts_and_the_fix() -> None:
    assert ThreadPlan(2, "default: cores / workers", 1, 2).warning() is None
    assert ThreadPlan(1, "train.threads", 2, 2).warning() is None
    line = ThreadPlan(2, "train.threads", 2, 2).warning()
    assert line is not None and "\n" not in line
    assert "2 workers x 2 torch thread(s) = 4 threads on 2 core(s)" in line
    assert "--threads 1" in line and "leave train.threads unset" in line


def _cluster(cpu: float, nodes: int = 1) -> RayCluster:
    # a joined cluster: its nodes' CPUs count as they are (a local one is capped by this
    # process's cores)
    return RayCluster(started=False, address="10.0.0.1:6379",
                      resources={"CPU": cpu * nodes, "GPU": 0.0},
                      nodes=[{"CPU": cpu, "GPU": 0.0}] * nodes)


def test_ray_workers_reserve_the_cpus_of_their_threads() -> None:
    spec, _ = api.study_from_dict(threaded())
    plan = plan_resources(spec, _cluster(cpu=8), workers=2)
    assert plan.threads is not None and plan.threads.threads == 4 and plan.num_cpus == 4
    assert plan.slots == 2 and not plan.notes
    plan = plan_resources(spec, _cluster(cpu=8, nodes=2), workers=4)
    assert (plan.threads.threads, plan.num_cpus, plan.slots) == (4, 4, 4)
    plan = plan_resources(spec, _cluster(cpu=8), workers=16)
    assert (plan.threads.threads, plan.num_cpus, plan.slots) == (1, 1, 8)
    # a linear head trains on one thread: each worker reserves one CPU
    linear, _ = api.study_from_dict(unpinned())
    plan = plan_resources(linear, _cluster(cpu=8), workers=2)
    assert (plan.threads.threads, plan.num_cpus, plan.slots) == (1, 1, 2)
    assert plan.threads.source == "default: one thread for head 'linear'"


def test_ray_threads_from_the_study_file_or_the_flag() -> None:
    pinned, _ = api.study_from_dict(tiny_study(train={"threads": 3}))
    plan = plan_resources(pinned, _cluster(cpu=8), workers=2)
    assert (plan.threads.threads, plan.threads.source, plan.num_cpus) == (3, "train.threads", 3)
    # an explicit ray.num_cpus keeps its reservation and sets the default thread count
    reserved, _ = api.study_from_dict(threaded(ray={"num_cpus": 2}))
    plan = plan_resources(reserved, _cluster(cpu=8), workers=2)
    assert (plan.threads.threads, plan.num_cpus) == (2, 2.0)
    # more threads than the reserved CPUs: Ray packs the workers, the threads overlap
    plan = plan_resources(reserved, _cluster(cpu=8), workers=4, threads=6)
    assert plan.threads.source == "--threads" and plan.num_cpus == 2.0
    assert any(n.startswith("warning: 4 workers x 6 torch thread(s) = 24 threads on 8 core(s)")
               for n in plan.notes), plan.notes


# ---------------------------------------------------------------------- run / train / confirm
@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(unpinned(n_trials=2)))
    return path


def test_run_threads_default_flag_and_warning(study_file: Path, sqlite_url: str) -> None:
    result = invoke("run", str(study_file), "--storage", sqlite_url, "--no-progress")
    assert result.exit_code == 0, result.output
    assert trial_threads("tiny", sqlite_url) == [1] * 2  # the linear head's default
    assert "warning:" not in result.output

    too_many = usable_cores() + 1
    more = invoke("run", str(study_file), "--storage", sqlite_url, "--no-progress",
                  "--n-trials", "3", "--threads", str(too_many))
    assert more.exit_code == 0, more.output
    assert trial_threads("tiny", sqlite_url)[-1] == too_many
    warnings = [line for line in more.output.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {too_many} torch threads on {usable_cores()} core(s) "
                        f"(--threads): the threads wait for each other and training slows down "
                        f"several times; use --threads {usable_cores()}"]

    bad = CliRunner().invoke(cli, ["run", str(study_file), "--storage", sqlite_url,
                                   "--threads", "0"])
    assert bad.exit_code == 2 and bad.output.startswith("error: ")
    assert "--threads" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_train_and_confirm_threads_and_the_bit_exact_note(study_file: Path, sqlite_url: str,
                                                          tmp_path: Path) -> None:
    assert invoke("run", str(study_file), "--storage", sqlite_url,
                  "--no-progress", "--threads", "1").exit_code == 0
    best = tmp_path / "best.yaml"
    assert invoke("export", "tiny", "-o", str(best), "--storage", sqlite_url).exit_code == 0
    assert yaml.safe_load(best.read_text())["config"]["train"]["threads"] == 1

    same = invoke("train", str(best))
    assert same.exit_code == 0, same.output
    assert "reproduced: the exported trial's validation macro_f1" in same.output
    assert "note:" not in same.output

    other = invoke("train", str(best), "--threads", "2", "-o", str(tmp_path / "weights"))
    assert other.exit_code == 0, other.output
    notes = [line for line in other.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--threads 2 differs from the 1 thread(s)" in notes[0]
    assert "not bit-exact" in notes[0]
    saved = yaml.safe_load((tmp_path / "weights" / "config.yaml").read_text())
    assert saved["config"]["train"]["threads"] == 2  # what the replay really used

    confirmed = invoke("confirm", "tiny", "--storage", sqlite_url, "--top", "1", "--seeds", "2",
                       "--threads", "2", "--no-progress")
    assert confirmed.exit_code == 0, confirmed.output
    assert "note: --threads 2 differs from the 1 thread(s) the trials were recorded with" \
        in confirmed.output
    # without a bar, one plain line per run
    assert sum(1 for line in confirmed.output.splitlines() if " seed " in line
               and line.startswith("trial ")) == 2


def test_train_reports_every_epoch_to_the_progress_callback(study_file: Path,
                                                            sqlite_url: str,
                                                            tmp_path: Path) -> None:
    assert invoke("run", str(study_file), "--storage", sqlite_url,
                  "--no-progress").exit_code == 0
    best = tmp_path / "best.yaml"
    assert invoke("export", "tiny", "-o", str(best), "--storage", sqlite_url).exit_code == 0
    epochs = yaml.safe_load(best.read_text())["config"]["train"]["epochs"]
    seen: list[tuple[int, int]] = []
    report = api.train_config(best, seeds=2, on_epoch=lambda i, e: seen.append((i, e)))
    assert seen == [(i, e) for i in range(2) for e in range(epochs)]
    assert report.threads == 1 and report.threads_note is None  # recorded: the linear default


def test_encoding_reports_rows_to_the_installed_hook(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from losstune.objectives.config import EncoderConfig
    from losstune.objectives.data import load_dataset
    from losstune.objectives.features import encoder_outputs, set_encoding_progress

    monkeypatch.setenv("LOSSTUNE_CACHE", str(tmp_path / "cache"))  # a fresh cache: it encodes
    rows: dict[str, list[int]] = {}

    @contextlib.contextmanager
    def hook(description: str, total: int) -> Any:
        rows[description] = [total]
        yield rows[description].append

    dataset = load_dataset("synthetic", {})
    previous = set_encoding_progress(hook)
    try:
        out = encoder_outputs(dataset, "val", EncoderConfig(name="hashing"))
        again = encoder_outputs(dataset, "val", EncoderConfig(name="hashing"))  # cached
    finally:
        set_encoding_progress(previous)
    n = len(dataset.split("val").texts)
    assert out["embeddings"].shape[0] == n == again["embeddings"].shape[0]
    assert list(rows) == ["encoding synthetic/val (hashing)"]
    total, *advances = rows["encoding synthetic/val (hashing)"]
    assert total == n and sum(advances) == n


def test_minilm_reports_each_batch() -> None:
    from losstune.objectives.encoders import build_encoder

    encoder = build_encoder("minilm", max_length=16)
    seen: list[int] = []
    encoder.on_rows = seen.append
    out = encoder.encode([f"document number {i}" for i in range(40)], batch_size=16)
    assert out.shape == (40, 384) and seen == [16, 16, 8]


# ---------------------------------------------------------------------- logging
LINES = ("INFO losstune.storage.rdb: storage opened: sqlite:///",
         "INFO losstune.objectives.features: feature cache ",
         "INFO losstune.studies.launchers.local: local launcher: 1 worker",
         "INFO losstune.studies.runner: creating study 'tiny'")


def test_verbose_logs_cache_storage_launcher_and_resume(study_file: Path, sqlite_url: str,
                                                        tmp_path: Path) -> None:
    # a command of its own process, as from a shell (within one process the storage and the
    # prepared features are opened once and reused)
    verbose = cli_process("-v", "run", str(study_file), "--storage", sqlite_url,
                          "--no-progress", "--n-trials", "1")
    for line in LINES:
        assert line in verbose, line
    assert "synthetic/train with hashing (embeddings)" in verbose
    assert "1 torch thread(s) per trial (default: one thread for head 'linear')" in verbose
    assert not any(line.startswith("DEBUG ") for line in verbose.splitlines())
    # -v leaves Optuna's per-trial lines out; -vv adds them (and losstune's debug level)
    assert "Trial 0 finished" not in verbose

    quiet = invoke("run", str(study_file), "--storage", sqlite_url, "--no-progress",
                   "--n-trials", "2")
    assert quiet.exit_code == 0, quiet.output
    assert not any(line.startswith(("INFO ", "DEBUG ")) for line in quiet.output.splitlines())

    resumed = invoke("-v", "run", str(study_file), "--storage", sqlite_url, "--no-progress",
                     "--n-trials", "3")
    assert resumed.exit_code == 0, resumed.output
    assert "resume: loaded study 'tiny' (2 trial(s) stored)" in resumed.output
    assert "no stale RUNNING trial" in resumed.output
    assert "INFO losstune.studies.launchers.local: local launcher: 1 worker" in resumed.output

    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(yaml.safe_dump(unpinned(name="tiny_vv", n_trials=1)))
    debug = invoke("-vv", "run", str(fresh), "--storage", sqlite_url, "--no-progress")
    assert debug.exit_code == 0, debug.output
    assert "INFO losstune.studies.runner: creating study 'tiny_vv'" in debug.output
    assert "Trial 0 finished with value" in debug.output
    assert logging.getLogger("losstune").level == logging.DEBUG

    after = invoke("show", "tiny", "--storage", sqlite_url)  # verbosity is per invocation
    assert after.exit_code == 0 and "INFO " not in after.output
    assert logging.getLogger("losstune").level == logging.WARNING


def test_library_modules_configure_no_logging_on_import() -> None:
    import subprocess
    import sys

    code = ("import logging\n"
            "import losstune.studies.api, losstune.studies.progress\n"
            "import losstune.objectives.features, losstune.studies.launchers\n"
            "root = logging.getLogger()\n"
            "print(len(root.handlers), root.level, logging.getLogger('losstune').level)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["0", str(logging.WARNING), str(logging.NOTSET)]
