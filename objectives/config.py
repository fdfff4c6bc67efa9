"""The plain, typed configuration of one trial.

A :class:`TrialConfig` is everything :func:`losstune.objectives.training.run_trial` needs: which
data, which
encoder, which head, which loss terms with which knobs, and the training settings. It is what a
search space produces from an Optuna trial, what ``losstune export`` writes and what
``losstune train`` replays. Nothing here knows about Optuna.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a
    container's cpuset), else the machine's logical cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(workers: int = 1, cores: int | None = None, *, head: str | None = None,
                    fine_tune: bool = False) -> int:
    """torch threads per trial when ``train.threads`` is unset.

    The usable cores shared by the ``workers`` running at once, at least one (more threads than
    cores only make them wait for each other), when ``head`` is None or its trials gain from
    threads (:func:`~losstune.objectives.compat.threads_pay`: a fine-tuned encoder, or a head
    like ``textcnn``); otherwise one. Measured on 2 cores, one thread against two (idle OpenMP
    threads asleep, as the CLI sets them): the quickstart's linear head 2.5x faster, ``mlp``
    1.4x, ``projection`` 2.1x, ``space`` 1.45x, ``birnn`` 1.3x; ``textcnn`` 1.4x slower.
    """
    if head is not None:
        from losstune.objectives.compat import threads_pay

        if not threads_pay(head, fine_tune):
            return 1
    cores = usable_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Which dataset, and which part of it."""

    name: str = Field(description="Dataset registry name, e.g. 'r8'.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Loader options, e.g. {'max_per_split': {'train': 400}} or file paths.",
    )


class EncoderConfig(_Strict):
    """The text encoder whose outputs are cached and fed to the head."""

    name: str = "minilm"
    max_length: int = Field(128, ge=8, le=512)
    batch_size: int = Field(64, ge=1)
    fine_tune: bool = False
    options: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Strict):
    """The trainable model on top of the encoder outputs."""

    head: str = "linear"
    params: dict[str, Any] = Field(default_factory=dict)


class LossTerm(_Strict):
    """One loss in a weighted sum: ``weight * LOSSES[name](**params)``."""

    name: str
    weight: float = Field(1.0, ge=0.0)
    params: dict[str, Any] = Field(default_factory=dict)
    sub_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Weights of a multi-term loss's sub-terms (e.g. space: inter, intra).",
    )


class LossConfig(_Strict):
    """A weighted sum of loss terms. The first term is the primary loss."""

    terms: list[LossTerm] = Field(min_length=1)

    @property
    def primary(self) -> LossTerm:
        return self.terms[0]


class TrainConfig(_Strict):
    """Optimisation settings of one trial."""

    lr: float = Field(1e-2, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    seed: int = 0
    device: str = "cpu"
    patience: int | None = Field(
        None, ge=1, description="Stop after this many epochs without gain."
    )
    grad_clip: float | None = Field(None, gt=0)
    threads: int | None = Field(
        None, ge=1,
        description="torch CPU threads; None: default_threads() (1 for most heads on cached "
                    "features; the usable cores shared by the workers for a fine-tuned encoder "
                    "or a head that gains from threads). A fixed value makes CPU replays "
                    "bit-exact.",
    )
    encoder_lr: float = Field(
        2e-5, gt=0, description="Learning rate of the transformer when encoder.fine_tune is on."
    )

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value not in {"cpu", "cuda", "auto"} and not value.startswith("cuda:"):
            raise ValueError(
                f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', but got {value!r}"
            )
        return value


class EvalConfig(_Strict):
    """How predictions are made and which validation metric is the trial's value."""

    metric: str = "macro_f1"
    metrics: list[str] = Field(
        default_factory=list, description="Extra objective metrics (multi-objective studies)."
    )
    rule: Literal["auto", "argmax", "threshold", "centroid"] = "auto"
    threshold: float = Field(0.5, gt=0, lt=1)
    tune_threshold: bool = False
    class_groups: tuple[int, int] | None = Field(
        None, description="(head_min, tail_max) training counts for head/medium/tail metrics."
    )


class TrialConfig(_Strict):
    """Everything one training run needs; the unit that export writes and train replays."""

    data: DataConfig
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    plugins: list[str] = Field(
        default_factory=list, description="Plugin modules to import (a study's `plugins:`)."
    )
    plugin_packages: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Where plugin parts came from (module, package, version, provides); "
        "written by export, informational: nothing is imported from it.",
    )

    def with_seed(self, seed: int) -> TrialConfig:
        """The same configuration trained from another seed (init and batch order only)."""
        return self.model_copy(update={"train": self.train.model_copy(update={"seed": seed})})

    def default_threads(self, workers: int = 1) -> int:
        """:func:`default_threads` of this configuration's head, encoder and ``workers``."""
        return default_threads(workers, head=self.model.head, fine_tune=self.encoder.fine_tune)

    def with_threads(self, threads: int) -> TrialConfig:
        """The same configuration trained with ``threads`` torch CPU threads."""
        if threads < 1:
            raise ValueError(f"`threads >= 1` must hold, but got threads={threads}")
        return self.model_copy(update={"train": self.train.model_copy(
            update={"threads": threads})})
