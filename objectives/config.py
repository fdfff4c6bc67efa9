"""The plain, typed configuration of one trial.

A :class:`TrialConfig` is everything :func:`losstune.objectives.training.run_trial` needs: which
data, which
encoder, which head, which loss terms with which knobs, and the training settings. It is what a
search space produces from an Optuna trial, what ``losstune export`` writes and what
``losstune train`` replays. Nothing here knows about Optuna.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
        None, ge=1, description="torch CPU threads; fixed values make CPU replays bit-exact."
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
