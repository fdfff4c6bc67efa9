"""Study files: YAML read with ``yaml.safe_load`` into a validated :class:`StudySpec`.

Every problem is reported with its field path (``loss.choices[1]``) and the valid choices, before
anything touches storage.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from losstune.objectives.config import DataConfig, EncoderConfig
from losstune.objectives.errors import LosstuneError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


class StudyFileError(LosstuneError, ValueError):
    """A study file is invalid; the message names the file, the field path and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LossSection(_Strict):
    """Which losses the study compares.

    ``choices`` become the categorical ``loss.name``; ``auxiliary`` terms are added to every
    trial's loss with a searched weight ``weight.<term>``; ``baseline`` enqueues the paper-default
    configuration of these losses as the first trials (``true``: the first choice only, or a
    list of loss names).
    """

    choices: list[str] = Field(min_length=1)
    auxiliary: list[str] = Field(default_factory=list)
    baseline: bool | list[str] = True

    @model_validator(mode="after")
    def _baseline_among_choices(self) -> LossSection:
        if isinstance(self.baseline, list):
            bad = [n for n in self.baseline if n not in self.choices]
            if bad:
                raise ValueError(f"loss.baseline: {bad} are not in loss.choices {self.choices}")
        return self


class ModelSection(_Strict):
    head: str = "linear"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainSection(_Strict):
    """Fixed (not searched) training settings. Searched ones (lr, weight_decay, epochs,
    batch_size) are set or fixed under ``space:`` as ``train.<name>``."""

    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    seed: int | None = None
    device: str = "cpu"
    patience: int | None = Field(None, ge=1)
    grad_clip: float | None = Field(None, gt=0)
    threads: int | None = Field(None, ge=1)

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        from losstune.objectives.config import TrainConfig

        return TrainConfig._check_device(value)


