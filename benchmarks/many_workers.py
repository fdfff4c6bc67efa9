"""Many workers on one PostgreSQL database, directly and through ``losstune storage-proxy``.

Each worker is its own process running losstune's budget loop
(:func:`losstune.studies.runner.worker_loop`: claim under the budget lock, heartbeat, buffered
reports, attributes in one transaction, paced median pruner) on a synthetic objective: it
samples three parameters, writes the ``config``/``worker`` attributes, "trains" ``--epochs``
epochs by sleeping ``--trial-seconds`` in all (no CPU, so 32 workers fit on 2 cores) with a
report and a pruning check per epoch, then writes 25 result attributes. For each number of
workers and each path (``direct``: every worker connects to PostgreSQL; ``proxy``: every worker
talks gRPC to one ``losstune storage-proxy`` process) it prints:

* the exact budget: finished trials == ``n_trials``, none FAIL, none left RUNNING;
* trials/s over the window from the first trial's start to the last trial's end;
* storage ms per trial: a worker's wall time per trial (lock wait, storage work) minus the
  sleep, i.e. what a trial costs beyond its training;
* PostgreSQL connections: the most held at once by all losstune processes together and by one
  process (sampled from ``pg_stat_activity`` every 50 ms; losstune names its connections
  ``losstune:PID``).

and writes ``benchmarks/figures/many_workers.png`` (trials/s, storage ms per trial and
connections against workers, direct vs proxy).

Usage::

    python benchmarks/many_workers.py [--workers 1 2 4 8 16 32] [--trials-per-worker 6]
        [--trial-seconds 0.5] [--epochs 10] [--postgres postgresql://postgres@127.0.0.1/test]
        [--paths direct proxy] [--figure benchmarks/figures/many_workers.png] [--replot]

The rows are saved beside the figure (``many_workers.json``); ``--replot`` redraws from them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# ---------------------------------------------------------------------- one worker process
def synthetic_attrs(epochs: int) -> dict[str, Any]:
    """25 attributes shaped like a real trial's (metrics, terms, curves, per-class F1)."""
    attrs: dict[str, Any] = {}
    for split in ("val", "test"):
        for m in ("accuracy", "micro_f1", "macro_f1", "weighted_f1", "head_macro_f1",
                  "tail_macro_f1"):
            attrs[f"metric.{split}.{m}"] = 0.9
    attrs["term.ce"] = 0.1
    attrs["term.triplet"] = 0.2
    for curve in ("train_loss", "val_loss", "val_macro_f1", "term_ce"):
        attrs[f"curve.{curve}"] = [0.5] * epochs
    attrs["per_class_f1.val"] = {f"class{i}": 0.9 for i in range(8)}
    attrs["per_class_f1.test"] = {f"class{i}": 0.9 for i in range(8)}
    attrs.update(best_epoch=epochs - 1, epochs_run=epochs, prediction_rule="argmax",
                 train_seconds=1.0, device="cpu")
    assert len(attrs) == 25
    return attrs


