"""run_trial's bookkeeping: thread counts stay per run, thresholds, heads with arcface."""

from __future__ import annotations

import torch

from losstune.objectives.config import (
    DataConfig,
    EncoderConfig,
    EvalConfig,
    LossConfig,
    LossTerm,
    ModelConfig,
    TrainConfig,
    TrialConfig,
)
from losstune.objectives.training import run_trial


def config(**kw: object) -> TrialConfig:
    base = dict(data=DataConfig(name="synthetic"), encoder=EncoderConfig(name="hashing"),
                loss=LossConfig(terms=[LossTerm(name="ce")]),
                train=TrainConfig(epochs=3, lr=0.05, threads=1))
    base.update(kw)
    return TrialConfig(**base)  # type: ignore[arg-type]


def test_train_threads_apply_to_one_run_only() -> None:
    before = torch.get_num_threads()
    run_trial(config(train=TrainConfig(epochs=1, threads=1)))
    assert torch.get_num_threads() == before


def test_tuned_thresholds_come_from_the_kept_epoch_and_are_recorded() -> None:
    data = DataConfig(name="synthetic", options={"multilabel": True})
    fixed = run_trial(config(data=data, loss=LossConfig(terms=[LossTerm(name="bce")])))
    assert fixed.prediction_rule == "threshold" and fixed.prediction_threshold == 0.5
    tuned = run_trial(config(data=data, loss=LossConfig(terms=[LossTerm(name="bce")]),
                             eval=EvalConfig(tune_threshold=True)))
    assert tuned.prediction_threshold == "tuned per class on validation"
    # tuning on validation can only help the validation metric of the same weights
    assert tuned.value >= fixed.value


def test_mlp_head_embeddings_feed_arcface() -> None:
    result = run_trial(config(
        model=ModelConfig(head="mlp", params={"hidden": 32}),
        loss=LossConfig(terms=[LossTerm(name="ce"), LossTerm(name="arcface", weight=0.5)])))
    assert set(result.terms) == {"ce", "arcface"}
