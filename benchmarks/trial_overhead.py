"""What does a default quickstart trial cost, next to a LogReg fit on the same features?

On cached full-R8 all-MiniLM-L6-v2 features (encoded once, on the first run), this takes the
trial that ``studies/configs/quickstart.yaml`` starts from (its baseline: softmax CE with every
searched parameter at its default) and times it as ``losstune run`` trains it: with the torch
threads the run would choose (``plan_threads``: one for the linear head) and OpenMP's
``OMP_WAIT_POLICY=PASSIVE``, which the CLI sets before torch loads:

* ``plain run_trial``: ``losstune.objectives.training.run_trial`` (no Optuna, no storage;
  seeds 0..N-1);
* ``through a SQLite study``: the same configuration as N trials of a study (every parameter
  fixed to the same values), on SQLite storage with the heartbeat, per-epoch reports and user
  attributes; per trial = from the first trial's start to the last one's end, over N (opening
  the storage and creating the study happen once and are printed apart);
* ``all cores``: the plain loop again on every usable core (what the default was before), when
  that is more threads than the run's;
* ``library defaults``: the plain loop again with the library's default ``train.lr``,
  ``train.epochs`` and ``train.batch_size`` in place of the study's ``default:`` values (the
  quickstart sets its own), when they differ;
* ``LogReg fit``: sklearn ``LogisticRegression`` (lbfgs, ``max_iter=2000``) fitted on the same
  training features.

Plain trials and LogReg fits run in alternating blocks of 5 (N of each before the study and N
after), and the figures are medians, so that other jobs on a shared machine weigh on both sides
alike.

It prints, from one run, the seconds per trial of each, the ratio trial / LogReg, and the test
macro-F1 of both (the trials' mean; the test split is never used for selection).

Usage: ``python benchmarks/trial_overhead.py [--trials 10] [--epochs E] [--batch-size B]``
(E and B default to the quickstart space's defaults).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None,
                        help="train.epochs (default: the study's default)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="train.batch_size (default: the study's default)")
    parser.add_argument("--study", default=str(REPO / "studies" / "configs" / "quickstart.yaml"))
    args = parser.parse_args()

    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it, before torch
    import optuna
    import torch
    from sklearn.metrics import f1_score

    from losstune.objectives.training import prepare_data, run_trial
    from losstune.studies import api

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as the CLI does
    spec, _ = api.load_study(args.study)
    space = spec.compile_space()
    # the baseline trial: every searched parameter at its default, fixed ones at their values
    values = space.sample(optuna.trial.FixedTrial(space.baseline(spec.loss.choices[0])))
    if args.epochs is not None:
        values["train.epochs"] = args.epochs
    if args.batch_size is not None:
        values["train.batch_size"] = args.batch_size
    config = space.to_config(values, spec.template())
    from losstune.objectives.config import usable_cores
    from losstune.studies.launchers.base import plan_threads

    cores = usable_cores()
    threads = plan_threads(spec, None, concurrent=1, cores=cores).threads  # as `losstune run`
    config = config.with_threads(threads)
    torch.set_num_threads(threads)
    from losstune.search_spaces import TRAIN_SPACE

    library_values = {**values, **{f"train.{k}": TRAIN_SPACE[k][1]
                                   for k in ("lr", "epochs", "batch_size")}}
    library = None
    if library_values != values:
        library = space.to_config(library_values, spec.template()).with_threads(threads)

    t0 = time.perf_counter()
    data = prepare_data(config)  # encodes full R8 once (cached on disk for later runs)
    prep = time.perf_counter() - t0

    run_trial(config, data=data)  # warm-up (allocations, first-call costs)

    from sklearn.linear_model import LogisticRegression

    x_train = np.asarray(data.inputs["train"]["embeddings"])
    y_train = data.y["train"].numpy()

    library_s: list[float] = []
    library_results: list[Any] = []

    def rounds(block: int = 5) -> tuple[list[float], list[float], list[Any]]:
        """Blocks of ``block`` trials (seeds 0..N-1 in order), each followed by ``block`` LogReg
        fits (and, when they differ, ``block`` trials at the library's defaults), so that a
        change in the machine's load hits all alike; seconds of each, and the trials'
        results."""
        trial_s, logreg_s, results = [], [], []
        for first in range(0, args.trials, block):
            for s in range(first, min(args.trials, first + block)):
                t0 = time.perf_counter()
                results.append(run_trial(config.with_seed(s), data=data))
                trial_s.append(time.perf_counter() - t0)
            for s in range(first, min(args.trials, first + block)):
                if library is None:
                    break
                t0 = time.perf_counter()
                library_results.append(run_trial(library.with_seed(s), data=data))
                library_s.append(time.perf_counter() - t0)
            for _ in range(first, min(args.trials, first + block)):
                t0 = time.perf_counter()
                LogisticRegression(max_iter=2000).fit(x_train, y_train)
                logreg_s.append(time.perf_counter() - t0)
        return trial_s, logreg_s, results

    trial_s, logreg_s, results = rounds()
    val_f1 = [r.value for r in results]
    test_f1 = [r.test["macro_f1"] for r in results]

    study = {
        "name": "bench_overhead", "n_trials": args.trials, "seed": 0,
        "data": spec.data.model_dump(), "encoder": spec.encoder.model_dump(),
        "model": spec.model.model_dump(),
        "loss": {"choices": [config.loss.primary.name], "baseline": False},
        "space": dict(values), "train": {"threads": threads}, "pruner": {"name": "none"},
    }
    study["space"].pop("loss.name", None)
    bench_spec, text = api.study_from_dict(study)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        t0 = time.perf_counter()
        summary = api.run_study(bench_spec, study_text=text, storage=url, progress=False)
        wall = time.perf_counter() - t0
        trials = optuna.load_study(study_name="bench_overhead", storage=url).trials
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    through = (last - first).total_seconds() / summary.started_here
    setup = wall - (last - first).total_seconds()  # storage, study, summary: once per run
    more_trial, more_logreg, _ = rounds()  # rounds before and after the study, pooled
    trial_s += more_trial
    logreg_s += more_logreg
    plain = statistics.median(trial_s)
    logreg = statistics.median(logreg_s)
    all_cores = None
    if cores > threads:  # the same trials on every core, as the default was before
        wide = config.with_threads(cores)
        run_trial(wide, data=data)
        t0 = time.perf_counter()
        for s in range(args.trials):
            run_trial(wide.with_seed(s), data=data)
        all_cores = (time.perf_counter() - t0) / args.trials
        torch.set_num_threads(threads)

    x_test = np.asarray(data.inputs["test"]["embeddings"])
    y_test = data.y["test"].numpy()
    clf = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    logreg_f1 = f1_score(y_test, clf.predict(x_test), average="macro")

    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    print(f"R8 full, frozen MiniLM features ({len(y_train)} train docs), {args.trials} trials, "
          f"{threads} torch thread(s) (as `losstune run` chooses; {cores} usable cores), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; features ready in "
          f"{prep:.1f} s (about 0 when cached)")
    print(f"trial: {Path(args.study).name} defaults: {shown}")
    print(f"{'median of ' + str(2 * args.trials) + ' runs each':>34} {'s/trial':>9} "
          f"{'test macro-F1':>14}")
    print(f"{'plain run_trial':>34} {plain:9.3f} {np.mean(test_f1):14.4f}")
    print(f"{'through a SQLite study':>34} {through:9.3f}   (+ {setup:.2f} s once: storage, "
          "study, summary)")
    if all_cores is not None:
        print(f"{f'plain run_trial, {cores} threads':>34} {all_cores:9.3f}")
    if library is not None:
        lib_f1 = np.mean([r.test["macro_f1"] for r in library_results[:args.trials]])
        print(f"{'library defaults':>34} {statistics.median(library_s):9.3f} {lib_f1:14.4f}"
              f"   (lr {TRAIN_SPACE['lr'][1]}, {TRAIN_SPACE['epochs'][1]} epochs, batch "
              f"{TRAIN_SPACE['batch_size'][1]}: "
              f"{statistics.median(library_s) / logreg:.2f}x LogReg)")
    print(f"{'sklearn LogisticRegression fit':>34} {logreg:9.3f} {logreg_f1:14.4f}")
    print(f"trial / LogReg: {plain / logreg:.2f}x (through the study: {through / logreg:.2f}x"
          + (f"; on {cores} threads: {all_cores / logreg:.2f}x" if all_cores is not None
             else "")
          + f"); study overhead {100 * (through / plain - 1):+.1f}% per trial")
    print(f"trial validation macro-F1 (mean of {args.trials} seeds): {np.mean(val_f1):.4f}; "
          f"test macro-F1 {np.mean(test_f1):.4f} vs LogReg {logreg_f1:.4f}")


if __name__ == "__main__":
    main()
