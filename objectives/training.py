"""Train and evaluate one configuration: the function every trial, replay and confirmation runs.

:func:`run_trial` takes a plain :class:`~losstune.objectives.config.TrialConfig` and an optional
:class:`Reporter` (an Optuna trial adapter, or nothing for a replay). It never samples
parameters. Each epoch it trains on the training split, evaluates the validation split, reports
the objective metric and asks whether to stop; the epoch with the best validation value is kept,
and the test split is evaluated once, with the kept weights.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from losstune.objectives.compat import IncompatibleConfigError, check_model_contract, model_input
from losstune.objectives.config import TrialConfig
from losstune.objectives.data import TextDataset, load_dataset
from losstune.objectives.devices import resolve_device
from losstune.objectives.errors import ConfigurationError, LosstuneError
from losstune.objectives.features import encoder_outputs, token_context
from losstune.objectives.losses import Batch, WeightedSum, build_loss, get_loss_class, term_names
from losstune.objectives.metrics import (
    ClassGroups,
    classification_metrics,
    metric_direction,
    predict,
    scalar_metrics,
    tune_thresholds,
)
from losstune.objectives.models import build_model, get_model_class
from losstune.objectives.models.heads import BaseHead
from losstune.objectives.optim import LeanAdam, lean_adam_supports

logger = logging.getLogger(__name__)

__all__ = [
    "BestEpochTracker",
    "ConfigurationError",
    "EpochStep",
    "EvaluationStep",
    "NonFiniteLossError",
    "PreparedData",
    "Reporter",
    "TrialPrunedSignal",
    "TrialResult",
    "check_compatibility",
    "prepare_data",
    "resolve_device",
    "run_trial",
    "with_extra_inputs",
]


class Reporter(Protocol):
    """Where per-epoch validation values go (an Optuna trial, in a study).

    Each epoch the trainer calls :meth:`observe` with the result so far, then :meth:`report`
    with the objective value, then :meth:`should_prune`. Subclass it to inherit the no-op
    :meth:`observe`.
    """

    def observe(self, partial: TrialResult) -> None:
        """The result so far (validation values at the best epoch, curves), each epoch; for
        reporters that store attributes as they go (Ray Tune). Does nothing by default."""
        return None

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...


class TrialPrunedSignal(Exception):
    """The reporter asked to stop; carries the result so far (its attributes are still stored)."""

    def __init__(self, epoch: int, result: TrialResult) -> None:
        super().__init__(f"pruned after epoch {epoch}")
        self.epoch = epoch
        self.result = result


class NonFiniteLossError(LosstuneError, FloatingPointError):
    """The training loss became NaN or infinite, or the trial's value (an objective metric at the
    kept epoch) is not finite; the trial fails with this reason. ``result`` is what the run
    produced when it got that far (curves and metrics, stored with the failed trial)."""

    def __init__(self, message: str, result: TrialResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class TrialResult:
    """What one training run produced.

    ``value`` is the objective metric on the validation split at ``best_epoch`` (the kept epoch);
    ``test`` holds test metrics at that same epoch; ``curves`` holds per-epoch lists.
    """

    value: float
    values: list[float]
    metric_names: list[str]
    best_epoch: int
    epochs_run: int
    val: dict[str, float]
    test: dict[str, float]
    val_per_class_f1: list[float]
    test_per_class_f1: list[float]
    terms: dict[str, float]
    curves: dict[str, list[float]]
    prediction_rule: str
    train_seconds: float
    device: str
    #: for the threshold rule: the threshold used (a number) or "tuned per class on validation"
    prediction_threshold: float | str | None = None
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    class_names: list[str] = field(default_factory=list)  # order of the per-class lists
    #: test metrics of the kept model under each of ``run_trial``'s ``extra_rules``
    test_by_rule: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class PreparedData:
    """A dataset with its encoder outputs as tensors, ready for any head and loss."""

    dataset: TextDataset
    inputs: dict[str, dict[str, torch.Tensor]]
    y: dict[str, torch.Tensor | None]
    y_multi: dict[str, torch.Tensor]
    class_counts: np.ndarray
    in_dim: int
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def num_train(self) -> int:
        return len(self.dataset.train)


_prepared: dict[str, PreparedData] = {}
_prepared_lock = threading.Lock()


def prepare_data(config: TrialConfig, *, head_input: str = "embeddings") -> PreparedData:
    """Load the dataset and its cached encoder outputs (memoised per process)."""
    key = config.data.model_dump_json() + config.encoder.model_dump_json() + head_input
    with _prepared_lock:
        if key in _prepared:
            return _prepared[key]
    dataset = load_dataset(config.data.name, config.data.options)
    inputs: dict[str, dict[str, torch.Tensor]] = {}
    in_dim = 0
    for split in ("train", "val", "test"):
        arrays = encoder_outputs(dataset, split, config.encoder, kind=head_input,
                                 device=config.train.device)
        inputs[split] = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}
        # width of the head's input (not of the mask, which the cache may list first)
        main = arrays[head_input] if head_input in arrays else next(iter(arrays.values()))
        in_dim = int(main.shape[-1])
    extras: dict[str, Any] = {}
    if head_input == "token_ids":  # models that embed ids get the id space and vectors
        extras["head_context"] = token_context(config.encoder)
        in_dim = int(extras["head_context"]["token_dim"])
    y: dict[str, torch.Tensor | None] = {}
    y_multi: dict[str, torch.Tensor] = {}
    for split in ("train", "val", "test"):
        labels = dataset.split(split).labels
        y[split] = None if dataset.multilabel else torch.from_numpy(labels.astype(np.int64))
        y_multi[split] = torch.from_numpy(dataset.multi_hot(split))
    prepared = PreparedData(
        dataset=dataset,
        inputs=inputs,
        y=y,
        y_multi=y_multi,
        class_counts=dataset.class_counts("train"),
        in_dim=in_dim,
        extras=extras,
    )
    with _prepared_lock:
        _prepared[key] = prepared
    return prepared


def check_compatibility(config: TrialConfig, multilabel: bool) -> None:
    """Fail early when a loss needs an output the head does not make, or single-label data."""
    try:
        check_model_contract(
            [t.name for t in config.loss.terms], config.model.head, config.encoder.name,
            fine_tune=config.encoder.fine_tune, eval_rule=config.eval.rule,
        )
    except IncompatibleConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    if multilabel:
        single = [t.name for t in config.loss.terms if get_loss_class(t.name).single_label_only]
        if single:
            raise ConfigurationError(
                f"loss(es) {single} need single-label data, but dataset {config.data.name!r} "
                "is multi-label; use bce, focal, db or another sigmoid loss"
            )


def build_objective_parts(
    config: TrialConfig, data: PreparedData
) -> tuple[BaseHead, WeightedSum]:
    check_compatibility(config, data.dataset.multilabel)
    context = {
        "in_dim": data.in_dim,
        "num_classes": data.dataset.num_classes,
        **data.extras.get("head_context", {}),
    }
    model = build_model(config.model.head, config.model.params, context)
    if config.encoder.fine_tune:
        from losstune.objectives.models.finetune import FineTunedEncoder

        model = FineTunedEncoder(model)  # type: ignore[assignment]
    embedding_dim = getattr(model, "embedding_dim", None)
    if embedding_dim is None:
        embedding_dim = data.in_dim
    loss_context = {
        "num_classes": data.dataset.num_classes,
        "class_counts": torch.as_tensor(data.class_counts, dtype=torch.float32),
        "num_train": data.num_train,
        "embedding_dim": int(embedding_dim),
    }
    losses = [build_loss(t.name, t.params, loss_context) for t in config.loss.terms]
    weights: dict[str, float] = {}
    for term, loss in zip(config.loss.terms, losses, strict=True):
        for name in term_names(loss):
            sub = name.split(".", 1)[1] if "." in name else None
            weights[name] = term.weight * (term.sub_weights.get(sub, 1.0) if sub else 1.0)
    return model, WeightedSum(losses, weights)


def _make_optimizer(config: TrialConfig, params: list[Any]) -> Optimizer:
    """The optimiser of ``train.optimizer``. Adam and AdamW on CPU parameters are
    :class:`~losstune.objectives.optim.LeanAdam` (torch's arithmetic, bit for bit, at a lower
    cost per step); everything else is ``torch.optim``'s."""
    t = config.train
    if t.optimizer in ("adamw", "adam"):
        tensors = [q for g in params for q in (g["params"] if isinstance(g, dict) else [g])]
        if lean_adam_supports(tensors):
            return LeanAdam(params, lr=t.lr, weight_decay=t.weight_decay,
                            decoupled=t.optimizer == "adamw")
        cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=t.lr, weight_decay=t.weight_decay, momentum=0.9)