class EvalSection(_Strict):
    rule: Literal["auto", "argmax", "threshold", "centroid"] = "auto"
    threshold: float = Field(0.5, gt=0, lt=1)
    tune_threshold: bool = False
    class_groups: tuple[int, int] | None = None

    @field_validator("class_groups")
    @classmethod
    def _check_groups(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None:
            from losstune.objectives.metrics import ClassGroups

            ClassGroups(*value)  # head_min > tail_max >= 0, else a ValueError with the rule
        return value


class SamplerSection(_Strict):
    name: str = "tpe"
    args: dict[str, Any] = Field(default_factory=dict)


class PrunerSection(_Strict):
    name: str = "median"
    args: dict[str, Any] = Field(default_factory=dict)


class StorageSection(_Strict):
    heartbeat_interval: int = Field(20, ge=1)
    grace_period: int = Field(60, ge=2)
    max_retry: int = Field(3, ge=0)


class RaySection(_Strict):
    """Ray launcher settings (``losstune run --launcher ray``)."""

    workers: int = Field(1, ge=1)
    address: str | None = None
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    cpu_fallback: bool = False
    init: dict[str, Any] = Field(default_factory=dict)
    scheduler: Literal["none", "asha"] = "none"
    scheduler_args: dict[str, Any] = Field(default_factory=dict)


class MetricSpec(_Strict):
    name: str
    direction: Literal["maximize", "minimize"] | None = None


class StudySpec(_Strict):
    """A study file. See the README's "Study file reference" for every field."""

    name: str
    description: str = ""
    seed: int = 0
    n_trials: int = Field(20, ge=1)
    max_failures: int = Field(10, ge=1)
    timeout: float | None = Field(None, gt=0)
    metric: str | list[str | MetricSpec] = "macro_f1"
    data: DataConfig
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    model: ModelSection = Field(default_factory=ModelSection)
    loss: LossSection
    space: dict[str, Any] = Field(default_factory=dict)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    sampler: SamplerSection = Field(default_factory=SamplerSection)
    pruner: PrunerSection = Field(default_factory=PrunerSection)
    storage: str | None = None
    storage_options: StorageSection = Field(default_factory=StorageSection)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    plugins: list[str] = Field(default_factory=list)
    ray: RaySection = Field(default_factory=RaySection)

    # -------------------------------------------------------------- field checks
    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "study name must start with a letter or digit and use only letters, digits, "
                f"'_', '-', '.' (at most 100 characters), but got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _check_registries(self) -> StudySpec:
        _import_plugins(self.plugins)
        from losstune.objectives.data import get_dataset_info
        from losstune.objectives.data.registry import check_dataset_options
        from losstune.objectives.encoders import get_encoder_class
        from losstune.objectives.metrics import METRICS
        from losstune.objectives.models import get_model_class

        _lookup("data.name", get_dataset_info, self.data.name)
        try:
            check_dataset_options(self.data.name, self.data.options)
        except ValueError as exc:
            raise ValueError(f"data.options: {exc}") from None
        _lookup("encoder.name", get_encoder_class, self.encoder.name)
        _lookup("model.head", get_model_class, self.model.head)
        for i, m in enumerate(self.metric_specs()):
            if m.name not in METRICS:
                raise ValueError(_unknown(f"metric[{i}]", "metric", m.name, list(METRICS)))
        if self.storage_options.grace_period <= self.storage_options.heartbeat_interval:
            raise ValueError(
                "storage_options: `grace_period > heartbeat_interval` must hold, but got "
                f"grace_period={self.storage_options.grace_period}, "
                f"heartbeat_interval={self.storage_options.heartbeat_interval}"
            )
        from losstune.studies.optuna_parts import check_pruner, check_sampler

        check_sampler(self.sampler.name, self.sampler.args, multi=self.is_multi_objective)
        check_pruner(self.pruner.name, self.pruner.args)
        space = self.compile_space()  # raises SpaceError with the parameter's path
        self._check_model_contract()
        self._check_buildable(space)
        self._check_enqueue(space)
        return self

    def _check_buildable(self, space: Any) -> None:
        """The sampler and pruner build with their arguments, and the baseline trial of every
        loss choice gives a valid trial configuration (fixed values of the wrong type, say)."""
        import optuna
        from pydantic import ValidationError

        from losstune.studies.optuna_parts import make_pruner, make_sampler

        for kind, build in (
            ("sampler", lambda: make_sampler(self.sampler.name, self.sampler.args, self.seed,
                                             multi=self.is_multi_objective)),
            ("pruner", lambda: make_pruner(self.pruner.name, self.pruner.args)),
        ):
            try:
                build()
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{kind}.args: {exc}") from None
        template = self.template()
        for loss in self.loss.choices:
            try:
                values = space.sample(optuna.trial.FixedTrial(space.baseline(loss)))
            except ValueError:
                continue  # loss.name restricted by the space: that loss is never sampled
            try:
                space.to_config(values, template)
            except ValidationError as exc:
                lines = format_validation_error(exc, _trial_config_model())
                raise ValueError("space: a trial configuration built from this study would be "
                                 "invalid: " + "; ".join(lines)) from None

    def _check_enqueue(self, space: Any) -> None:
        from losstune.search_spaces import FixedDist

        names = set(space.names())
        for i, params in enumerate(self.enqueue):
            for key, value in params.items():
                if key not in names:
                    raise ValueError(_unknown(f"enqueue[{i}]", "parameter", key, sorted(names)))
                dist = space.get(key).dist
                if isinstance(dist, FixedDist):
                    if value != dist.value:
                        raise ValueError(f"enqueue[{i}].{key}: the study fixes it to "
                                         f"{dist.value!r} (space:), got {value!r}")
                elif not dist.contains(value):
                    raise ValueError(f"enqueue[{i}].{key}: {value!r} is outside its range "
                                     f"({dist.describe()})")

    def _check_model_contract(self) -> None:
        """Every loss this study can pick gets the outputs it needs from the head, and the
        head gets its input from the encoder (checked before anything touches storage)."""
        from losstune.objectives.compat import IncompatibleConfigError, check_model_contract
        from losstune.objectives.data import get_dataset_info
        from losstune.objectives.losses import get_loss_class

        losses = [*self.loss.choices, *self.loss.auxiliary]
        try:
            check_model_contract(losses, self.model.head, self.encoder.name,
                                 fine_tune=self.encoder.fine_tune, eval_rule=self.eval.rule)
        except IncompatibleConfigError as exc:
            raise ValueError(f"model.head: {exc}") from None
        if get_dataset_info(self.data.name).multilabel:
            single = [n for n in losses if get_loss_class(n).single_label_only]
            if single:
                raise ValueError(
                    f"loss.choices: loss(es) {single} need single-label data, but dataset "
                    f"{self.data.name!r} is multi-label"
                )

    # -------------------------------------------------------------- derived views
    def metric_specs(self) -> list[MetricSpec]:
        raw = self.metric if isinstance(self.metric, list) else [self.metric]
        out = []
        for m in raw:
            out.append(m if isinstance(m, MetricSpec) else MetricSpec(name=m))
        if not out:
            raise ValueError("metric must name at least one metric")
        return out

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metric_specs()]

    @property
    def directions(self) -> list[str]:
        from losstune.objectives.metrics import metric_direction

        return [m.direction or metric_direction(m.name) for m in self.metric_specs()]

    @property
    def is_multi_objective(self) -> bool:
        return len(self.metric_specs()) > 1

    def compile_space(self):  # noqa: ANN201 - losstune.search_spaces.SearchSpace
        from losstune.search_spaces import SearchSpace

        return SearchSpace.build(
            losses=list(self.loss.choices),
            auxiliary=list(self.loss.auxiliary),
            head=self.model.head,
            overrides=self.space,
            fine_tune=self.encoder.fine_tune,
        )

    def template(self) -> dict[str, Any]:
        """The fixed parts of every trial's config (search results fill in the rest)."""
        train = self.train.model_dump()
        if train["seed"] is None:
            train["seed"] = self.seed
        names = self.metric_names
        return {
            "data": self.data.model_dump(),
            "encoder": self.encoder.model_dump(),
            "model": self.model.model_dump(),
            "train": train,
            "eval": {**self.eval.model_dump(), "metric": names[0], "metrics": names[1:]},
            "plugins": list(self.plugins),
        }


