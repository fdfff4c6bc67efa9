"""``run_trial`` trains exactly as a plain training loop does: the same random draws, the same
operations in the same order, so exported configurations replay to the same numbers.

The reference below is the loop written out in full, the way the trainer always did it: a host
read and a finiteness check per batch, ``copy.deepcopy`` of the best weights, sklearn's
``f1_score`` for the metrics, ``torch.optim``'s AdamW. ``run_trial`` (losses read once per
epoch, cloned weights, metrics from counts, LeanAdam) must give the same per-epoch curves, kept
epoch, validation and test metrics and weights, to the bit, for a softmax CE head, a balanced
multi-label BCE loss and G-Loss (which draws random masks; its validation ``loss`` metric must
not shift the training stream)."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch

from losstune.objectives.config import TrialConfig
from losstune.objectives.losses import Batch
from losstune.objectives.metrics import predict
from losstune.objectives.models import get_model_class
from losstune.objectives.training import (
    _batch_inputs,
    _param_groups,
    build_objective_parts,
    prepare_data,
    run_trial,
    with_extra_inputs,
)
from tests.objectives_tests.test_metrics_counts import _sklearn_metrics


def _reference(config: TrialConfig) -> dict[str, Any]:
    """The whole training run as one explicit loop (CPU, argmax or fixed-threshold rule)."""
    torch.set_num_threads(config.train.threads or 1)
    data = prepare_data(config)
    data = with_extra_inputs(data, get_model_class(config.model.head).extra_inputs(config, data))
    device = torch.device("cpu")
    seed = config.train.seed
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    model, criterion = build_objective_parts(config, data)
    params = [p for p in list(model.parameters()) + list(criterion.parameters())
              if p.requires_grad]
    # torch's own optimiser (the trainer's LeanAdam must match it to the bit)
    optimizer = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[config.train.optimizer](
        _param_groups(config, model, params), lr=config.train.lr,
        weight_decay=config.train.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    multilabel = data.dataset.multilabel
    num_classes = data.dataset.num_classes
    rule = "threshold" if multilabel else "argmax"
    inputs = data.inputs["train"]

    def scores(split: str) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            n = len(data.y_multi[split])
            parts = [model(_batch_inputs(data.inputs[split], torch.arange(s, min(n, s + 1024)),
                                         device)).logits.float()
                     for s in range(0, n, 1024)]
        return torch.cat(parts).numpy()

    def metrics(split: str) -> dict[str, Any]:
        pred = predict(scores(split), multilabel=multilabel, rule=rule,
                       threshold=config.eval.threshold)
        return _sklearn_metrics(data.dataset.split(split).labels, pred, num_classes,
                                multilabel, {})

    def val_loss() -> float:
        model.eval()
        total, count = 0.0, 0
        n = len(data.y_multi["val"])
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            for s in range(0, n, 1024):
                idx = torch.arange(s, min(n, s + 1024))
                y = data.y["val"]
                batch = Batch(index=idx, y=None if y is None else y[idx],
                              y_multi=data.y_multi["val"][idx])
                value, _ = criterion(model(_batch_inputs(data.inputs["val"], idx, device)),
                                     batch)
                total += float(value) * len(idx)
                count += len(idx)
        return total / max(count, 1)

    names = [config.eval.metric, *config.eval.metrics]
    curves: dict[str, list[float]] = {"train_loss": [], **{f"val_{m}": [] for m in names}}
    best, best_epoch, best_state = None, -1, None
    for epoch in range(config.train.epochs):
        criterion.on_epoch_start(epoch, config.train.epochs)
        model.train()
        n = len(data.y_multi["train"])
        order = torch.randperm(n, generator=generator)
        total_sum, n_batches = 0.0, 0
        for start in range(0, n, config.train.batch_size):
            idx = order[start : start + config.train.batch_size]
            y = data.y["train"]
            batch = Batch(index=idx, y=None if y is None else y[idx],
                          y_multi=data.y_multi["train"][idx], epoch=epoch,
                          num_epochs=config.train.epochs)
            total, _ = criterion(model(_batch_inputs(inputs, idx, device)), batch)
            assert torch.isfinite(total)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if config.train.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.train.grad_clip)
            optimizer.step()
            total_sum += float(total.detach())
            n_batches += 1
        curves["train_loss"].append(total_sum / n_batches)
        val = metrics("val")
        if "loss" in names:
            val["loss"] = val_loss()
        values = [float(val[m]) for m in names]
        for m, v in zip(names, values, strict=True):
            curves[f"val_{m}"].append(v)
        better = (best is None or math.isnan(best) or
                  (values[0] > best if names[0] != "loss" else values[0] < best))
        if better:
            best, best_epoch, best_val = values[0], epoch, val
            best_state = copy.deepcopy(model.state_dict())
    assert best_state is not None
    model.load_state_dict(best_state)
    test = metrics("test")
    return {"value": best, "best_epoch": best_epoch, "curves": curves,
            "val": {k: v for k, v in best_val.items() if not isinstance(v, list)},
            "test": {k: v for k, v in test.items() if not isinstance(v, list)},
            "state": best_state}


CONFIGS = {
    "ce_linear": dict(
        data={"name": "synthetic"}, encoder={"name": "hashing"},
        model={"head": "linear", "params": {"dropout": 0.2}},
        loss={"terms": [{"name": "ce", "params": {"label_smoothing": 0.05}}]},
        train={"epochs": 5, "lr": 0.05, "weight_decay": 1e-4, "batch_size": 16, "threads": 1,
               "seed": 3, "grad_clip": 1.0}),
    "db_multilabel": dict(
        data={"name": "synthetic", "options": {"multilabel": True}}, encoder={"name": "hashing"},
        model={"head": "mlp", "params": {"hidden": 32}}, loss={"terms": [{"name": "db"}]},
        train={"epochs": 5, "lr": 0.01, "batch_size": 16, "threads": 1, "seed": 1},
        eval={"metrics": ["loss"]}),
    "g_loss": dict(
        data={"name": "synthetic"}, encoder={"name": "hashing"},
        model={"head": "projection", "params": {"embedding_dim": 32}},
        loss={"terms": [{"name": "g_loss"}]},
        train={"epochs": 5, "lr": 0.003, "batch_size": 32, "threads": 1, "seed": 0},
        eval={"metrics": ["loss"]}),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_run_trial_equals_the_plain_training_loop_to_the_bit(name: str) -> None:
    config = TrialConfig(**CONFIGS[name])  # type: ignore[arg-type]
    want = _reference(config)
    got = run_trial(config, keep_state=True)
    assert got.best_epoch == want["best_epoch"]
    assert got.value == want["value"]
    for curve, values in want["curves"].items():
        assert got.curves[curve] == values, curve
    for split in ("val", "test"):
        ours = getattr(got, split)
        for key, value in want[split].items():
            assert (math.isnan(value) and math.isnan(ours[key])) or ours[key] == value, \
                (split, key)
    assert got.state_dict is not None
    for key, tensor in want["state"].items():
        assert torch.equal(got.state_dict[key], tensor), key
