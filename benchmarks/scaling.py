"""Scaling of the Ray launchers and the storage cost of a trial, from one run.

On the quickstart objective (full R8, cached all-MiniLM-L6-v2 features, linear head; CE loss,
learning rate and the other settings searched, epochs and batch size fixed so that every trial
does the same work, no pruning, ``train.threads: 1`` per worker) it measures:

* **launchers**: trials per minute with ``--launcher ray`` and 1 worker, ``--launcher ray`` and
  2 workers, and ``--launcher ray-tune`` with 2 concurrent trials, each on a fresh study
  (PostgreSQL; ``--launcher-storage sqlite`` for an SQLite file). One local Ray instance
  (``num_cpus`` = the machine's cores) serves every run, and a
  short 2-worker warm-up run first loads the worker processes (imports, cached features), so
  the figures compare steady states. Trials/min is counted over the window from the first
  trial's start to the last trial's end (from the storage); the wall time of each whole run is
  printed beside it.
* **storage**: milliseconds of storage work per trial on in-memory, SQLite and PostgreSQL
  storage: what ``run_worker`` and the objective do to the storage for one trial (claim under
  the budget lock, count states, sample the space, ``config``/``worker`` attributes, one report
  and pruning check per epoch, the result's user attributes, tell), with training left out.
  The attributes are those of a real quickstart trial. Each backend runs twice in one process:
  ``plain`` (Optuna's ``RDBStorage`` as it comes: a transaction per report and attribute, the
  pruner asked every epoch) and ``losstune`` (its storage: buffered reports, attributes in one
  transaction, parameters written with the first of them, cheap commits, two-SELECT reads
  without a transaction on servers, the stale-trial check once per heartbeat interval, the
  paced pruner); the reports and pruning checks replay the recorded trial's epoch time on a
  clock of their own, so that the report buffer and the paced pruner act as during training.
  Beside the milliseconds it prints the SQL statements and commits per trial: round trips,
  which a busy shared machine does not change.

Usage::

    LOSSTUNE_CACHE=/tmp/lt-cache python benchmarks/scaling.py [--trials 16] [--epochs 20]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--storage-trials 40]
        [--launcher-storage sqlite|URL] [--skip-tune] [--storage-only] [--epoch-seconds S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "studies" / "configs" / "quickstart.yaml"


def quickstart_study(name: str, n_trials: int, epochs: int) -> dict[str, Any]:
    study = yaml.safe_load(QUICKSTART.read_text())
    # one loss, fixed epochs and batch size: every trial does the same work (and none ends
    # early on a NaN loss, as a focal trial with a high learning rate can)
    study.update(name=name, n_trials=n_trials, pruner={"name": "none"},
                 train={"threads": 1}, loss={"choices": ["ce"], "baseline": False})
    space = {k: v for k, v in study.get("space", {}).items() if not k.startswith("loss.")}
    study["space"] = dict(space, **{"train.epochs": epochs, "train.batch_size": 64})
    return study


def _quiet_console() -> Any:
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=200)


def run_launcher(label: str, launcher: str, workers: int, url: str, n_trials: int,
                 epochs: int) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    from losstune.storage import get_storage
    from losstune.studies import api

    name = f"bench_scaling_{uuid.uuid4().hex[:8]}"
    spec, text = api.study_from_dict(quickstart_study(name, n_trials, epochs))
    t0 = time.perf_counter()
    summary = api.run_study(spec, study_text=text, storage=url, launcher=launcher,
                            workers=workers, progress=False, console=_quiet_console())
    wall = time.perf_counter() - t0
    storage = get_storage(url)
    trials = optuna.load_study(study_name=name, storage=storage).trials
    optuna.delete_study(study_name=name, storage=storage)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    window = (last - first).total_seconds()
    durations = [t.duration.total_seconds() for t in done]
    train = [float(t.user_attrs.get("train_seconds", 0.0)) for t in done]
    return {
        "label": label, "workers": workers, "trials": summary.finished, "wall_s": wall,
        "window_s": window, "per_min": 60.0 * len(done) / window,
        "trial_s": statistics.fmean(durations), "train_s": statistics.fmean(train),
        "failed": summary.failed,
    }


class _Fixed:
    """Stands in for a trial: every suggestion returns the range's low end (for one config)."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return choices[0]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return low

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return low


