"""Study files: YAML read with ``yaml.safe_load`` into a validated :class:`StudySpec`.

Every problem is reported with its field path (``loss.choices[1]``) and the valid choices, before
anything touches storage.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from losstune.objectives.config import DataConfig, EncoderConfig
from losstune.objectives.errors import LosstuneError, short_repr, short_text
from losstune.objectives.registry import did_you_mean, unknown_name_message

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
                f"'_', '-', '.' (at most 100 characters), but got {short_repr(value)}"
            )
        return value

    @model_validator(mode="after")
    def _check_study(self, info: ValidationInfo) -> StudySpec:
        """Everything beyond field types (see :func:`study_problems`); :func:`parse_study`
        defers this step to report field and study problems together."""
        if (info.context or {}).get("defer_checks"):
            return self
        problems = study_problems(self)
        if problems:
            raise ValueError(join_problems(problems))
        return self

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


#: Problems listed in one message before "... and N more".
MAX_LISTED_PROBLEMS = 20
#: Longest single problem in a message (a safety net under the per-value truncation).
MAX_PROBLEM_CHARS = 3000


def join_problems(problems: list[str]) -> str:
    """All problems of a study file as one line: ``a; b; c`` (the first
    :data:`MAX_LISTED_PROBLEMS`, each cut to :data:`MAX_PROBLEM_CHARS`, then a count)."""
    unique = list(dict.fromkeys(problems))
    shown = [p if len(p) <= MAX_PROBLEM_CHARS else p[:MAX_PROBLEM_CHARS] + "..."
             for p in unique[:MAX_LISTED_PROBLEMS]]
    text = "; ".join(" ".join(p.split("\n")) for p in shown)
    if len(unique) > len(shown):
        text += f"; ... and {len(unique) - len(shown)} more problem(s)"
    if len(unique) > 1:
        text = f"{len(unique)} problems: {text}"
    return text


class _Collector:
    """Problems of one study file, gathered check by check."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def run(self, check: Any, *args: Any, prefix: str = "") -> bool:
        """Run ``check(*args)``; a ValueError, a registry's KeyError or any losstune error
        becomes a problem.
        Returns whether the check passed."""
        try:
            check(*args)
        except (ValueError, KeyError, LosstuneError) as exc:
            self.add(prefix + _message(exc))
            return False
        return True

    def add(self, problem: str) -> None:
        self.items.append(problem)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, ValidationError):
        return "; ".join(format_validation_error(exc, _trial_config_model()))
    return str(exc)


