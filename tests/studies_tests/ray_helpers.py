"""A local Ray instance per test module, in its own temp dir, and study dicts for Ray tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import tiny_study

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "tests.studies_tests.fault_plugin"


def local_ray(num_cpus: int = 2) -> Iterator[Any]:
    """Start ``ray.init(address="local", num_cpus=...)`` in a fresh temp dir; shut it down."""
    from tests.conftest import require

    require(importlib.util.find_spec("ray") is not None, "ray (pip install -e '.[ray]')")
    import ray

    if ray.is_initialized():  # another module's instance must not leak into this one
        ray.shutdown()
    temp_dir = tempfile.mkdtemp(prefix="ltray-", dir="/tmp")  # short: Ray's socket paths
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp_dir,
             object_store_memory=200 * 1024 * 1024, logging_level="warning",
             log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        stop_leftovers(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def pids_using(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (a temp dir only our cluster uses)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append(int(entry.name))
    return found


def stop_leftovers(marker: str, timeout: float = 10.0) -> None:
    """Terminate, then kill, the processes of a Ray instance we started (by its temp dir)."""
    deadline = time.monotonic() + timeout
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = pids_using(marker)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        while pids_using(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids_using(marker):
            return


def probe_study(**overrides: Any) -> dict[str, Any]:
    """A tiny study on the probe plugin loss (faults and delays set through its knobs)."""
    space = {"train.epochs": 3, "train.lr": 0.05, "loss.probe.fault": "ok",
             "loss.probe.delay": 0.0}
    space.update(overrides.pop("space", {}))
    study = tiny_study(plugins=[PLUGIN], loss={"choices": ["probe"], "baseline": False},
                       space=space, storage_options={"heartbeat_interval": 1,
                                                     "grace_period": 3})
    study.update(overrides)
    return study


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``losstune`` subprocesses: the repo importable (for the test plugin)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def running_trial_with_worker(db: Path) -> int | None:
    """The number of a RUNNING trial that has started training (its ``worker`` attribute is
    set), read with plain read-only SQL: a poller must not race the run that creates the
    tables of a fresh SQLite file."""
    import sqlite3

    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute(
                "SELECT t.number FROM trials t JOIN trial_user_attributes a "
                "ON a.trial_id = t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'worker' "
                "ORDER BY t.number LIMIT 1").fetchone()
        finally:
            con.close()
    except sqlite3.Error:  # tables not there yet
        return None
    return None if row is None else int(row[0])
