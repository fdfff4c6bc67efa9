"""A Ray cluster started with ``ray start --head`` (its own temp dir, stopped exactly): a local
run is not captured by it (``$RAY_ADDRESS`` is set), ``--address`` joins it, and a storage
password never reaches the output, the study, or any file of the cluster's Ray/Tune logs."""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from losstune.storage import get_storage
from tests.conftest import require, tiny_study
from tests.storage_tests.servers import require_postgres, study_cleanup, unique_name
from tests.studies_tests.ray_helpers import REPO, pids_using, stop_leftovers, subprocess_env

pytestmark = [pytest.mark.ray, pytest.mark.postgres]
SECRET = "s3cr3t-Pw-42"
HEAD_CPUS = 3  # more than this machine's cores: tells the joined cluster from a local one


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def head() -> Iterator[tuple[str, str]]:
    require(importlib.util.find_spec("ray") is not None, "ray (pip install -e '.[ray]')")
    temp_dir = tempfile.mkdtemp(prefix="ltrh-", dir="/tmp")
    port = _free_port()
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/ray"), "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", f"--num-cpus={HEAD_CPUS}", "--num-gpus=0",
         f"--temp-dir={temp_dir}", "--include-dashboard=false", "--disable-usage-stats"],
        cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not (Path(temp_dir) / "ray_current_cluster").exists():
            assert proc.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(0.3)
        yield address, temp_dir
    finally:
        proc.send_signal(signal.SIGTERM)  # --block: stops the processes it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stop_leftovers(temp_dir)
        assert not pids_using(temp_dir)
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)


def _leaks(root: str) -> list[str]:
    """Files under ``root`` (a Ray temp dir: logs, session files) that contain SECRET."""
    leaked = []
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if SECRET.encode() in path.read_bytes():
                    leaked.append(str(path))
            except OSError:
                continue
    return leaked


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def test_a_local_run_is_not_captured_by_ray_address(head: tuple[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from losstune.studies import api
    from losstune.studies.launchers._ray_core import connect

    address, _ = head
    _shutdown_ray()
    monkeypatch.setenv("RAY_ADDRESS", address)  # what a `ray start` session leaves behind
    spec, _ = api.study_from_dict(tiny_study(ray={"init": {"num_cpus": 2}}))
    cluster = connect(spec, None)
    try:
        assert cluster.started and cluster.address == "local"
        assert cluster.resources["CPU"] == 2  # not the head's HEAD_CPUS
    finally:
        _shutdown_ray()


def test_address_joins_the_cluster_and_the_password_stays_out_of_ray_files(
        head: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from losstune.studies import api

    address, temp_dir = head
    _shutdown_ray()
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # `ray start` enabled token auth
    url = require_postgres().replace("postgres@", f"postgres:{SECRET}@", 1)  # trust auth
    name = unique_name("rayjoin")
    out = io.StringIO()
    with study_cleanup(name, url):
        spec, text = api.study_from_dict(tiny_study(name=name, n_trials=3))
        summary = api.run_study(spec, study_text=text, storage=url, launcher="ray", workers=2,
                                address=address, progress=False,
                                console=Console(file=out, width=200))
        assert summary.finished == 3
        printed = out.getvalue()
        assert f"Ray: joined the Ray cluster at {address}: 1 node(s), {HEAD_CPUS} CPU" in printed
        assert SECRET not in printed and "postgres:***@" in printed
        study = optuna.load_study(study_name=name, storage=get_storage(url))
        assert SECRET not in repr(study.user_attrs) + repr([t.user_attrs for t in study.trials])
    import ray

    assert not ray.is_initialized()  # a joined cluster is left running, the driver detached
    assert _leaks(temp_dir) == [], "storage password found in the cluster's Ray files"


def _losstune(study: dict, url: str, *args: str, env: dict[str, str]) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "study.yaml"
        path.write_text(yaml.safe_dump(study))
        out = subprocess.run([str(REPO / ".venv/bin/losstune"), "run", str(path), "--storage",
                              url, "--no-progress", *args], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    return text


@pytest.mark.slow  # two `losstune run` processes: about a minute on two cores
def test_cli_local_run_ignores_ray_address_and_tune_joins_the_cluster_without_leaking_secrets(
        head: tuple[str, str]) -> None:
    address, temp_dir = head
    url = require_postgres().replace("postgres@", f"postgres:{SECRET}@", 1)  # trust auth
    local_name, tune_name = unique_name("raylocal"), unique_name("raytune")
    with study_cleanup(local_name, url), study_cleanup(tune_name, url):
        # 1. no --address: a local instance, even though RAY_ADDRESS points at the cluster
        text_local = _losstune(tiny_study(name=local_name, n_trials=2), url, "--launcher",
                               "ray", "--workers", "2", env=subprocess_env(RAY_ADDRESS=address))
        assert "Ray: started a local Ray instance: 1 node(s), 2 CPU" in text_local
        # 2. --address: Ray Tune trials run on the cluster (`ray start` enables token auth,
        # which a driver given an explicit address only uses when told to)
        text_tune = _losstune(tiny_study(name=tune_name, n_trials=2, ray={"scheduler": "asha"}),
                              url, "--launcher", "ray-tune", "--workers", "2", "--address",
                              address, env=subprocess_env(RAY_AUTH_MODE="token"))
        assert f"Ray: joined the Ray cluster at {address}: 1 node(s), {HEAD_CPUS} CPU" in \
            text_tune
        for name in (local_name, tune_name):
            study = optuna.load_study(study_name=name, storage=get_storage(url))
            assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                       for t in study.trials) == 2
            stored = repr(study.user_attrs) + repr([t.user_attrs for t in study.trials])
            assert SECRET not in stored
        assert SECRET not in text_local and SECRET not in text_tune
        assert "postgres:***@" in text_local
        assert _leaks(temp_dir) == [], "storage password found in Ray/Tune files"
