"""How much slower is ``losstune train`` on a machine busy with other jobs?

It exports one trial of the quickstart study (``losstune run studies/configs/quickstart.yaml
--n-trials 1``: its baseline CE trial on full R8 with cached MiniLM features; the study runs
with the default thread count, which its config records) and times the replay, each a fresh
process, quiet and while one busy Python process per usable core loads the machine:

* ``default``: ``losstune train best.yaml`` as shipped now (the recorded thread count: one for
  the quickstart's linear head; OpenMP threads that sleep when idle, ``OMP_WAIT_POLICY=PASSIVE``
  set by the CLI);
* ``old``: the replay as ``losstune train`` ran it before: ``api.train_config`` with the
  formerly pinned ``threads: 2`` and OpenMP's default wait policy (idle threads spin first);
* ``one thread``: ``losstune train best.yaml --threads 1`` (not bit-exact, for reference).

It prints the seconds of each run, the 1-minute load average just before it (other jobs on a
shared machine make "quiet" less quiet: the ratios are only as clean as that number is low), and
the ratios loaded / quiet and old / default from this one run. Target: loaded <= 2x quiet with
the default.

Usage: ``python benchmarks/train_under_load.py [--config best.yaml] [--cases default,old,one]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def losstune(*args: str, env: dict[str, str] | None = None) -> float:
    """Seconds one ``losstune ARGS`` command takes (it must succeed)."""
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "losstune"), *args], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise SystemExit(f"losstune {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def old_replay(config: Path) -> float:
    """The replay as ``losstune train`` ran it before this change: the config's pinned two
    threads, no OMP_WAIT_POLICY in the environment."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = ("import os; os.environ.setdefault('HF_HUB_OFFLINE', '1')\n"
            "from losstune.studies import api\n"
            f"api.train_config({str(config)!r}, threads=2)\n")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def busy_processes(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` CPU-bound Python processes (one per core), standing in for other jobs."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None,
                        help="an exported config (default: export one quickstart trial)")
    parser.add_argument("--cases", default="default,old,one",
                        help="comma-separated: default, old, one")
    args = parser.parse_args()

    from losstune.objectives.config import usable_cores

    cores = usable_cores()
    tmp = Path(tempfile.mkdtemp(prefix="losstune-load-"))
    config = args.config
    if config is None:
        url = f"sqlite:///{tmp / 'bench.db'}"
        losstune("run", str(ROOT / "studies/configs/quickstart.yaml"), "--n-trials", "1",
                 "--storage", url, "--no-progress")
        config = tmp / "best.yaml"
        losstune("export", "quickstart", "-o", str(config), "--storage", url)
    import yaml

    recorded = yaml.safe_load(config.read_text())["config"]["train"].get("threads")
    cases = {
        "default": lambda: losstune("train", str(config), "--no-progress"),
        "old": lambda: old_replay(config),
        "one": lambda: losstune("train", str(config), "--no-progress", "--threads", "1"),
    }
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    print(f"{cores} usable core(s); config {config} records train.threads={recorded}; load: "
          f"{cores} busy process(es)")
    results: dict[str, tuple[float, float]] = {}
    for name in chosen:
        load_before = os.getloadavg()[0]
        quiet = cases[name]()
        load = busy_processes(cores)
        try:
            time.sleep(1.0)
            load_during = os.getloadavg()[0]
            loaded = cases[name]()
        finally:
            for p in load:
                p.kill()
            for p in load:
                p.wait()
        results[name] = (quiet, loaded)
        print(f"{name:>8}: quiet {quiet:6.1f}s (load avg before {load_before:.1f})  loaded "
              f"{loaded:6.1f}s (load avg before {load_during:.1f})  loaded/quiet "
              f"{loaded / quiet:5.2f}x", flush=True)
    if "default" in results:
        quiet, loaded = results["default"]
        verdict = "meets" if loaded <= 2 * quiet else "misses"
        print(f"default: loaded/quiet {loaded / quiet:.2f}x ({verdict} the <= 2x target)")
    if "default" in results and "old" in results:
        print(f"old / default: quiet {results['old'][0] / results['default'][0]:.2f}x, "
              f"loaded {results['old'][1] / results['default'][1]:.2f}x")


if __name__ == "__main__":
    main()
