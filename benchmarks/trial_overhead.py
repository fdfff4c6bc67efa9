"""What does a default quickstart trial cost, next to a LogReg fit on the same features?

On cached full-R8 all-MiniLM-L6-v2 features (encoded once, on the first run), this takes the
trial that ``studies/configs/quickstart.yaml`` starts from (its baseline: softmax CE with every
searched parameter at its default) and times:

* ``plain run_trial``: ``losstune.objectives.training.run_trial`` called N times in a loop (no
  Optuna, no storage; seeds 0..N-1);
* ``through a SQLite study``: the same configuration as N trials of a study (every parameter
  fixed to the same values), on SQLite storage with the heartbeat, per-epoch reports and user
  attributes;
* ``1 torch thread``: the plain loop again with ``train.threads: 1`` (when the study uses more);
* ``LogReg fit``: sklearn ``LogisticRegression`` (lbfgs, ``max_iter=2000``) fitted N times on
  the same training features.

It prints, from one run, the seconds per trial of each, the ratio trial / LogReg, and the test
macro-F1 of both (the trials' mean; the test split is never used for selection).

Usage: ``python benchmarks/trial_overhead.py [--trials 10] [--epochs E] [--batch-size B]``
(E and B default to the quickstart space's defaults).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

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

    import optuna
    import torch
    from sklearn.linear_model import LogisticRegression
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
    threads = config.train.threads or torch.get_num_threads()
    torch.set_num_threads(threads)

    t0 = time.perf_counter()
    data = prepare_data(config)  # encodes full R8 once (cached on disk for later runs)
    prep = time.perf_counter() - t0

    run_trial(config, data=data)  # warm-up (allocations, first-call costs)

    def plain_loop() -> tuple[float, list[float], list[float]]:
        t0 = time.perf_counter()
        results = [run_trial(config.with_seed(s), data=data) for s in range(args.trials)]
        return ((time.perf_counter() - t0) / args.trials, [r.value for r in results],
                [r.test["macro_f1"] for r in results])

    plain_before, val_f1, test_f1 = plain_loop()

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
        through = (time.perf_counter() - t0) / summary.started_here
    plain_after, _, _ = plain_loop()  # plain runs before and after the study, averaged
    plain = (plain_before + plain_after) / 2
    one_thread = None
    if threads != 1:  # the same trials on one torch thread (small ops pay no thread handoffs)
        single = config.model_copy(update={"train": config.train.model_copy(
            update={"threads": 1})})
        run_trial(single, data=data)
        t0 = time.perf_counter()
        for s in range(args.trials):
            run_trial(single.with_seed(s), data=data)
        one_thread = (time.perf_counter() - t0) / args.trials

    x_train = np.asarray(data.inputs["train"]["embeddings"])
    y_train = data.y["train"].numpy()
    x_test = np.asarray(data.inputs["test"]["embeddings"])
    y_test = data.y["test"].numpy()
    t0 = time.perf_counter()
    for _ in range(args.trials):
        clf = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    logreg = (time.perf_counter() - t0) / args.trials
    logreg_f1 = f1_score(y_test, clf.predict(x_test), average="macro")

    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    print(f"R8 full, frozen MiniLM features ({len(y_train)} train docs), {args.trials} trials, "
          f"{threads} torch threads; features ready in {prep:.1f} s (about 0 when cached)")
    print(f"trial: {Path(args.study).name} defaults: {shown}")
    print(f"{'':>32} {'s/trial':>9} {'test macro-F1':>14}")
    print(f"{'plain run_trial':>32} {plain:9.3f} {np.mean(test_f1):14.4f}")
    print(f"{'through a SQLite study':>32} {through:9.3f}")
    if one_thread is not None:
        print(f"{'plain run_trial, 1 torch thread':>32} {one_thread:9.3f}")
    print(f"{'sklearn LogisticRegression fit':>32} {logreg:9.3f} {logreg_f1:14.4f}")
    print(f"trial / LogReg: {plain / logreg:.2f}x (through the study: {through / logreg:.2f}x"
          + (f"; on 1 thread: {one_thread / logreg:.2f}x" if one_thread is not None else "")
          + f"); study overhead {100 * (through / plain - 1):+.1f}% per trial")
    print(f"trial validation macro-F1 (mean of {args.trials} seeds): {np.mean(val_f1):.4f}; "
          f"test macro-F1 {np.mean(test_f1):.4f} vs LogReg {logreg_f1:.4f}")


if __name__ == "__main__":
    main()