def study_problems(spec: StudySpec, *, skip: frozenset[str] | set[str] = frozenset(),
                   check_data: bool = True) -> list[str]:
    """Every problem of a study beyond field types, each with its field path: registry names,
    sampler and pruner arguments, every override of the search space, each searched range's
    endpoints, categorical choices and fixed values against the constructor that takes them,
    unknown ``model.params``, the head/loss contract, the enqueued trials and (``check_data``)
    the data itself: loaded, each bad row named, at least two classes to train on.

    ``skip`` names top-level sections that failed their field checks: checks that need them
    are left out (their problems are already reported).
    """
    found = _Collector()

    def ok(*sections: str) -> bool:
        return not set(sections) & set(skip)

    if not ok("plugins") or not found.run(_import_plugins, spec.plugins, prefix="plugins: "):
        return found.items  # without the plugins every registry name may look unknown
    from losstune.objectives.data import get_dataset_info
    from losstune.objectives.data.registry import check_dataset_options
    from losstune.objectives.encoders import get_encoder_class
    from losstune.objectives.losses import get_loss_class
    from losstune.objectives.metrics import METRICS
    from losstune.objectives.models import get_model_class
    from losstune.studies.optuna_parts import check_pruner, check_sampler

    data_ok = ok("data") and found.run(get_dataset_info, spec.data.name, prefix="data.name: ")
    if data_ok:
        data_ok = found.run(check_dataset_options, spec.data.name, spec.data.options,
                            prefix="data.options: ")
    encoder_ok = ok("encoder") and found.run(get_encoder_class, spec.encoder.name,
                                             prefix="encoder.name: ")
    model_ok = ok("model") and found.run(get_model_class, spec.model.head,
                                         prefix="model.head: ")
    metric_ok = ok("metric")
    if metric_ok:
        try:
            names = [m.name for m in spec.metric_specs()]
        except ValueError as exc:
            found.add(str(exc))
            names, metric_ok = [], False
        for i, name in enumerate(names):
            if name not in METRICS:
                found.add(_unknown(f"metric[{i}]", "metric", name, list(METRICS)))
                metric_ok = False
    options = spec.storage_options
    if ok("storage_options") and options.grace_period <= options.heartbeat_interval:
        found.add("storage_options: `grace_period > heartbeat_interval` must hold, but got "
                  f"grace_period={options.grace_period}, "
                  f"heartbeat_interval={options.heartbeat_interval}")
    if ok("sampler", "metric", "seed") and metric_ok and found.run(
            lambda: check_sampler(spec.sampler.name, spec.sampler.args,
                                  multi=spec.is_multi_objective)):
        _build_part(found, "sampler", spec)
    if ok("pruner") and found.run(check_pruner, spec.pruner.name, spec.pruner.args):
        _build_part(found, "pruner", spec)

    losses_ok = ok("loss")
    if losses_ok:
        for group, names in (("loss.choices", spec.loss.choices),
                             ("loss.auxiliary", spec.loss.auxiliary)):
            for name in names:
                losses_ok &= found.run(get_loss_class, name, prefix=f"{group}: ")
    space = None
    if losses_ok and model_ok and ok("space", "encoder"):
        before = len(found.items)
        space = _compile_space(found, spec)
        space_ok = len(found.items) == before
    dataset = None
    if data_ok and check_data:
        dataset = _load_data(found, spec)
    if space is not None and encoder_ok and ok("eval", "data") and data_ok:
        found.run(_check_model_contract, spec, dataset)
    if space is not None:
        _check_knob_domains(found, spec, space, dataset)
        if ok("train", "eval", "data", "encoder", "model", "metric", "plugins") and data_ok \
                and metric_ok:
            _check_trial_configs(found, spec, space)
        if ok("enqueue") and space_ok:
            _check_enqueue(found, spec, space)
    return found.items


def _build_part(found: _Collector, kind: str, spec: StudySpec) -> None:
    """The sampler or pruner builds with its arguments."""
    from losstune.studies.optuna_parts import make_pruner, make_sampler

    try:
        if kind == "sampler":
            make_sampler(spec.sampler.name, spec.sampler.args, spec.seed,
                         multi=spec.is_multi_objective)
        else:
            make_pruner(spec.pruner.name, spec.pruner.args)
    except (TypeError, ValueError) as exc:
        found.add(f"{kind}.args: {short_text(str(exc), 300)}")


def _compile_space(found: _Collector, spec: StudySpec) -> Any:
    """The search space with every override that is valid; each invalid override is one
    problem (all of them are reported, not only the first), and the other checks go on with
    the rest."""
    from losstune.search_spaces import SearchSpace

    try:
        base = SearchSpace.build(losses=list(spec.loss.choices),
                                 auxiliary=list(spec.loss.auxiliary), head=spec.model.head,
                                 overrides={}, fine_tune=spec.encoder.fine_tune)
    except ValueError as exc:
        found.add(str(exc))
        return None
    good: dict[str, Any] = {}
    for name, raw in spec.space.items():
        if found.run(base.override, {name: raw}):
            good[name] = raw
    if not found.run(base.override, good):
        return None
    return base.override(good)  # without the overrides reported as problems


def _load_data(found: _Collector, spec: StudySpec) -> Any:
    """Load the study's data (memoised per process) and check it can train a classifier."""
    from losstune.objectives.data import load_dataset
    from losstune.objectives.data.checks import class_problems

    try:
        dataset = load_dataset(spec.data.name, spec.data.options)
    except LosstuneError as exc:
        found.add(f"data: {exc}")
        return None
    except Exception as exc:  # noqa: BLE001 - a plugin loader's failure is the user's to fix
        found.add(f"data: loading dataset {spec.data.name!r} failed: {type(exc).__name__}: "
                  f"{short_text(str(exc), 300)}")
        return None
    for problem in class_problems(dataset):
        found.add(f"data: {problem}")
    return dataset