def real_trial_record(epochs: int) -> tuple[dict[str, Any], dict[str, Any], list[float], Any,
                                            float]:
    """Config, user attributes, validation curve and seconds per epoch of one real quickstart
    trial (to replay its writes)."""
    from losstune.objectives.objective import config_attribute, result_attributes
    from losstune.objectives.training import run_trial
    from losstune.studies import api

    spec, _ = api.study_from_dict(quickstart_study("bench_record", 1, epochs))
    space = spec.compile_space()
    config = space.to_config(space.sample(_Fixed()), spec.template())
    result = run_trial(config)
    attrs = result_attributes(result)
    curve = list(result.curves[f"val_{result.metric_names[0]}"])
    return config_attribute(config), attrs, curve, space, result.train_seconds / len(curve)


class _Clock:
    """A clock the benchmark advances by a real trial's epoch time at every report, so that
    the paced pruner and the report buffer act as they would during training."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def storage_cost(url: str, n: int, config_attr: dict[str, Any], attrs: dict[str, Any],
                 curve: list[float], space: Any, *, epoch_seconds: float,
                 mode: str = "losstune") -> dict[str, Any]:
    """Milliseconds per trial of the storage work of one losstune trial (no training).

    ``mode="losstune"``: losstune's storage (buffered reports, attributes in one transaction,
    cheap commits, paced pruner); ``mode="plain"``: Optuna's ``RDBStorage`` as it comes, one
    transaction per attribute and per report, the pruner asked at every epoch (what losstune
    did before).
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    import losstune.storage as storage_pkg
    from losstune.studies.runner import PacedPruner, count_states, counted_failures

    name = f"bench_storage_{uuid.uuid4().hex[:8]}"
    clock = _Clock()
    if mode == "plain" and url != "memory":
        with storage_pkg.quiet_experimental():
            st = RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=20,
                            grace_period=60,
                            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(3))
        pruner: Any = optuna.pruners.MedianPruner()
    else:
        st = storage_pkg.get_storage(url)
        if hasattr(st, "clock"):
            st.clock = clock
        pruner = PacedPruner(optuna.pruners.MedianPruner(), clock=clock)
    study = optuna.create_study(study_name=name, storage=st, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0), pruner=pruner)
    value = max(curve)

    def set_attrs(trial: optuna.Trial, values: dict[str, Any]) -> None:
        if mode == "plain":
            for key, v in values.items():
                trial.set_user_attr(key, v)
        else:
            storage_pkg.set_user_attrs(trial, values)

    def objective(trial: optuna.Trial) -> float:
        space.sample(trial)
        set_attrs(trial, {"config": config_attr, "worker": f"bench:{os.getpid()}"})
        for epoch, v in enumerate(curve):
            clock.now += epoch_seconds
            trial.report(v, epoch)
            trial.should_prune()
        set_attrs(trial, attrs)
        return value

    statements, commits = _count_round_trips(st)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with storage_pkg.budget_lock(url, name):
            trials = study.get_trials(deepcopy=False)  # one read, as the worker loop does
            count_states(study, trials)
            counted_failures(study, trials)
            study.optimize(objective, n_trials=1, gc_after_trial=False)
        times.append(time.perf_counter() - t0)
    states = {t.state for t in study.trials}
    assert states == {optuna.trial.TrialState.COMPLETE}, states
    assert all(len(t.intermediate_values) == len(curve) and len(t.user_attrs) == len(attrs) + 2
               for t in study.trials), "a trial lost reports or attributes"
    if url != "memory":
        optuna.delete_study(study_name=name, storage=st)
    return {"backend": storage_pkg.backend_of(url), "mode": mode,
            "ms": 1000 * statistics.fmean(times), "ms_median": 1000 * statistics.median(times),
            "n": n, "statements": statements[0] / n if statements else None,
            "commits": commits[0] / n if commits else None}


def _count_round_trips(storage: Any) -> tuple[list[int], list[int]]:
    """Counters of the SQL statements and commits the storage's engine runs from now on (each
    a round trip to a database server; the same on a busy machine as on a quiet one)."""
    import sqlalchemy

    engine = getattr(storage, "engine", None)
    if engine is None:
        return [], []
    statements, commits = [0], [0]

    def on_statement(*_: Any) -> None:
        statements[0] += 1

    def on_commit(*_: Any) -> None:
        commits[0] += 1

    sqlalchemy.event.listen(engine, "after_cursor_execute", on_statement)
    sqlalchemy.event.listen(engine, "commit", on_commit)
    return statements, commits


