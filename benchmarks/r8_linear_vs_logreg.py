"""Full R8, frozen all-MiniLM-L6-v2 features: losstune's linear head (CE) against sklearn's
LogisticRegression on the very same cached features.

* losstune: ``losstune.objectives.training.run_trial`` with one fixed, reasonable config (linear
  head,
  softmax CE, AdamW lr 1e-2, weight decay 1e-4, batch 64, up to 50 epochs, patience 10, the
  epoch kept by validation macro-F1), trained on the ``r8`` train split (4937 documents; 548
  are held out for validation), over ``--seeds`` seeds.
* LogReg: ``LogisticRegression(C=1.0, max_iter=5000)`` fitted on the same train split, and on
  train + validation (all 5485 official training documents, the setting of the outside anchor:
  LogReg 0.967 test accuracy).

Both are scored on the official R8 test split (2189 documents) with
``losstune.objectives.metrics.classification_metrics``. The features come from the encoder cache
(``$LOSSTUNE_CACHE``); a cold cache encodes the 7674 documents first (about 2 minutes on 2 CPU
cores at 67 documents/s), and the script says so.

Usage: ``LOSSTUNE_CACHE=/tmp/lt-cache python benchmarks/r8_linear_vs_logreg.py [--seeds 3]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

ANCHOR_LOGREG_ACCURACY = 0.967


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from sklearn.linear_model import LogisticRegression

    from losstune.objectives import cache
    from losstune.objectives.config import TrialConfig
    from losstune.objectives.metrics import classification_metrics
    from losstune.objectives.training import prepare_data, run_trial

    torch.set_num_threads(args.threads)
    config = TrialConfig.model_validate({
        "data": {"name": "r8"},
        "encoder": {"name": "minilm", "max_length": 128},
        "model": {"head": "linear"},
        "loss": {"terms": [{"name": "ce"}]},
        "train": {"lr": 1e-2, "weight_decay": 1e-4, "batch_size": 64, "epochs": 50,
                  "patience": 10, "optimizer": "adamw", "seed": 0, "threads": args.threads},
        "eval": {"metric": "macro_f1"},
    })
    misses = cache.STATS.misses
    started = time.perf_counter()
    data = prepare_data(config)
    encoded = cache.STATS.misses - misses
    print(f"features: full R8 all-MiniLM-L6-v2 (max_length 128), {data.in_dim} dims; "
          f"{'read from the cache' if not encoded else f'{encoded} split(s) encoded now'} "
          f"in {time.perf_counter() - started:.1f}s")
    ds = data.dataset
    print(f"splits: train {len(ds.train)}, val {len(ds.val)}, test {len(ds.test)}; "
          f"{ds.num_classes} classes")

    def score(pred: np.ndarray) -> dict[str, float]:
        m = classification_metrics(ds.test.labels, pred, num_classes=ds.num_classes,
                                   multilabel=False)
        return {"accuracy": float(m["accuracy"]), "macro_f1": float(m["macro_f1"])}

    runs = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        result = run_trial(config.with_seed(seed), data=data)
        runs.append({**result.test, "seconds": time.perf_counter() - t0,
                     "best_epoch": result.best_epoch, "epochs_run": result.epochs_run})
        print(f"  losstune seed {seed}: test accuracy {result.test['accuracy']:.4f}, macro-F1 "
              f"{result.test['macro_f1']:.4f} (kept epoch {result.best_epoch} of "
              f"{result.epochs_run}; {runs[-1]['seconds']:.1f}s)")

    x = {s: data.inputs[s]["embeddings"].float().numpy() for s in ("train", "val", "test")}
    t0 = time.perf_counter()
    logreg = LogisticRegression(C=1.0, max_iter=5000).fit(x["train"], ds.train.labels)
    lr_train = {**score(logreg.predict(x["test"])), "seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    logreg_all = LogisticRegression(C=1.0, max_iter=5000).fit(
        np.concatenate([x["train"], x["val"]]),
        np.concatenate([ds.train.labels, ds.val.labels]))
    lr_all = {**score(logreg_all.predict(x["test"])), "seconds": time.perf_counter() - t0}

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in runs)

    def sd(key: str) -> float:
        return statistics.stdev(r[key] for r in runs) if len(runs) > 1 else 0.0

    ours = {"accuracy": mean("accuracy"), "macro_f1": mean("macro_f1")}
    print("\nR8 test (2189 documents)        accuracy   macro-F1   fit seconds")
    print(f"losstune linear + CE ({args.seeds} seeds)  {ours['accuracy']:.4f}     "
          f"{ours['macro_f1']:.4f}     {mean('seconds'):.1f}   "
          f"(sd {sd('accuracy'):.4f} / {sd('macro_f1'):.4f})")
    print(f"LogReg, same train split        {lr_train['accuracy']:.4f}     "
          f"{lr_train['macro_f1']:.4f}     {lr_train['seconds']:.1f}")
    print(f"LogReg, train + val (anchor)    {lr_all['accuracy']:.4f}     "
          f"{lr_all['macro_f1']:.4f}     {lr_all['seconds']:.1f}")
    print(f"ratio losstune / LogReg (same split): accuracy "
          f"{ours['accuracy'] / lr_train['accuracy']:.4f}, macro-F1 "
          f"{ours['macro_f1'] / lr_train['macro_f1']:.4f}")
    print(f"ratio losstune / LogReg (train + val): accuracy "
          f"{ours['accuracy'] / lr_all['accuracy']:.4f}, macro-F1 "
          f"{ours['macro_f1'] / lr_all['macro_f1']:.4f}")
    print(f"outside anchor: LogReg accuracy {ANCHOR_LOGREG_ACCURACY}; measured here "
          f"{lr_all['accuracy']:.4f}")


if __name__ == "__main__":
    main()
