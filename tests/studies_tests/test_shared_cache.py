"""The embedding cache is shared by every worker process on a machine: when several processes
need the same entry at the same moment, it is computed once and the others read it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.studies_tests.ray_helpers import REPO, subprocess_env

N_PROCESSES = 4

# Waits for the start file (all processes are importing at once before it), then asks the cache.
_WORKER = r"""
import json, os, sys, time
from pathlib import Path
start, marker, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
import numpy as np
from losstune.objectives import cache
if mode == "real":
    from losstune.objectives.config import TrialConfig
    from losstune.objectives.training import prepare_data
    from tests.conftest import tiny_study
while not start.exists():
    time.sleep(0.01)
began = time.time()
if mode == "slow":
    def compute():
        with marker.open("a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # all others arrive while this one encodes
        return {"x": np.arange(1000, dtype=np.float32) * 2}
    arrays = cache.cached_arrays("probe", {"what": "shared-cache-test"}, compute)
    digest = float(np.asarray(arrays["x"]).sum())
else:
    study = tiny_study()
    config = TrialConfig.model_validate({
        "data": study["data"], "encoder": study["encoder"], "model": {"head": "linear"},
        "loss": {"terms": [{"name": "ce"}]}, "train": {"epochs": 1}})
    data = prepare_data(config)
    digest = float(sum(float(v["embeddings"].sum()) for v in data.inputs.values()))
print(json.dumps({"began": began, "misses": cache.STATS.misses, "hits": cache.STATS.hits,
                  "digest": digest}))
"""


def _run_at_once(tmp_path: Path, mode: str) -> list[dict]:
    start = tmp_path / f"start-{mode}"
    marker = tmp_path / f"computed-{mode}"
    env = subprocess_env(LOSSTUNE_CACHE=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(start), str(marker), mode],
                              cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(N_PROCESSES)]
    time.sleep(0.5)
    start.touch()
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


def test_concurrent_first_use_computes_once(tmp_path: Path) -> None:
    outs = _run_at_once(tmp_path, "slow")
    computed = (tmp_path / "computed-slow").read_text().split()
    assert len(computed) == 1  # one process computed ...
    assert sum(o["misses"] for o in outs) == 1 and sum(o["hits"] for o in outs) == 3
    assert len({o["digest"] for o in outs}) == 1  # ... and every process got its arrays
    began = [o["began"] for o in outs]
    assert max(began) - min(began) < 1.0  # they really asked while the first was computing
    entries = list((tmp_path / "cache" / "probe").iterdir())
    assert [e.name for e in entries if e.is_dir() and e.name.startswith(".tmp-")] == []


@pytest.mark.slow  # four processes importing torch: ~25 s on two cores
def test_workers_preparing_the_same_data_encode_each_split_once(tmp_path: Path) -> None:
    outs = _run_at_once(tmp_path, "real")
    # train, val and test: three entries, encoded once in all processes together
    assert sum(o["misses"] for o in outs) == 3
    assert all(o["misses"] + o["hits"] == 3 for o in outs)
    assert len({o["digest"] for o in outs}) == 1