def _candidates(dist: Any) -> list[tuple[str, Any]]:
    """The values of a distribution to test against a constructor: a range's endpoints, every
    categorical choice, a fixed value."""
    from losstune.search_spaces import CategoricalDist, FixedDist

    if isinstance(dist, FixedDist):
        return [("value", dist.value)]
    if isinstance(dist, CategoricalDist):
        return [("choice", c) for c in dist.choices]
    ends = [("low", dist.low), ("high", dist.high)]
    return ends[:1] if dist.low == dist.high else ends


def _are(values: list[str]) -> str:
    """``low -3.0 is`` / ``low -3.0 and high -1.0 are``."""
    if len(values) == 1:
        return f"{values[0]} is"
    return f"{', '.join(values[:-1])} and {values[-1]} are"


def _refused(candidates: list[tuple[str, Any]], refuse: Any) -> tuple[list[str], str | None]:
    bad, first = [], None
    for label, value in candidates:
        reason = refuse(value)
        if reason is not None:
            bad.append(f"{label} {short_repr(value)}")
            first = first or reason
    return bad, first


def _check_knob_domains(found: _Collector, spec: StudySpec, space: Any,
                        dataset: Any) -> None:
    """Every value a trial can give a loss or head knob is one its constructor accepts, and
    every ``model.params`` key is a knob of the head."""
    from losstune.objectives.knobs import (
        KnobContext,
        blame,
        loss_refusal,
        model_refusal,
        unknown_model_knobs,
    )
    from losstune.objectives.models import get_model_class, model_hyperparameters
    from losstune.search_spaces import FixedDist

    context = (KnobContext.from_dataset(dataset, max_length=spec.encoder.max_length)
               if dataset is not None else KnobContext(max_length=spec.encoder.max_length))
    groups: list[tuple[str, str, Any, dict[str, tuple[str, Any]]]] = []
    for loss in dict.fromkeys([*spec.loss.choices, *spec.loss.auxiliary]):
        prefix = f"loss.{loss}."
        params = {p.name[len(prefix):]: (f"space.{p.name}", p.dist) for p in space.params
                  if p.name.startswith(prefix)}
        groups.append((f"loss {loss!r}", "loss", lambda k, n=loss: loss_refusal(n, k, context),
                       params))
    unknown = unknown_model_knobs(spec.model.head, spec.model.params)
    if unknown:
        found.add(f"model.params: {unknown}")
    known = model_hyperparameters(get_model_class(spec.model.head))
    names = set(space.names())
    for k, v in spec.model.params.items():
        dist = space.get(f"model.{k}").dist if f"model.{k}" in names else None
        if dist is not None and not (isinstance(dist, FixedDist) and dist.value == v):
            found.add(f"model.params.{k}: the search space also has model.{k} "
                      f"({dist.describe()}), which every trial uses instead of "
                      f"{short_repr(v)}: set it under space: as `model.{k}: {short_repr(v)}` "
                      "and remove it from model.params")
    params = {k: (f"model.params.{k}", FixedDist(v)) for k, v in spec.model.params.items()
              if k in known and f"model.{k}" not in names}
    params.update({p.name[len("model."):]: (f"space.{p.name}", p.dist) for p in space.params
                   if p.name.startswith("model.")})
    groups.append((f"model head {spec.model.head!r}", "model",
                   lambda k: model_refusal(spec.model.head, k, context), params))
    for what, _kind, refuse, params in groups:
        reason = refuse({})
        if reason is not None:
            found.add(f"{what} cannot be built with its defaults: {reason}")
            continue
        fixed = {k: d.value for k, (_, d) in params.items() if isinstance(d, FixedDist)}
        for knob, value, why in blame(refuse, fixed):
            where = params[knob][0] if knob else f"{what} (fixed knobs)"
            knob_text = f" knob {knob!r}" if knob else ""
            found.add(f"{where}: {short_repr(value)} is outside the domain of {what}"
                      f"{knob_text}: {why}")
        base = fixed if refuse(fixed) is None else {}
        for knob, (where, dist) in params.items():
            if isinstance(dist, FixedDist):
                continue
            bad, why = _refused(_candidates(dist),
                                lambda v, k=knob, r=refuse, b=base: r({**b, k: v}))
            if bad:
                found.add(f"{where}: {_are(bad)} outside the domain of {what} knob "
                          f"{knob!r}: {why}")


