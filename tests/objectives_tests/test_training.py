"""run_trial's bookkeeping: thread counts stay per run, thresholds, heads with arcface, and its
steps: the epoch step, the best-epoch tracker, the reporter protocol."""

from __future__ import annotations

import pytest
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
from losstune.objectives.models import LinearHead
from losstune.objectives.training import (
    BestEpochTracker,
    EpochStep,
    NonFiniteLossError,
    Reporter,
    TrialResult,
    _Evaluator,
    build_objective_parts,
    prepare_data,
    run_trial,
)


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


class _CountingReporter(Reporter):
    """Reports only; ``observe`` is the protocol's no-op."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def report(self, value: float, step: int) -> None:
        self.steps.append(step)

    def should_prune(self) -> bool:
        return False


class _ObservingReporter(_CountingReporter):
    def __init__(self) -> None:
        super().__init__()
        self.partials: list[TrialResult] = []

    def observe(self, partial: TrialResult) -> None:
        self.partials.append(partial)


def test_a_reporter_without_observe_gets_the_no_op_and_every_epoch() -> None:
    reporter = _CountingReporter()
    result = run_trial(config(), reporter=reporter)
    assert reporter.steps == [0, 1, 2] and result.epochs_run == 3


def test_observe_sees_the_result_so_far_each_epoch_and_the_final_value_matches() -> None:
    reporter = _ObservingReporter()
    result = run_trial(config(), reporter=reporter)
    partials = reporter.partials
    assert [p.epochs_run for p in partials] == [1, 2, 3]
    assert all(p.test == {} and p.test_per_class_f1 == [] for p in partials)
    assert [len(p.curves["train_loss"]) for p in partials] == [1, 2, 3]
    assert partials[-1].value == result.value and partials[-1].curves == result.curves
    assert result.test  # only the final result scores the test split


def test_tracker_keeps_the_best_epoch_and_counts_epochs_since() -> None:
    cfg = config()
    data = prepare_data(cfg)
    device = torch.device("cpu")
    evaluator = _Evaluator(cfg, data, device)
    model = LinearHead(in_dim=data.in_dim, num_classes=data.dataset.num_classes)
    tracker = BestEpochTracker(metric_names=["macro_f1"], direction="maximize",
                               evaluator=evaluator, device=device,
                               class_names=list(data.dataset.class_names))
    kept = None
    for epoch, value in enumerate([0.5, 0.7, 0.6, 0.7]):
        with torch.no_grad():
            next(model.parameters()).add_(1.0)  # other weights each epoch
        tracker.record_training(epoch, 1.0 / (epoch + 1), {"ce": 1.0 / (epoch + 1)})
        assert tracker.record_validation(epoch, {"macro_f1": value}, model) == value
        if epoch == 1:
            kept = {k: v.clone() for k, v in model.state_dict().items()}
    assert tracker.best_epoch == 1 and tracker.best_value == 0.7  # a tie does not replace it
    assert tracker.since_best == 2
    partial = tracker.result()
    assert partial.epochs_run == 4 and partial.curves["val_macro_f1"] == [0.5, 0.7, 0.6, 0.7]
    assert partial.curves["term_ce"] == [1.0, 0.5, 1.0 / 3, 0.25] and partial.terms == {"ce": 0.25}
    final = tracker.final_result(model, keep_state=True)
    assert kept is not None and final.state_dict is not None
    for name, tensor in kept.items():
        assert torch.equal(final.state_dict[name], tensor)
        assert torch.equal(model.state_dict()[name], tensor)  # the kept weights are restored
    assert final.test and final.best_epoch == 1


def _epoch_step(cfg: TrialConfig) -> EpochStep:
    data = prepare_data(cfg)
    model, criterion = build_objective_parts(cfg, data)
    params = [p for p in model.parameters() if p.requires_grad]
    return EpochStep(config=cfg, model=model, criterion=criterion,
                     optimizer=torch.optim.SGD(params, lr=0.1), params=params, data=data,
                     device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))


def test_epoch_step_returns_the_epoch_mean_loss_and_terms() -> None:
    step = _epoch_step(config(loss=LossConfig(terms=[
        LossTerm(name="ce"), LossTerm(name="focal", weight=0.5)])))
    first, terms = step(0)
    assert set(terms) == {"ce", "focal"} and first > 0
    # weighted terms: the total is their sum up to float rounding, batch by batch
    assert abs(first - (terms["ce"] + 0.5 * terms["focal"])) < 1e-5
    later = [step(epoch)[0] for epoch in range(1, 6)]
    assert later[-1] < first  # the steps train the model


def test_epoch_step_stops_on_a_non_finite_loss_naming_epoch_batch_and_terms() -> None:
    import tests.plugins.faulty_loss  # noqa: F401 - registers the 'faulty' loss

    step = _epoch_step(config(loss=LossConfig(terms=[
        LossTerm(name="faulty", params={"mode": "nan"})])))
    with pytest.raises(NonFiniteLossError, match=r"at epoch 2, batch 0 \(terms: faulty=nan\)"):
        step(2)
