"""Processes that start together: several runs on a fresh, empty PostgreSQL / MariaDB database
(Optuna creates its tables when a storage opens), and several runs of one study name with
different search spaces (create-or-load and the space check happen under the study's lock).

Real processes throughout; the lightweight ones wait for a common start time so that they
really collide."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import losstune.storage as storage_pkg
from tests.conftest import tiny_study
from tests.storage_tests.servers import fresh_database, unique_name
from tests.studies_tests.ray_helpers import REPO, subprocess_env

optuna.logging.set_verbosity(optuna.logging.WARNING)

SERVERS = [pytest.param("postgres", marks=pytest.mark.postgres),
           pytest.param("mysql", marks=pytest.mark.mysql)]

OPEN_AT = """
import sys
import losstune.storage as storage_pkg
url = sys.argv[1]
print("ready", flush=True)
sys.stdin.readline()
try:
    storage_pkg.get_storage(url)
    print("ok")
except Exception as exc:
    print(f"FAIL {type(exc).__name__}: {exc}")
"""


def _together(code: str, args_per_process: list[list[str]], *, go: bool = False) -> list[str]:
    """Start one Python process per argument list; once every one has printed ``ready``
    (imports done), tell them all to go at once (``go``: send a start time 0.5 s ahead);
    returns what each printed after that."""
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO,
                              env=subprocess_env(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for args in args_per_process]
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "ready":
            for q in procs:
                q.kill()
            raise AssertionError(f"a process did not start: {line}{p.communicate()[0]}")
    message = f"{time.time() + 0.5}\n" if go else "go\n"  # go: a common start time
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(message)
        p.stdin.flush()
    return [p.communicate(timeout=300)[0].strip() for p in procs]


@pytest.mark.parametrize("kind", ["sqlite", *SERVERS])
def test_processes_opening_an_empty_database_together_all_succeed(kind: str,
                                                                  tmp_path: Path) -> None:
    for attempt in range(2):  # Optuna alone fails 2 of 3 such processes on most tries
        if kind == "sqlite":
            context: Any = contextlib.nullcontext(f"sqlite:///{tmp_path / f'{attempt}.db'}")
        else:
            context = fresh_database(kind)
        with context as url:
            outputs = _together(OPEN_AT, [[url]] * 3)
            assert outputs == ["ok"] * 3, outputs
            storage = storage_pkg.get_storage(url)  # the schema is complete and current
            assert storage.get_current_version() == storage.get_head_version()


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("mysql", marks=[pytest.mark.mysql,
                                                               pytest.mark.slow])])
def test_three_runs_on_an_empty_database_share_one_budget(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind) as url:
        path = tmp_path / "together.yaml"
        path.write_text(yaml.safe_dump(tiny_study(name="together", n_trials=4,
                                                  space={"train.epochs": 2})))
        cmd = [str(REPO / ".venv/bin/losstune"), "run", str(path), "--storage", url,
               "--no-progress"]
        procs = [subprocess.Popen(cmd, cwd=tmp_path, env=subprocess_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(3)]
        outputs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], "\n---\n".join(outputs)
        study = optuna.load_study(study_name="together", storage=storage_pkg.get_storage(url))
        states = [t.state for t in study.trials]
        assert states.count(TrialState.COMPLETE) == 4 and len(states) == 4
        assert sum("created study 'together'" in out for out in outputs) == 1


CREATE_AT = """
import json, sys, time
from losstune.studies import api
from losstune.studies.runner import StudyMismatchError, create_or_load
from tests.conftest import tiny_study
url, high, names = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(",")
specs = [api.study_from_dict(tiny_study(
    name=name, space={"train.epochs": 2, "train.lr": {"low": 0.01, "high": high}}))
    for name in names]
print("ready", flush=True)
start = float(sys.stdin.readline())
out = []
for i, (spec, text) in enumerate(specs):
    time.sleep(max(0.0, start + 1.0 * i - time.time()))  # round i starts for both at once
    try:
        out.append("created" if create_or_load(spec, text, url)[1] else "loaded")
    except StudyMismatchError:
        out.append("refused")
print(json.dumps(out))
"""


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("mysql", marks=pytest.mark.mysql)])
def test_same_name_different_spaces_started_together_one_is_refused(kind: str,
                                                                    tmp_path: Path) -> None:
    """Two processes create-or-load the same new study with different spaces at the same
    moment, 8 times: every time exactly one creates it and the other is refused."""
    names = [unique_name("race") for _ in range(8)]
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'race.db'}"
        storage_pkg.get_storage(url)
        context = None
    else:
        context = fresh_database(kind)
        url = context.__enter__()
    try:
        outputs = _together(CREATE_AT, [[url, "0.1", ",".join(names)],
                                        [url, "0.2", ",".join(names)]], go=True)
        rounds = list(zip(*[json.loads(o.splitlines()[-1]) for o in outputs], strict=True))
        assert all(sorted(r) == ["created", "refused"] for r in rounds), (rounds, outputs)
        storage = storage_pkg.get_storage(url)
        for name in names:  # and the stored space is the creator's, with one fingerprint
            study = optuna.load_study(study_name=name, storage=storage)
            assert "space_fingerprint" in study.user_attrs
    finally:
        if context is not None:
            context.__exit__(None, None, None)
