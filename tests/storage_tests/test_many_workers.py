"""Several worker processes on one PostgreSQL study, directly and through
``losstune storage-proxy``: the exact budget, the connections each process holds, the budget
lock shared between direct and proxied clients, and heartbeats through the proxy (a SIGKILLed
worker's trial is failed and retried). The workers are ``benchmarks/many_workers.py``'s
(losstune's budget loop on a synthetic objective that sleeps instead of training)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

import losstune.storage as storage_pkg
from tests.storage_tests.servers import require_postgres, unique_name
from tests.studies_tests.ray_helpers import REPO, subprocess_env

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.postgres


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("many_workers",
                                                  REPO / "benchmarks" / "many_workers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


many_workers = _bench()


@pytest.fixture
def pg() -> str:
    return require_postgres()


@pytest.fixture
def proxy(pg: str) -> Iterator[tuple[subprocess.Popen, str]]:
    from tests.conftest import require

    require(importlib.util.find_spec("grpc") is not None, "grpcio (pip install -e '.[grpc]')")
    proc, url = many_workers.start_proxy(pg)
    try:
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        storage_pkg.close_storage(url)


def _study(pg: str) -> str:
    name = unique_name("many")
    many_workers.new_study(pg, name)
    return name


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _intact(trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Every finished trial kept its reports and attributes (the median pruner may stop some
    early: those have their reports up to that epoch and the config/worker attributes)."""
    return all(
        (len(t.intermediate_values) == 5 and len(t.user_attrs) == 27)
        if t.state == TrialState.COMPLETE
        else (t.intermediate_values and set(t.user_attrs) == {"config", "worker"})
        for t in trials if t.state in FINISHED)


def _outcome(pg: str, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = storage_pkg.get_storage(pg)
    trials = optuna.load_study(study_name=name, storage=storage).trials
    optuna.delete_study(study_name=name, storage=storage)
    return trials


def test_direct_workers_meet_the_budget_within_their_connection_bound(pg: str) -> None:
    name = _study(pg)
    procs = many_workers.run_workers(pg, name, workers=3, n_trials=9, trial_seconds=0.3,
                                     epochs=5)
    pids = {p.pid for p in procs}
    with many_workers.ConnectionSampler(pg, pids=pids) as sampler:
        many_workers.go(procs)
        results = many_workers.finish(procs)
    trials = _outcome(pg, name)
    assert len(trials) == 9 and all(t.state in FINISHED for t in trials)
    assert sum(r["started"] for r in results) == 9 and _intact(trials)
    # each worker holds at most POOL_SIZE connections (+1 for a moment while it first opens
    # the database, which happened before the sampling started)
    assert sampler.seen == pids, "the sampler saw no connection of some worker"
    assert 1 <= sampler.max_per_process <= storage_pkg.POOL_SIZE


def test_proxied_workers_meet_the_budget_without_database_connections(
        pg: str, proxy: tuple[subprocess.Popen, str]) -> None:
    proc, url = proxy
    name = _study(pg)
    procs = many_workers.run_workers(url, name, workers=3, n_trials=9, trial_seconds=0.3,
                                     epochs=5)
    with many_workers.ConnectionSampler(pg, pids={p.pid for p in procs} | {proc.pid}) \
            as sampler:
        many_workers.go(procs)
        many_workers.finish(procs)
    trials = _outcome(pg, name)
    assert len(trials) == 9 and all(t.state in FINISHED for t in trials) and _intact(trials)
    assert sampler.seen == {proc.pid}  # only the proxy talks to PostgreSQL
    # its pool (storage-proxy --pool-size, default 8) and one for the study lock it holds
    assert sampler.max_per_process <= 8 + 1


def test_budget_lock_through_the_proxy_is_the_database_lock(
        pg: str, proxy: tuple[subprocess.Popen, str]) -> None:
    _, url = proxy
    name = unique_name("lock")
    inside: list[tuple[str, float, float]] = []

    def hold(target: str, tag: str) -> None:
        with storage_pkg.budget_lock(target, name):
            start = time.monotonic()
            time.sleep(0.5)
            inside.append((tag, start, time.monotonic()))

    threads = [threading.Thread(target=hold, args=(target, tag))
               for target, tag in ((url, "proxy-a"), (pg, "direct"), (url, "proxy-b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    spans = sorted(inside, key=lambda x: x[1])
    assert len(spans) == 3
    for (_, _, end), (_, start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end - 0.01, f"two holders at once: {spans}"


HOLDER = """
import sys, time
import losstune.storage as storage_pkg
with storage_pkg.budget_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_lock_holder_that_dies_releases_the_lock(
        pg: str, proxy: tuple[subprocess.Popen, str]) -> None:
    _, url = proxy
    name = unique_name("lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, name], cwd=REPO,
                              env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    got = threading.Event()

    def take() -> None:
        with storage_pkg.budget_lock(url, name):
            got.set()

    waiter = threading.Thread(target=take, daemon=True)
    waiter.start()
    assert not got.wait(1.0)  # held by the other process
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert got.wait(30), "the proxy kept the lock of a dead client"


def test_heartbeats_through_the_proxy_fail_and_retry_a_killed_workers_trial(
        pg: str, proxy: tuple[subprocess.Popen, str]) -> None:
    _, url = proxy
    name = _study(pg)
    procs = many_workers.run_workers(url, name, workers=3, n_trials=6, trial_seconds=3.0,
                                     epochs=6, heartbeat_interval=1, grace_period=3,
                                     wait_running=True)
    many_workers.go(procs)
    reader = storage_pkg.get_storage(pg)
    deadline = time.monotonic() + 60
    victim = procs[0]
    while time.monotonic() < deadline:  # wait until the victim's trial has started
        running = optuna.load_study(study_name=name, storage=reader).get_trials(
            states=(TrialState.RUNNING,))
        if any(t.user_attrs.get("worker") == f"bench:{victim.pid}" for t in running):
            break
        time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    many_workers.finish(procs[1:])
    trials = _outcome(pg, name)
    states = [t.state for t in trials]
    assert sum(s in FINISHED for s in states) == 6 and states.count(TrialState.RUNNING) == 0
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["worker"] == f"bench:{victim.pid}"
    retries = [t for t in trials
               if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == failed[0].number]
    assert len(retries) == 1 and retries[0].state in FINISHED
    assert retries[0].params == failed[0].params