def _field_refusal(name: str, value: Any) -> str | None:
    """Why a ``train.*`` or ``weight.*`` value is outside the trial configuration's domain
    (None when it is inside)."""
    from losstune.objectives.config import LossTerm, TrainConfig

    try:
        if name.startswith("train."):
            TrainConfig.model_validate({name[len("train."):]: value})
        elif name.count(".") == 1:  # weight.<term>; sub-term weights are plain floats
            LossTerm.model_validate({"name": name.split(".", 1)[1], "weight": value})
    except ValidationError as exc:
        return "; ".join(err["msg"] for err in exc.errors())
    return None


def _check_trial_configs(found: _Collector, spec: StudySpec, space: Any) -> None:
    """Each training or weight parameter's reachable values (a range's endpoints, every
    choice, a fixed value) lie in the trial configuration's domain (``train.lr > 0``, ...),
    and the baseline trial of every loss choice gives a valid trial configuration."""
    import optuna

    from losstune.search_spaces import FixedDist

    before = len(found.items)
    for p in space.params:
        if not p.name.startswith(("train.", "weight.")):
            continue
        bad, why = _refused(_candidates(p.dist), lambda v, n=p.name: _field_refusal(n, v))
        if bad and isinstance(p.dist, FixedDist):
            found.add(f"space.{p.name}: {short_repr(p.dist.value)} is outside its domain: {why}")
        elif bad:
            found.add(f"space.{p.name}: {_are(bad)} outside its domain: {why}")
    if len(found.items) > before:
        return
    template = spec.template()
    for loss in spec.loss.choices:
        try:
            values = space.sample(optuna.trial.FixedTrial(space.baseline(loss)))
        except ValueError:
            continue  # loss.name restricted by the space: that loss is never sampled
        try:
            space.to_config(values, template)
        except ValidationError as exc:
            lines = format_validation_error(exc, _trial_config_model())
            found.add("space: a trial configuration built from this study would be invalid: "
                      + "; ".join(lines))
            return


def _check_model_contract(spec: StudySpec, dataset: Any = None) -> None:
    """Every loss this study can pick gets the outputs it needs from the head, the head gets
    its input from the encoder, and single-label losses get single-label data (the loaded
    ``dataset``'s, when given)."""
    from losstune.objectives.compat import IncompatibleConfigError, check_model_contract
    from losstune.objectives.data import get_dataset_info
    from losstune.objectives.losses import get_loss_class

    losses = [*spec.loss.choices, *spec.loss.auxiliary]
    try:
        check_model_contract(losses, spec.model.head, spec.encoder.name,
                             fine_tune=spec.encoder.fine_tune, eval_rule=spec.eval.rule)
    except IncompatibleConfigError as exc:
        raise ValueError(f"model.head: {exc}") from None
    multilabel = (dataset.multilabel if dataset is not None
                  else get_dataset_info(spec.data.name).multilabel)
    if multilabel:
        single = [n for n in losses if get_loss_class(n).single_label_only]
        if single:
            raise ValueError(
                f"loss.choices: loss(es) {single} need single-label data, but dataset "
                f"{spec.data.name!r} is multi-label"
            )