def storage_table(urls: list[str], n: int, epochs: int, trial_s: float | None,
                  epoch_seconds: float | None = None) -> None:
    """Print the storage work per trial of losstune's storage next to plain Optuna's."""
    config_attr, attrs, curve, space, measured = real_trial_record(epochs)
    epoch_seconds = epoch_seconds or measured
    costs = []
    for u in urls:
        for mode in ("plain", "losstune"):
            if u == "memory" and mode == "plain":
                continue
            costs.append(storage_cost(u, n, config_attr, attrs, curve, space,
                                      epoch_seconds=epoch_seconds, mode=mode))
    mem = costs[0]["ms"]
    plain = {c["backend"]: c["ms"] for c in costs if c["mode"] == "plain"}
    print(f"\nstorage work per trial ({len(attrs) + 2} user attributes, {len(curve)} reports of "
          f"{epoch_seconds:.3f} s epochs; no training; {n} trials each)")
    print(f"{'storage':<11} {'mode':<9} {'ms/trial':>9} {'median':>7} {'vs memory':>9} "
          f"{'vs plain':>8} {'statements':>10} {'commits':>7}"
          + (f" {'% of a trial':>12}" if trial_s else ""))
    for c in costs:
        ratio = plain.get(c["backend"], c["ms"]) / c["ms"]
        counts = (f" {c['statements']:>10.1f} {c['commits']:>7.1f}" if c["statements"] is not None
                  else f" {'-':>10} {'-':>7}")
        print(f"{c['backend']:<11} {c['mode']:<9} {c['ms']:>9.1f} {c['ms_median']:>7.1f} "
              f"{c['ms'] / mem:>8.1f}x {ratio:>7.1f}x" + counts
              + (f" {100 * c['ms'] / 1000 / trial_s:>11.1f}%" if trial_s else ""))
    print("statements and commits per trial are round trips to the database (commits: "
          "transactions); on a server database each costs the network and wake-up latency of "
          "the machine, however quiet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--postgres", default=os.environ.get(
        "LOSSTUNE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--launcher-storage", default=None,
                        help="storage URL of the launcher runs (default: --postgres)")
    parser.add_argument("--storage-trials", type=int, default=40)
    parser.add_argument("--skip-tune", action="store_true")
    parser.add_argument("--storage-only", action="store_true",
                        help="only the storage table (no Ray launcher runs)")
    parser.add_argument("--epoch-seconds", type=float, default=None,
                        help="epoch time replayed in the storage table (default: the recorded "
                             "trial's; a busy machine trains slower)")
    args = parser.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cores = os.cpu_count() or 1
    print(f"machine: {cores} CPU cores; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"quickstart objective: R8, MiniLM features (cache {os.environ.get('LOSSTUNE_CACHE')}),"
          f" linear head, CE, {args.epochs} epochs, batch 64, 1 torch thread per worker,"
          " no pruning")
    rows = [] if args.storage_only else launcher_rows(args, cores)
    with tempfile.TemporaryDirectory(prefix="ltbench-") as d:
        storage_table(["memory", f"sqlite:///{Path(d) / 'bench.db'}", args.postgres],
                      args.storage_trials, args.epochs, rows[0]["trial_s"] if rows else None,
                      args.epoch_seconds)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def launcher_rows(args: argparse.Namespace, cores: int) -> list[dict[str, Any]]:
    """Run the launchers and print their table."""
    import ray

    with tempfile.TemporaryDirectory(prefix="ltbench-", dir="/tmp") as temp_dir:
        url = args.launcher_storage or args.postgres
        if url == "sqlite":
            url = f"sqlite:///{Path(temp_dir) / 'launchers.db'}"
        ray.init(address="local", num_cpus=cores, include_dashboard=False,
                 _temp_dir=temp_dir, logging_level="warning", log_to_driver=False)
        try:
            run_launcher("warm-up", "ray", 2, url, 2, 2)
            rows = [run_launcher("ray", "ray", 1, url, args.trials, args.epochs),
                    run_launcher("ray", "ray", 2, url, args.trials, args.epochs)]
            if not args.skip_tune:
                rows.append(run_launcher("ray-tune", "ray-tune", 2, url, args.trials,
                                         args.epochs))
        finally:
            ray.shutdown()

    base = rows[0]["per_min"]
    from losstune.storage import backend_of

    print(f"\nlaunchers ({backend_of(url)} storage)")
    print(f"{'launcher':<10} {'workers':>7} {'trials':>6} {'wall s':>7} {'window s':>8} "
          f"{'trials/min':>10} {'vs ray x1':>9} {'s/trial':>7} {'train s':>7}")
    for r in rows:
        print(f"{r['label']:<10} {r['workers']:>7} {r['trials']:>6} {r['wall_s']:>7.1f} "
              f"{r['window_s']:>8.1f} {r['per_min']:>10.1f} {r['per_min'] / base:>8.2f}x "
              f"{r['trial_s']:>7.2f} {r['train_s']:>7.2f}")
    return rows


if __name__ == "__main__":
    main()