def worker_main(args: argparse.Namespace) -> None:
    """A worker: open the storage, say ``ready``, wait for ``go`` on stdin, run the loop."""
    import optuna

    import losstune.storage as storage_pkg
    from losstune.studies.runner import PacedPruner, worker_loop

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = storage_pkg.StorageSettings(heartbeat_interval=args.heartbeat_interval,
                                           grace_period=args.grace_period)
    storage = storage_pkg.get_storage(args.storage, settings)
    study = optuna.load_study(study_name=args.study, storage=storage,
                              sampler=optuna.samplers.RandomSampler(seed=os.getpid()),
                              pruner=PacedPruner(optuna.pruners.MedianPruner()))
    attrs = synthetic_attrs(args.epochs)
    epoch_s = args.trial_seconds / args.epochs
    slept: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("train.lr", 1e-3, 1e-1, log=True)
        trial.suggest_float("train.weight_decay", 0.0, 0.1)
        trial.suggest_categorical("loss.name", ["ce", "bce", "focal"])
        storage_pkg.set_user_attrs(trial, {"config": {"lr": x}, "worker": f"bench:{os.getpid()}"})
        for epoch in range(args.epochs):
            time.sleep(epoch_s)
            slept.append(epoch_s)
            trial.report(x, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        storage_pkg.set_user_attrs(trial, attrs)
        return x

    print("ready", flush=True)
    sys.stdin.readline()  # "go": every worker starts at once
    t0 = time.perf_counter()
    result = worker_loop(study, args.storage, objective, n_trials=args.n_trials,
                         max_failures=10, wait_running=args.wait_running)
    wall = time.perf_counter() - t0
    print(json.dumps({"pid": os.getpid(), "started": result["started"], "wall": wall,
                      "slept": sum(slept)}), flush=True)


# ---------------------------------------------------------------------- the driver
class ConnectionSampler:
    """Samples losstune's connections in ``pg_stat_activity`` (per process and in total) of
    the processes ``pids`` (losstune names its PostgreSQL connections ``losstune:PID``)."""

    def __init__(self, url: str, *, pids: set[int]) -> None:
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.pids = pids
        self.seen: set[int] = set()
        self.max_total = 0
        self.max_per_process = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import sqlalchemy

        query = sqlalchemy.text(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE application_name LIKE 'losstune:%' GROUP BY application_name")
        with self.engine.connect() as con:
            while not self._stop.is_set():
                rows = [(int(app.split(":", 1)[1]), n) for app, n in con.execute(query).all()]
                con.commit()
                rows = [(pid, n) for pid, n in rows if pid in self.pids]
                if rows:
                    self.seen.update(pid for pid, _ in rows)
                    self.max_total = max(self.max_total, sum(n for _, n in rows))
                    self.max_per_process = max(self.max_per_process, max(n for _, n in rows))
                time.sleep(0.05)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.engine.dispose()


def start_proxy(database: str) -> tuple[subprocess.Popen, str]:
    """``losstune storage-proxy`` on a free port; returns the process and its grpc:// URL."""
    proc = subprocess.Popen(
        [str(Path(PYTHON).parent / "losstune"), "storage-proxy", "--storage", database,
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"grpc://[^\s]+:(\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"storage-proxy did not start: {line}{proc.stdout.read()}")
    return proc, f"grpc://127.0.0.1:{match.group(1)}"


def run_workers(storage: str, study: str, *, workers: int, n_trials: int, trial_seconds: float,
                epochs: int, heartbeat_interval: int = 20, grace_period: int = 60,
                wait_running: bool = False) -> list[subprocess.Popen]:
    """Start ``workers`` worker processes and wait until every one is ready (not started)."""
    cmd = [PYTHON, str(Path(__file__).resolve()), "--worker", "--storage", storage,
           "--study", study, "--n-trials", str(n_trials), "--trial-seconds", str(trial_seconds),
           "--epochs", str(epochs), "--heartbeat-interval", str(heartbeat_interval),
           "--grace-period", str(grace_period)] + (["--wait-running"] if wait_running else [])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(workers)]
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "ready":
            for q in procs:
                q.kill()
            raise RuntimeError(f"a worker did not start: {line!r}")
    return procs


def go(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()


def finish(procs: list[subprocess.Popen], timeout: float = 600) -> list[dict[str, Any]]:
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"worker {p.pid} exited {p.returncode}: {stdout[-2000:]}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def new_study(database: str, name: str) -> None:
    import optuna

    import losstune.storage as storage_pkg

    optuna.create_study(study_name=name, storage=storage_pkg.get_storage(database),
                        direction="maximize")


def study_outcome(database: str, name: str) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    import losstune.storage as storage_pkg

    storage = storage_pkg.get_storage(database)
    trials = optuna.load_study(study_name=name, storage=storage).trials
    optuna.delete_study(study_name=name, storage=storage)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    window = (max(t.datetime_complete for t in done)
              - min(t.datetime_start for t in done)).total_seconds()
    return {"finished": len(done), "failed": sum(t.state == TrialState.FAIL for t in trials),
            "unfinished": sum(not t.state.is_finished() for t in trials),
            "numbers_unique": len({t.number for t in trials}) == len(trials),
            "window": window}


def measure(path: str, database: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    name = f"bench_many_{uuid.uuid4().hex[:8]}"
    n_trials = args.trials_per_worker * workers
    new_study(database, name)
    proxy = None
    storage = database
    if path == "proxy":
        proxy, storage = start_proxy(database)
    try:
        procs = run_workers(storage, name, workers=workers, n_trials=n_trials,
                            trial_seconds=args.trial_seconds, epochs=args.epochs)
        pids = {p.pid for p in procs} | ({proxy.pid} if proxy is not None else set())
        with ConnectionSampler(database, pids=pids) as sampler:
            go(procs)
            results = finish(procs)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=30)
    outcome = study_outcome(database, name)
    started = sum(r["started"] for r in results)
    overhead = sum(r["wall"] - r["slept"] for r in results) / max(started, 1)
    return {"path": path, "workers": workers, "n_trials": n_trials, **outcome,
            "trials_per_s": outcome["finished"] / outcome["window"],
            "storage_ms": 1000 * overhead,
            "max_connections": sampler.max_total, "max_per_process": sampler.max_per_process,
            "exact": outcome["finished"] == n_trials and outcome["failed"] == 0
            and outcome["unfinished"] == 0 and outcome["numbers_unique"]}


def figure(rows: list[dict[str, Any]], path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for p, style in (("direct", "o-"), ("proxy", "s--")):
        sel = [r for r in rows if r["path"] == p]
        if not sel:
            continue
        w = [r["workers"] for r in sel]
        label = "direct PostgreSQL" if p == "direct" else "through storage-proxy"
        axes[0].plot(w, [r["trials_per_s"] for r in sel], style, label=label)
        axes[1].plot(w, [r["storage_ms"] for r in sel], style, label=label)
        axes[2].plot(w, [r["max_connections"] for r in sel], style, label=label)
    ideal = [(w, w / args.trial_seconds) for w in sorted({r["workers"] for r in rows})]
    axes[0].plot([w for w, _ in ideal], [v for _, v in ideal], ":", color="grey",
                 label="no storage cost")
    axes[0].set(title="throughput", xlabel="workers", ylabel="trials / s")
    axes[1].set(title="cost per trial beyond training", xlabel="workers",
                ylabel="ms per trial (lock wait + storage)")
    axes[2].set(title="PostgreSQL connections (peak)", xlabel="workers", ylabel="connections")
    ticks = sorted({r["workers"] for r in rows})
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(w) for w in ticks])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"many workers on one PostgreSQL, {args.epochs} epochs of "
                 f"{args.trial_seconds / args.epochs:.2f} s per trial "
                 f"({os.cpu_count()} CPU cores)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--study", help=argparse.SUPPRESS)
    parser.add_argument("--n-trials", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--heartbeat-interval", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--grace-period", type=int, default=60, help=argparse.SUPPRESS)
    parser.add_argument("--wait-running", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--paths", nargs="+", default=["direct", "proxy"],
                        choices=["direct", "proxy"])
    parser.add_argument("--trials-per-worker", type=int, default=6)
    parser.add_argument("--trial-seconds", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--postgres", default=os.environ.get(
        "LOSSTUNE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--figure", type=Path,
                        default=REPO / "benchmarks" / "figures" / "many_workers.png")
    parser.add_argument("--replot", action="store_true",
                        help="redraw the figure from the rows saved beside it (no run)")
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    rows_path = args.figure.with_suffix(".json")
    if args.replot:
        saved = json.loads(rows_path.read_text())
        args.__dict__.update(saved["settings"])
        figure(saved["rows"], args.figure, args)
        return

    print(f"machine: {os.cpu_count()} CPU cores; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"synthetic trials: {args.epochs} epochs sleeping {args.trial_seconds:g} s in all, "
          f"{args.trials_per_worker} trials per worker; PostgreSQL {args.postgres}")
    rows = []
    header = (f"{'path':<7} {'workers':>7} {'trials':>6} {'exact':>5} {'trials/s':>8} "
              f"{'ideal':>6} {'ms/trial':>8} {'conns':>5} {'per proc':>8}")
    print(header)
    for workers in args.workers:
        for path in args.paths:
            r = measure(path, args.postgres, workers, args)
            rows.append(r)
            print(f"{r['path']:<7} {r['workers']:>7} {r['finished']:>6} "
                  f"{'yes' if r['exact'] else 'NO':>5} {r['trials_per_s']:>8.2f} "
                  f"{workers / args.trial_seconds:>6.1f} {r['storage_ms']:>8.1f} "
                  f"{r['max_connections']:>5} {r['max_per_process']:>8}", flush=True)
    by = {(r["path"], r["workers"]): r for r in rows}
    ratios = [f"{w}: {by[('proxy', w)]['trials_per_s'] / by[('direct', w)]['trials_per_s']:.2f}x"
              for w in args.workers if ("proxy", w) in by and ("direct", w) in by]
    if ratios:
        print("proxy trials/s vs direct, by workers: " + ", ".join(ratios))
    medians = {p: statistics.median([r["storage_ms"] for r in rows if r["path"] == p] or [0])
               for p in args.paths}
    print("median storage ms per trial: "
          + ", ".join(f"{p} {ms:.1f}" for p, ms in medians.items()))
    settings = {k: getattr(args, k) for k in ("trial_seconds", "epochs", "trials_per_worker")}
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    rows_path.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))
    figure(rows, args.figure, args)
    shown = args.figure.relative_to(REPO) if args.figure.is_relative_to(REPO) else args.figure
    print(f"figure: {shown}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not all(r["exact"] for r in rows):
        raise SystemExit("a run missed its exact budget")


if __name__ == "__main__":
    main()