def _check_enqueue(found: _Collector, spec: StudySpec, space: Any) -> None:
    """Enqueued trials name parameters of the space with values in their ranges."""
    from losstune.search_spaces import FixedDist

    names = set(space.names())
    for i, params in enumerate(spec.enqueue):
        for key, value in params.items():
            if key not in names:
                found.add(_unknown(f"enqueue[{i}]", "parameter", key, sorted(names)))
                continue
            dist = space.get(key).dist
            if isinstance(dist, FixedDist):
                if value != dist.value:
                    found.add(f"enqueue[{i}].{key}: the study fixes it to "
                              f"{short_repr(dist.value)} (space:), got {short_repr(value)}")
            elif not dist.contains(value):
                found.add(f"enqueue[{i}].{key}: {short_repr(value)} is outside its range "
                          f"({dist.describe()})")
        if len(found.items) > 10 * MAX_LISTED_PROBLEMS:
            return  # enough to show; a huge list of bad entries is not read to its end


def check_device(device: str, *, hint: str | None = None) -> None:
    """``train.device`` names a device this machine has (torch is imported only for CUDA).

    Raises:
        StudyFileError: ``cuda`` / ``cuda:N`` without CUDA or without GPU ``N``.
    """
    if not device.startswith("cuda"):
        return
    import torch

    hint = hint or ("set train.device: cpu or auto, or run the study where the GPUs are (e.g. "
                    "--launcher ray on a GPU cluster)")
    if not torch.cuda.is_available():
        raise StudyFileError(f"train.device is {device!r} but this machine has no CUDA device "
                             f"(torch {torch.__version__}, CUDA build: "
                             f"{torch.version.cuda or 'none'}); {hint}")
    if ":" in device:
        index = device.split(":", 1)[1]
        count = torch.cuda.device_count()
        if not index.isdigit() or int(index) >= count:
            raise StudyFileError(f"train.device is {device!r} but this machine has {count} "
                                 f"CUDA device(s) (cuda:0..cuda:{count - 1}); {hint}")


def _trial_config_model() -> type[BaseModel]:
    from losstune.objectives.config import TrialConfig

    return TrialConfig


def _import_plugins(modules: list[str]) -> None:
    if not modules:
        return
    from losstune.objectives.plugins import import_plugin_modules

    import_plugin_modules(modules)


def _unknown(path: str, kind: str, name: str, valid: list[str]) -> str:
    return unknown_name_message(kind, name, valid, path=path)


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
        if len(path) > 120:
            path = short_repr(path, 120)
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, loc)
            valid = sorted(owner.model_fields) if owner is not None else []
            key = str(loc[-1])
            hint = did_you_mean(key, valid)
            lines.append(f"{path}: unknown key {short_repr(key)}.{hint} Valid keys: "
                         f"{', '.join(valid)}")
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
                lines.append(f"{path}: {msg} (got {short_repr(err.get('input'))})"
                             if err["type"] != "value_error" else f"{path}: {msg}")
    return lines


#: Placeholders for required sections that failed their field checks, so that the rest of a
#: study file can still be checked (checks that need those sections are skipped).
_PLACEHOLDERS: dict[str, Any] = {"name": "placeholder", "data": {"name": "synthetic"},
                                 "loss": {"choices": ["ce"]}}


def _partial_spec(data: dict[str, Any], exc: ValidationError
                  ) -> tuple[StudySpec | None, frozenset[str]]:
    """The study without the top-level sections that failed their field checks (defaults or
    placeholders instead), and the names of those sections."""
    bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    if not bad or any(not err["loc"] for err in exc.errors()):
        return None, frozenset()
    repaired = {k: v for k, v in data.items() if str(k) not in bad}
    repaired.update({k: v for k, v in _PLACEHOLDERS.items() if k in bad})
    try:
        spec = StudySpec.model_validate(repaired, context={"defer_checks": True})
    except ValidationError:
        return None, frozenset()
    return spec, frozenset(bad)