class Optimizer(Protocol):
    """What the trainer needs of an optimiser (``torch.optim`` ones and LeanAdam)."""

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self) -> Any: ...


def _batch_inputs(
    inputs: dict[str, torch.Tensor], idx: torch.Tensor, device: torch.device
) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in inputs.items():
        part = v.index_select(0, idx)  # the rows v[idx], several times faster on CPU
        out[k] = part.to(_gathered_dtype(part.dtype)).to(device)
    return out


def _gathered_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype :func:`_batch_inputs` gives a stored input: float16 features as float32,
    int32 token ids as int64, anything else as it is."""
    return {torch.float16: torch.float32, torch.int32: torch.int64}.get(dtype, dtype)


def with_extra_inputs(
    data: PreparedData, extra: dict[str, dict[str, torch.Tensor]]
) -> PreparedData:
    """``data`` with per-trial, row-aligned inputs (e.g. a cached teacher's outputs) added to
    each split; batches slice them with the same row numbers as the encoder outputs."""
    if not extra:
        return data
    inputs = {split: {**data.inputs[split], **extra.get(split, {})} for split in data.inputs}
    for split, arrays in extra.items():
        n = len(data.y_multi[split])
        for name, value in arrays.items():
            if len(value) != n:
                raise ValueError(f"extra input {name!r} has {len(value)} rows; {split} has {n}")
    return dataclasses.replace(data, inputs=inputs)


def _param_groups(
    config: TrialConfig, model: torch.nn.Module, params: list[torch.nn.Parameter]
) -> list[Any]:
    """One group, or, when fine-tuning, the encoder's parameters at ``train.encoder_lr``."""
    encoder_params = getattr(model, "encoder_parameters", None)
    if not config.encoder.fine_tune or encoder_params is None:
        return params
    encoder = {id(p) for p in encoder_params()}
    return [
        {"params": [p for p in params if id(p) in encoder], "lr": config.train.encoder_lr},
        {"params": [p for p in params if id(p) not in encoder]},
    ]


@torch.no_grad()
def _outputs_for(
    model: BaseHead,
    inputs: dict[str, torch.Tensor],
    device: torch.device,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits and embeddings (if any) of a whole split, in eval mode."""
    model.eval()
    n = len(next(iter(inputs.values())))
    logits, embeds = [], []
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(n, start + batch_size))
        out = model(_batch_inputs(inputs, idx, device))
        logits.append(out.logits.float().cpu())
        if out.embeddings is not None:
            embeds.append(out.embeddings.float().cpu())
    emb = torch.cat(embeds).numpy() if embeds else None
    return torch.cat(logits).numpy(), emb


def _centroid_scores(
    train_emb: np.ndarray, train_multi: np.ndarray, emb: np.ndarray
) -> np.ndarray:
    counts = np.maximum(train_multi.sum(axis=0), 1)
    centroids = (train_multi.T @ train_emb) / counts[:, None]
    d2 = ((emb[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1)
    return -d2


class _Evaluator:
    """Scores a split with the rule the task and config call for."""

    def __init__(self, config: TrialConfig, data: PreparedData, device: torch.device) -> None:
        self.config = config
        self.data = data
        self.device = device
        multilabel = data.dataset.multilabel
        rule = config.eval.rule
        if rule == "auto":
            rule = "threshold" if multilabel else "argmax"
        self.rule = rule
        self.multilabel = multilabel
        groups_cfg = config.eval.class_groups
        try:
            self.groups = ClassGroups(*(groups_cfg or (35, 8))).assign(data.class_counts)
        except ValueError as exc:
            raise ConfigurationError(f"eval.class_groups: {exc}") from None
        self.thresholds: np.ndarray | float = config.eval.threshold

    def threshold_description(self) -> float | str | None:
        if self.rule != "threshold":
            return None
        if self.config.eval.tune_threshold:
            return "tuned per class on validation"
        return float(self.config.eval.threshold)

    def scores(self, model: BaseHead, split: str) -> np.ndarray:
        logits, emb = _outputs_for(model, self.data.inputs[split], self.device)
        if self.rule != "centroid":
            return logits
        train_logits, train_emb = _outputs_for(model, self.data.inputs["train"], self.device)
        assert emb is not None and train_emb is not None
        return _centroid_scores(train_emb, self.data.y_multi["train"].numpy(), emb)

    def metrics(
        self, model: BaseHead, split: str, *, tune: bool = False
    ) -> dict[str, float | list[float]]:
        scores = self.scores(model, split)
        if tune and self.rule == "threshold" and self.config.eval.tune_threshold:
            self.thresholds = tune_thresholds(scores, self.data.y_multi[split].numpy())
        pred = predict(scores, multilabel=self.multilabel, rule=self.rule,
                       threshold=self.thresholds)
        truth = self.data.dataset.split(split).labels
        return classification_metrics(
            truth,
            pred,
            num_classes=self.data.dataset.num_classes,
            multilabel=self.multilabel,
            groups=self.groups,
        )


def _check_group_metric(name: str, groups: dict[str, np.ndarray], config: TrialConfig) -> None:
    """A head/medium/tail metric needs classes in that group (else it is never measured)."""
    group = name.split("_", 1)[0]
    if group in groups and name.endswith("_f1") and len(groups[group]) == 0:
        sizes = ", ".join(f"{g} {len(idx)}" for g, idx in groups.items())
        head_min, tail_max = config.eval.class_groups or (35, 8)
        raise ConfigurationError(
            f"metric {name!r} needs {group} classes, but dataset {config.data.name!r} has none "
            f"with eval.class_groups (head_min={head_min}, tail_max={tail_max}): {sizes} "
            "classes; change eval.class_groups (`losstune data info` shows the groups)"
        )


def _is_better(value: float, best: float | None, direction: str) -> bool:
    if best is None or math.isnan(best):
        return True
    if math.isnan(value):
        return False
    return value > best if direction == "maximize" else value < best


def run_trial(
    config: TrialConfig,
    *,
    reporter: Reporter | None = None,
    data: PreparedData | None = None,
    keep_state: bool = False,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    extra_rules: Sequence[str] = (),
) -> TrialResult:
    """Train ``config`` and return its validation value and test metrics at the kept epoch.

    ``train.threads`` applies to this run only (the process's thread count is restored after).
    ``extra_rules`` (``argmax``, ``threshold``): also score the kept model on test under each of
    these prediction rules (``threshold`` at the fixed ``eval.threshold``), into
    ``result.test_by_rule``; selection and ``result.test`` keep the configured rule.

    Raises:
        TrialPrunedSignal: the reporter asked to stop (the partial result is attached).
        NonFiniteLossError: the loss became NaN or infinite.
        ConfigurationError: the configuration cannot be built.
    """
    bad = sorted(set(extra_rules) - set(EXTRA_RULES))
    if bad:
        raise ConfigurationError(f"extra prediction rule(s) {bad}; expected some of "
                                 f"{list(EXTRA_RULES)}")
    previous_threads = torch.get_num_threads()
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    try:
        result = _run_trial(config, reporter=reporter, data=data, keep_state=keep_state,
                            on_epoch=on_epoch, extra_rules=tuple(extra_rules))
    finally:
        torch.set_num_threads(previous_threads)
    return result


#: Prediction rules that ``run_trial(extra_rules=...)`` can add to the test metrics.
EXTRA_RULES = ("argmax", "threshold")


def _test_by_rule(model: BaseHead, data: PreparedData, evaluator: _Evaluator,
                  device: torch.device, rules: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Test metrics of the kept ``model`` under each rule of ``rules``, from one pass of logits."""
    logits, _ = _outputs_for(model, data.inputs["test"], device)
    truth = data.dataset.test.labels
    out = {}
    for rule in rules:
        pred = predict(logits, multilabel=evaluator.multilabel, rule=rule,
                       threshold=evaluator.config.eval.threshold)
        out[rule] = scalar_metrics(classification_metrics(
            truth, pred, num_classes=data.dataset.num_classes, multilabel=evaluator.multilabel,
            groups=evaluator.groups))
    return out


def _run_trial(
    config: TrialConfig,
    *,
    reporter: Reporter | None,
    data: PreparedData | None,
    keep_state: bool,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
    extra_rules: tuple[str, ...] = (),
) -> TrialResult:
    head_cls = get_model_class(config.model.head)
    if data is None:
        data = prepare_data(config, head_input=model_input(head_cls, config.encoder.fine_tune))
    device = resolve_device(config.train.device)
    data = with_extra_inputs(data, head_cls.extra_inputs(config, data))
    torch.manual_seed(config.train.seed)
    np.random.seed(config.train.seed % (2**32))
    model, criterion = build_objective_parts(config, data)
    model.to(device)
    criterion.to(device)
    params = [
        p for p in list(model.parameters()) + list(criterion.parameters()) if p.requires_grad
    ]
    optimizer = _make_optimizer(config, _param_groups(config, model, params))
    generator = torch.Generator().manual_seed(config.train.seed)
    evaluator = _Evaluator(config, data, device)

    metric_names = [config.eval.metric, *config.eval.metrics]
    for name in metric_names:
        metric_direction(name)
        _check_group_metric(name, evaluator.groups, config)

    train_epoch = EpochStep(config=config, model=model, criterion=criterion,
                            optimizer=optimizer, params=params, data=data, device=device,
                            generator=generator)
    tracker = BestEpochTracker(metric_names=metric_names,
                               direction=metric_direction(config.eval.metric),
                               evaluator=evaluator, device=device,
                               class_names=list(data.dataset.class_names))
    evaluate = EvaluationStep(evaluator=evaluator, criterion=criterion, data=data,
                              device=device, metric_names=metric_names,
                              started=tracker.started)
    for epoch in range(config.train.epochs):
        try:
            train_loss, terms = train_epoch(epoch)
        except NonFiniteLossError as exc:  # keep what the finished epochs measured
            if exc.result is None and tracker.epochs_run:
                exc.result = tracker.result()
            raise
        tracker.record_training(epoch, train_loss, terms)
        val_metrics = evaluate(model)
        value = tracker.record_validation(epoch, val_metrics, model)
        if on_epoch is not None:
            on_epoch(epoch, {"value": value, "train_loss": train_loss})
        if reporter is not None:
            reporter.observe(tracker.result())
            reporter.report(value, epoch)
            if reporter.should_prune():
                raise TrialPrunedSignal(epoch, tracker.result())
        if config.train.patience is not None and tracker.since_best >= config.train.patience:
            break
    result = tracker.final_result(model, keep_state=keep_state)
    check_finite_values(result)
    if extra_rules:
        result.test_by_rule = _test_by_rule(model, data, evaluator, device, extra_rules)
    return result


def check_finite_values(result: TrialResult) -> None:
    """A trial's value must be a number: raise NonFiniteLossError (the result attached) when
    an objective metric at the kept epoch is NaN or infinite."""
    bad = [f"{name}={value}" for name, value in zip(result.metric_names, result.values,
                                                    strict=True)
           if not math.isfinite(value)]
    if bad:
        raise NonFiniteLossError(
            f"validation {', '.join(bad)} at the kept epoch {result.best_epoch} "
            f"({result.epochs_run} epoch(s) run): a trial's value must be finite; lower "
            "train.lr or check the loss knobs", result)


#: About how many bytes of training inputs one gather moves at a time (see :class:`EpochStep`).
CHUNK_BYTES = 32 * 2**20


class EpochStep:
    """One training epoch: shuffle, then per batch the loss, its backward pass and an
    optimiser step. Calling it returns the epoch's mean loss and mean loss terms.

    The batch losses are kept as detached tensors and read once, at the end of the epoch (no
    host synchronisation per batch); that is also when their finiteness is checked.

    Raises:
        NonFiniteLossError: a batch's loss was NaN or infinite (checked at the epoch's end; the
            message names the epoch and the first such batch).
    """

    def __init__(
        self,
        *,
        config: TrialConfig,
        model: BaseHead,
        criterion: WeightedSum,
        optimizer: Optimizer,
        params: list[torch.nn.Parameter],
        data: PreparedData,
        device: torch.device,
        generator: torch.Generator,
    ) -> None:
        self.model = model
        self.criterion = criterion
        self.optimizer = optimizer
        self.params = params
        self.device = device
        self.generator = generator
        self.epochs = config.train.epochs
        self.batch_size = config.train.batch_size
        self.grad_clip = config.train.grad_clip
        self.inputs = data.inputs["train"]
        self.y, self.y_multi = data.y["train"], data.y_multi["train"]
        # Rows are gathered (and moved to the device) a chunk of whole batches at a time, about
        # CHUNK_BYTES of inputs, and the batches are views into it: one copy per chunk instead
        # of one per batch, the same rows in the same order.
        row_bytes = sum(v[:1].numel() * torch.empty((), dtype=_gathered_dtype(v.dtype))
                        .element_size() for v in self.inputs.values())
        batches = max(1, CHUNK_BYTES // max(1, row_bytes * self.batch_size))
        self._chunk_rows = batches * self.batch_size
        self._chunk: tuple[Any, ...] = ()

    def __call__(self, epoch: int) -> tuple[float, dict[str, float]]:
        self.criterion.on_epoch_start(epoch, self.epochs)
        self.model.train()
        n = len(self.y_multi)
        order = torch.randperm(n, generator=self.generator)
        # Batch losses stay tensors (detached) until the epoch ends: no host read per batch.
        totals: list[torch.Tensor] = []
        terms_seen: list[dict[str, torch.Tensor]] = []
        try:
            for start in range(0, n, self.batch_size):
                total, terms = self._loss(order, start, epoch)
                self._step(total)
                totals.append(total.detach())
                terms_seen.append({k: v.detach() for k, v in terms.items()})
        except Exception as exc:
            # a loss that already was NaN/inf may make a later batch fail: name the cause
            self._check_finite(epoch, totals, terms_seen, cause=exc)
            raise
        finally:
            self._chunk = ()
        return self._epoch_means(epoch, totals, terms_seen)

    def _epoch_means(
        self, epoch: int, totals: list[torch.Tensor], terms_seen: list[dict[str, torch.Tensor]]
    ) -> tuple[float, dict[str, float]]:
        """The epoch's mean loss and terms, read from the device once; the sums run in the
        batches' order in double precision, as adding each batch's ``float`` would."""
        values = self._check_finite(epoch, totals, terms_seen)
        n_batches = max(len(values), 1)
        total_sum = 0.0
        for v in values:
            total_sum += v
        by_term: dict[str, list[float]] = {}
        names = list(dict.fromkeys(k for terms in terms_seen for k in terms))
        for name in names:
            parts = [terms[name].reshape(()) for terms in terms_seen if name in terms]
            by_term[name] = torch.stack(parts).double().tolist() if parts else []
        sums: dict[str, float] = {}
        for name, term_values in by_term.items():
            acc = 0.0
            for v in term_values:
                acc += v
            sums[name] = acc
        return total_sum / n_batches, {k: v / n_batches for k, v in sums.items()}

    def _check_finite(
        self,
        epoch: int,
        totals: list[torch.Tensor],
        terms_seen: list[dict[str, torch.Tensor]],
        *,
        cause: BaseException | None = None,
    ) -> list[float]:
        """The batch losses as floats (one read); raises NonFiniteLossError naming the first
        NaN/inf batch of the epoch and its terms."""
        if not totals:
            return []
        values = torch.stack([t.reshape(()) for t in totals]).double().tolist()
        for batch, value in enumerate(values):
            if math.isfinite(value):
                continue
            shown = ", ".join(f"{k}={float(v):.4g}" for k, v in terms_seen[batch].items())
            error = NonFiniteLossError(
                f"training loss became {value} at epoch {epoch}, batch {batch} (terms: {shown}); "
                "lower train.lr or check the loss knobs"
            )
            if cause is not None:
                raise error from cause
            raise error
        return values

    def _loss(
        self, order: torch.Tensor, start: int, epoch: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted loss and its terms of the batch ``order[start:start + batch_size]``
        (finiteness is checked once per epoch)."""
        if start % self._chunk_rows == 0:  # gather the next chunk of shuffled rows
            idx = order[start : start + self._chunk_rows]
            self._chunk = (
                idx.to(self.device),
                None if self.y is None else self.y.index_select(0, idx).to(self.device),
                self.y_multi.index_select(0, idx).to(self.device),
                _batch_inputs(self.inputs, idx, self.device),
            )
        index, y, y_multi, inputs = self._chunk
        rows = slice(start % self._chunk_rows, start % self._chunk_rows + self.batch_size)
        batch = Batch(index=index[rows], y=None if y is None else y[rows],
                      y_multi=y_multi[rows], epoch=epoch, num_epochs=self.epochs)
        outputs = self.model({k: v[rows] for k, v in inputs.items()})
        return self.criterion(outputs, batch)

    def _step(self, total: torch.Tensor) -> None:
        """Backward pass, optional gradient clipping, optimiser step."""
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()


class EvaluationStep:
    """The validation metrics of one epoch: the evaluator's (thresholds tuned on validation
    when the config says so), plus ``loss`` (the weighted loss on validation) and
    ``train_seconds`` (since training started) when they are among the metrics."""

    def __init__(
        self,
        *,
        evaluator: _Evaluator,
        criterion: WeightedSum,
        data: PreparedData,
        device: torch.device,
        metric_names: list[str],
        started: float,
    ) -> None:
        self.evaluator = evaluator
        self.criterion = criterion
        self.data = data
        self.device = device
        self.metric_names = metric_names
        self.started = started

    def __call__(self, model: BaseHead) -> dict[str, float | list[float]]:
        val_metrics = self.evaluator.metrics(model, "val", tune=True)
        if "loss" in self.metric_names:
            # losses that draw random numbers (G-Loss masks) must not shift training's stream
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                val_metrics["loss"] = _split_loss(model, self.criterion, self.data, "val",
                                                  self.device)
        if "train_seconds" in self.metric_names:
            val_metrics["train_seconds"] = time.perf_counter() - self.started
        return val_metrics


class BestEpochTracker:
    """Keeps the epoch with the best objective value (its value, metrics, weights and
    thresholds), the per-epoch curves and the patience counter, and builds the
    :class:`TrialResult` so far (:meth:`result`) or at the end (:meth:`final_result`)."""

    def __init__(
        self,
        *,
        metric_names: list[str],
        direction: str,
        evaluator: _Evaluator,
        device: torch.device,
        class_names: list[str],
    ) -> None:
        self.metric_names = metric_names
        self.direction = direction
        self.evaluator = evaluator
        self.device = device
        self.class_names = class_names
        self.curves: dict[str, list[float]] = {"train_loss": []}
        for name in metric_names:
            self.curves[f"val_{name}"] = []
        self.best_value: float | None = None
        self.best_epoch = -1
        self.best_values: list[float] = []
        self.best_val: dict[str, float | list[float]] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_thresholds: np.ndarray | float | None = None
        self.last_terms: dict[str, float] = {}
        self.since_best = 0
        self.epochs_run = 0
        self.started = time.perf_counter()

    def record_training(self, epoch: int, train_loss: float, terms: dict[str, float]) -> None:
        """The epoch's mean training loss and terms (curves ``train_loss``, ``term_*``)."""
        self.epochs_run = epoch + 1
        self.curves["train_loss"].append(train_loss)
        self.last_terms = terms
        for k, v in terms.items():
            self.curves.setdefault(f"term_{k}", []).append(v)

    def record_validation(
        self, epoch: int, val_metrics: dict[str, float | list[float]], model: BaseHead
    ) -> float:
        """Add the epoch's validation values to the curves, keep the epoch if it is the best
        so far (else count it against the patience), and return its objective value."""
        values = [float(val_metrics[name]) for name in self.metric_names]  # type: ignore[arg-type]
        for name, v in zip(self.metric_names, values, strict=True):
            self.curves[f"val_{name}"].append(v)
        value = values[0]
        if _is_better(value, self.best_value, self.direction):
            self.best_value, self.best_epoch, self.best_values = value, epoch, values
            self.best_val = val_metrics
            self.best_state = _snapshot(model.state_dict())
            self.best_thresholds = copy.deepcopy(self.evaluator.thresholds)
            self.since_best = 0
        else:
            self.since_best += 1
        return value

    def result(self) -> TrialResult:
        """The result so far: validation values at the best epoch, no test metrics."""
        best_val = self.best_val
        return TrialResult(
            value=float(self.best_value) if self.best_value is not None else math.nan,
            values=list(self.best_values),
            metric_names=self.metric_names,
            best_epoch=self.best_epoch,
            epochs_run=self.epochs_run,
            val=scalar_metrics(best_val) if best_val else {},
            test={},
            val_per_class_f1=list(best_val.get("per_class_f1", [])) if best_val else [],
            test_per_class_f1=[],
            terms=dict(self.last_terms),
            curves={k: list(v) for k, v in self.curves.items()},
            prediction_rule=self.evaluator.rule,
            prediction_threshold=self.evaluator.threshold_description(),
            train_seconds=time.perf_counter() - self.started,
            device=str(self.device),
            class_names=list(self.class_names),
        )

    def final_result(self, model: BaseHead, *, keep_state: bool) -> TrialResult:
        """Restore the best epoch's weights and thresholds, score the test split once, and
        return the full result (with the weights when ``keep_state``)."""
        assert self.best_state is not None
        model.load_state_dict(self.best_state)
        self.evaluator.thresholds = self.best_thresholds  # type: ignore[assignment]
        test_metrics = self.evaluator.metrics(model, "test")
        result = self.result()
        result.test = scalar_metrics(test_metrics)
        result.test_per_class_f1 = list(test_metrics.get("per_class_f1", []))  # type: ignore[arg-type]
        if keep_state:
            result.state_dict = {k: v.detach().cpu().clone() for k, v in self.best_state.items()}
        return result


def _snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a state dict that later training steps cannot change (tensors cloned, which
    is what ``copy.deepcopy`` does to them, without its per-object bookkeeping)."""
    out: OrderedDict[str, Any] = OrderedDict(
        (k, v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v))
        for k, v in state.items())
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:  # module versions, read by load_state_dict
        out._metadata = copy.deepcopy(metadata)  # type: ignore[attr-defined]
    return out


@torch.no_grad()
def _split_loss(
    model: BaseHead,
    criterion: WeightedSum,
    data: PreparedData,
    split: str,
    device: torch.device,
) -> float:
    model.eval()
    inputs = data.inputs[split]
    n = len(data.y_multi[split])
    total, count = 0.0, 0
    for start in range(0, n, 1024):
        idx = torch.arange(start, min(n, start + 1024))
        y = data.y[split]
        batch = Batch(
            index=idx.to(device),
            y=None if y is None else y[idx].to(device),
            y_multi=data.y_multi[split][idx].to(device),
        )
        value, _ = criterion(model(_batch_inputs(inputs, idx, device)), batch)
        total += float(value) * len(idx)
        count += len(idx)
    return total / max(count, 1)