def _trial_config_model() -> type[BaseModel]:
    from losstune.objectives.config import TrialConfig

    return TrialConfig


def _import_plugins(modules: list[str]) -> None:
    if not modules:
        return
    from losstune.objectives.plugins import import_plugin_modules

    import_plugin_modules(modules)


def _unknown(path: str, kind: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{path}: unknown {kind} {name!r}; expected one of {sorted(valid)}.{hint}"


def _lookup(path: str, getter: Any, name: str) -> None:
    try:
        getter(name)
    except KeyError as exc:
        raise ValueError(f"{path}: {exc.args[0]}") from None


# ---------------------------------------------------------------------- loading
def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc`` (to list its valid keys)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _loc_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def format_validation_error(exc: ValidationError, model: type[BaseModel] = None) -> list[str]:  # type: ignore[assignment]
    model = model or StudySpec
    lines = []
    for err in exc.errors():
        loc = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        path = _loc_text(loc)
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, loc)
            valid = sorted(owner.model_fields) if owner is not None else []
            key = str(loc[-1])
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            lines.append(f"{path}: unknown key {key!r}.{hint} Valid keys: {', '.join(valid)}")
        elif err["type"] == "missing":
            lines.append(f"{path}: required field is missing")
        else:
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            if msg.startswith(f"{path}:") or not path:
                lines.append(msg)
            elif ":" in msg.split(" ", 1)[0]:
                lines.append(msg)  # already carries its own path (e.g. "loss.choices: ...")
            else:
                lines.append(f"{path}: {msg} (got {err.get('input')!r})"
                             if err["type"] != "value_error" else f"{path}: {msg}")
    return lines


def parse_study(data: Any, *, source: str = "<dict>") -> StudySpec:
    """Validate a study given as a dict (the Python API's entry point)."""
    if not isinstance(data, dict):
        raise StudyFileError(
            f"{source}: a study file must be a YAML mapping, got {type(data).__name__}"
        )
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(exc)
        raise StudyFileError(f"{source}: " + "; ".join(lines)) from None
    except ValueError as exc:  # SpaceError and friends raised outside pydantic's wrapping
        raise StudyFileError(f"{source}: {exc}") from None


def read_study_text(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise StudyFileError(f"study file {str(p)!r} does not exist")
    if p.is_dir():
        raise StudyFileError(f"study file {str(p)!r} is a folder, not a YAML file")
    return p.read_text(encoding="utf-8")


def load_study_file(path: str | Path) -> tuple[StudySpec, str]:
    """Read and validate a study file; returns the spec and the file's text."""
    text = read_study_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StudyFileError(f"{path}:{where}: invalid YAML: {problem}") from None
    if isinstance(data, dict) and data.get("plugins"):
        from losstune.objectives.plugins import add_plugin_folder

        add_plugin_folder(Path(path).parent)  # plugin modules beside the study file
    return parse_study(data, source=str(path)), text
