"""How much does losstune add to a trial, and how does a trial compare with a LogReg fit?

On cached full-R8 all-MiniLM-L6-v2 features (encoded once, on the first run), this times:

* ``plain``: ``losstune.objectives.training.run_trial`` called N times in a loop (no Optuna, no
  storage);
* ``losstune``: the same N trials through a study (every parameter fixed to the same values),
  on SQLite storage with the heartbeat, per-epoch reports and user attributes;
* ``logreg``: sklearn ``LogisticRegression`` fitted N times on the same features.

It prints per-trial seconds and the ratios from one run:
``framework overhead = losstune / plain - 1`` and ``trial time / LogReg time``.

Usage: ``python benchmarks/trial_overhead.py [--trials 10] [--epochs 20]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import optuna
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from losstune.objectives.config import TrialConfig
    from losstune.objectives.training import prepare_data, run_trial
    from losstune.studies import api

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as the CLI does
    torch.set_num_threads(args.threads)
    fixed = {
        "loss.name": "ce", "loss.ce.label_smoothing": 0.0, "model.dropout": 0.0,
        "train.lr": 0.05, "train.weight_decay": 1e-4, "train.epochs": args.epochs,
        "train.batch_size": 64,
    }
    study = {
        "name": "bench_overhead", "n_trials": args.trials, "seed": 0,
        "data": {"name": "r8"}, "encoder": {"name": "minilm", "max_length": 128},
        "loss": {"choices": ["ce"], "baseline": False},
        "space": fixed, "train": {"threads": args.threads}, "pruner": {"name": "none"},
    }
    spec, text = api.study_from_dict(study)
    space = spec.compile_space()
    config: TrialConfig = space.to_config(space.sample(_Fixed()), spec.template())

    t0 = time.perf_counter()
    data = prepare_data(config)  # encodes full R8 once (cached on disk for later runs)
    prep = time.perf_counter() - t0

    run_trial(config, data=data)  # warm-up (allocations, first-call costs)

    def plain_loop() -> tuple[float, list[float]]:
        t0 = time.perf_counter()
        values = [run_trial(config.with_seed(s), data=data).value for s in range(args.trials)]
        return (time.perf_counter() - t0) / args.trials, values

    plain_before, plain_values = plain_loop()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        t0 = time.perf_counter()
        summary = api.run_study(spec, study_text=text, storage=url, progress=False)
        through = (time.perf_counter() - t0) / summary.started_here
    plain_after, _ = plain_loop()  # plain runs before and after the study, averaged
    plain = (plain_before + plain_after) / 2

    x_train = np.asarray(data.inputs["train"]["embeddings"])
    y_train = data.y["train"].numpy()
    x_test = np.asarray(data.inputs["test"]["embeddings"])
    y_test = data.y["test"].numpy()
    t0 = time.perf_counter()
    for _ in range(args.trials):
        clf = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    logreg = (time.perf_counter() - t0) / args.trials
    pred = clf.predict(x_test)

    print(f"R8 full, frozen MiniLM features ({len(y_train)} train docs), "
          f"{args.trials} trials of {args.epochs} epochs, {args.threads} torch threads")
    print(f"features ready in {prep:.1f} s (0 s when cached)")
    print(f"{'':>28} {'s/trial':>9}")
    print(f"{'plain run_trial loop':>28} {plain:9.3f}")
    print(f"{'losstune study (SQLite)':>28} {through:9.3f}")
    print(f"{'sklearn LogisticRegression':>28} {logreg:9.3f}")
    print(f"framework overhead: {100 * (through / plain - 1):+.1f}% per trial")
    print(f"one trial takes {plain / logreg:.2f}x the time of one LogReg fit")
    print(f"(validation macro-F1 of the plain trials: {np.mean(plain_values):.4f}; LogReg test "
          f"accuracy {accuracy_score(y_test, pred):.4f}, macro-F1 "
          f"{f1_score(y_test, pred, average='macro'):.4f})")


class _Fixed:
    """A trial stand-in for a space whose parameters are all fixed (never suggests)."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"unexpected call {name}: every parameter should be fixed")


if __name__ == "__main__":
    main()