def parse_study(data: Any, *, source: str = "<dict>", check_data: bool = True) -> StudySpec:
    """Validate a study given as a dict (the Python API's entry point).

    Every problem is reported at once, in one :class:`StudyFileError`: field types and keys,
    then (for the sections whose fields are valid) :func:`study_problems`, including the data
    unless ``check_data`` is false.
    """
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a YAML {type(data).__name__}"
        raise StudyFileError(f"{source}: a study file must be a YAML mapping of settings "
                             f"(name:, data:, loss:, ...), but it is {what}")
    problems: list[str] = []
    try:
        spec: StudySpec | None = StudySpec.model_validate(data,
                                                          context={"defer_checks": True})
        skip: frozenset[str] = frozenset()
    except ValidationError as exc:
        problems += format_validation_error(exc)
        spec, skip = _partial_spec(data, exc)
    if spec is not None:
        problems += study_problems(spec, skip=skip, check_data=check_data)
    if problems:
        raise StudyFileError(f"{source}: {join_problems(problems)}")
    assert spec is not None
    return spec


#: YAML aliases may make a study file expand to more values than this many per character of
#: its text (plus a fixed allowance); beyond it the file is refused instead of read.
MAX_EXPANSION = 4
_EXPANSION_ALLOWANCE = 10_000


def _check_expansion(data: Any, source: str, text_length: int) -> None:
    """Refuse YAML whose aliases expand it far beyond its text (``&a [*b, *b, ...]`` chains)
    or make it recursive: reading such a value would take time exponential in its size."""
    limit = MAX_EXPANSION * text_length + _EXPANSION_ALLOWANCE
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise StudyFileError(f"{source}: a YAML alias refers to a value that contains it "
                                 "(a recursive structure); write the values out instead")
        active.add(key)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise StudyFileError(
                    f"{source}: its YAML aliases (&name / *name) expand to more than {limit} "
                    f"values from {text_length} characters; write the values out instead")
        active.discard(key)
        sizes[key] = total
        return total

    try:
        size(data)
    except RecursionError:
        raise StudyFileError(f"{source}: the YAML nests too deeply") from None


def _yaml_loader() -> Any:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_text_file(path: str | Path, *, what: str = "study file",
                   error: type[LosstuneError] = None) -> str:  # type: ignore[assignment]
    """The text of a YAML file a user gives (a study file, an exported config): UTF-8 (a BOM
    is dropped), no binary data; otherwise ``error`` (default :class:`StudyFileError`) with
    the line and column of the first bad byte."""
    error = error or StudyFileError
    p = Path(path)
    if not p.exists():
        raise error(f"{what} {str(p)!r} does not exist")
    if p.is_dir():
        raise error(f"{what} {str(p)!r} is a folder, not a YAML file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise error(f"{what} {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{p}: line {line}, column {column}: byte {raw[exc.start]:#04x} is not UTF-8 "
            f"text; a {what} is a UTF-8 YAML text file (re-save it as UTF-8)") from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise error(f"{p}: line {line}: holds binary data (a NUL character); a {what} is a "
                    "UTF-8 YAML text file")
    return text


def read_study_text(path: str | Path) -> str:
    """The text of a study file (see :func:`read_text_file`)."""
    return read_text_file(path)


def load_study_text(text: str, *, source: str = "<text>",
                    error: type[LosstuneError] = None) -> Any:  # type: ignore[assignment]
    """Parse YAML text into plain data with one-line errors (``error``, default
    :class:`StudyFileError`): a syntax error's line and column, aliases that expand the text
    far beyond its size."""
    error = error or StudyFileError
    try:
        data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{source}:{where} invalid YAML: "
                    f"{short_text(problem, 200)}") from None
    except RecursionError:
        raise error(f"{source}: the YAML nests too deeply") from None
    try:
        _check_expansion(data, source, len(text))
    except StudyFileError as exc:
        raise error(str(exc)) from None
    return data


def load_study_file(path: str | Path, *, check_data: bool = True) -> tuple[StudySpec, str]:
    """Read and validate a study file; returns the spec and the file's text."""
    text = read_study_text(path)
    data = load_study_text(text, source=str(path))
    if isinstance(data, dict) and data.get("plugins"):
        from losstune.objectives.plugins import add_plugin_folder

        add_plugin_folder(Path(path).parent)  # plugin modules beside the study file
    return parse_study(data, source=str(path), check_data=check_data), text
