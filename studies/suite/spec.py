"""Suite files: YAML read into a validated :class:`SuiteSpec`, then resolved into a plan.

Every problem is reported with its field path (``comparisons[1].baseline``) in one line, before
anything touches storage: the arms' study files are read, merged with their ``set:`` overrides,
given each suite dataset and validated as study files; fixed configurations are validated as
trial configurations.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from losstune.objectives.config import DataConfig
from losstune.objectives.errors import LosstuneError
from losstune.objectives.registry import did_you_mean, unknown_name_message

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,59}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")
QUICK_SUFFIX = "-quick"
RUNS_SUFFIX = "--runs"
#: test metrics a suite can compare (what every evaluation run records on test)
TEST_METRICS = ("accuracy", "micro_f1", "macro_f1", "weighted_f1", "head_micro_f1",
                "head_macro_f1", "medium_micro_f1", "medium_macro_f1", "tail_micro_f1",
                "tail_macro_f1")
RULES = ("argmax", "threshold")


class SuiteFileError(LosstuneError, ValueError):
    """A suite file is invalid; the message names the file, the field path and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfirmSection(_Strict):
    """Multi-seed confirmation of each searched arm's best trials before one is chosen."""

    top: int = Field(3, ge=1)
    seeds: int = Field(3, ge=1)


class QuickSection(_Strict):
    """Overrides that ``--quick`` applies (studies get a ``-quick`` suffix)."""

    n_trials: int | None = Field(None, ge=1)
    seeds: int | None = Field(None, ge=1)
    splits: int | None = Field(None, ge=1)
    confirm: ConfirmSection | None = None
    data_options: dict[str, Any] = Field(default_factory=dict)


class ArmSection(_Strict):
    """One arm: a study to search (``study`` + optional ``set``), the paper-default trial of a
    study (``search: false``), or a fixed configuration (``config``: an export or a mapping)."""

    study: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)  # deep-merged into the study file
    search: bool = True
    config: str | dict[str, Any] | None = None
    datasets: list[str] | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ArmSection:
        if (self.study is None) == (self.config is None):
            raise ValueError("give exactly one of `study` (a study file) and `config` (an "
                             "exported or inline trial configuration)")
        if self.config is not None and self.set:
            raise ValueError("`set` applies to a study file; a `config` arm is fixed as given")
        if self.config is not None and not self.search:
            raise ValueError("`search: false` is for study arms; a `config` arm never searches")
        return self


class ComparisonSection(_Strict):
    """A claim: ``arm`` is ``greater`` (or ``less``) than ``baseline`` on the suite metric."""

    arm: str
    baseline: str
    datasets: list[str] | None = None
    claim: Literal["greater", "less"] = "greater"
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or f"{self.arm} vs {self.baseline}"


class PublishedNumber(_Strict):
    arm: str
    dataset: str
    metric: str
    value: float
    source: str


class SectionSection(_Strict):
    """A titled group of comparisons with the paper's claim, the settings and its numbers."""

    title: str
    text: str = ""
    claim: str = ""
    setting: str = ""
    comparisons: list[str] = Field(default_factory=list)
    published: list[PublishedNumber] = Field(default_factory=list)


class SuiteSpec(_Strict):
    """A suite file. See docs/suites.md for every field."""

    name: str
    description: str = ""
    storage: str | None = None
    metric: str = "macro_f1"
    metrics: list[str] = Field(default_factory=list)
    rules: list[Literal["argmax", "threshold"]] = Field(default_factory=list)
    seeds: int = Field(5, ge=1)
    splits: int = Field(2, ge=1)
    confirm: ConfirmSection = Field(default_factory=ConfirmSection)
    alpha: float = Field(0.05, gt=0, lt=1)
    min_effect: float = Field(0.005, ge=0)
    seed: int = 0
    quick: QuickSection | None = None
    datasets: dict[str, DataConfig] = Field(min_length=1)
    arms: dict[str, ArmSection] = Field(min_length=1)
    comparisons: list[ComparisonSection] = Field(default_factory=list)
    sections: list[SectionSection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_names(self) -> SuiteSpec:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"name: a suite name starts with a letter or digit and uses only "
                             f"letters, digits, '_', '-', '.' (at most 60 characters), but got "
                             f"{self.name!r}")
        for where, keys in (("datasets", self.datasets), ("arms", self.arms)):
            for key in keys:
                if not _KEY_RE.match(key):
                    raise ValueError(f"{where}.{key}: names start with a letter or digit and "
                                     "use only letters, digits, '_', '-' (at most 40 characters)")
        for i, m in enumerate([self.metric, *self.metrics]):
            where = "metric" if i == 0 else f"metrics[{i - 1}]"
            check_metric(where, m, self.rules)
        for arm, section in self.arms.items():
            for j, ds in enumerate(section.datasets or []):
                _known(f"arms.{arm}.datasets[{j}]", "dataset", ds, list(self.datasets))
        labels: list[str] = []
        for i, c in enumerate(self.comparisons):
            _known(f"comparisons[{i}].arm", "arm", c.arm, list(self.arms))
            _known(f"comparisons[{i}].baseline", "baseline arm", c.baseline, list(self.arms))
            if c.arm == c.baseline:
                raise ValueError(f"comparisons[{i}]: arm and baseline are both {c.arm!r}")
            both = set(self.arm_datasets(c.arm)) & set(self.arm_datasets(c.baseline))
            for j, ds in enumerate(c.datasets or []):
                _known(f"comparisons[{i}].datasets[{j}]", "dataset", ds, list(self.datasets))
                if ds not in both:
                    raise ValueError(f"comparisons[{i}].datasets[{j}]: arms {c.arm!r} and "
                                     f"{c.baseline!r} do not both run on {ds!r}")
            if c.datasets is None and not both:
                raise ValueError(f"comparisons[{i}]: arms {c.arm!r} and {c.baseline!r} share "
                                 "no dataset")
            if c.name in labels:
                raise ValueError(f"comparisons[{i}].label: {c.name!r} is used twice; give "
                                 "each comparison its own label")
            labels.append(c.name)
        for i, s in enumerate(self.sections):
            for j, label in enumerate(s.comparisons):
                _known(f"sections[{i}].comparisons[{j}]", "comparison label", label, labels)
            for j, p in enumerate(s.published):
                _known(f"sections[{i}].published[{j}].arm", "arm", p.arm, list(self.arms))
                _known(f"sections[{i}].published[{j}].dataset", "dataset", p.dataset,
                       list(self.datasets))
                check_metric(f"sections[{i}].published[{j}].metric", p.metric, self.rules)
        return self

    def arm_datasets(self, arm: str) -> list[str]:
        """The datasets an arm runs on (all by default), in the suite's order."""
        chosen = self.arms[arm].datasets
        return [d for d in self.datasets if chosen is None or d in chosen]

    def comparison_datasets(self, comparison: ComparisonSection) -> list[str]:
        both = set(self.arm_datasets(comparison.arm)) & set(self.arm_datasets(
            comparison.baseline))
        return [d for d in self.datasets if d in both and (comparison.datasets is None
                                                           or d in comparison.datasets)]


def check_metric(where: str, name: str, rules: list[str]) -> None:
    """A test metric (``macro_f1``) or a metric under an extra rule (``threshold.macro_f1``)."""
    rule, _, metric = name.rpartition(".")
    if metric not in TEST_METRICS:
        raise ValueError(_unknown_text(where, "test metric", metric, list(TEST_METRICS)))
    if rule and rule not in rules:
        raise ValueError(f"{where}: {name!r} asks for prediction rule {rule!r}, which the suite "
                         f"does not score; add it to `rules` (some of {list(RULES)})")


def _unknown_text(path: str, kind: str, name: str, valid: list[str]) -> str:
    return unknown_name_message(kind, name, valid, path=path)


def _known(path: str, kind: str, name: str, valid: list[str]) -> None:
    if name not in valid:
        raise ValueError(_unknown_text(path, kind, name, valid))


# ---------------------------------------------------------------------- the resolved plan
@dataclass
class Unit:
    """One (arm, dataset): its study (search arms, and ``search: false`` arms built from a
    study) or its fixed configuration."""

    arm: str
    dataset: str
    search: bool
    study: Any = None  # StudySpec
    study_text: str | None = None
    fixed: Any = None  # TrialConfig of a fixed arm
    fine_tune: bool = False
    full_n_trials: int | None = None  # the budget before --quick shrank it

    @property
    def key(self) -> tuple[str, str]:
        return self.arm, self.dataset


@dataclass
class Suite:
    """A validated suite with every (arm, dataset) resolved; nothing has run yet."""

    spec: SuiteSpec
    path: Path
    text: str
    quick: bool
    name: str
    seeds: int
    splits: int
    confirm: ConfirmSection
    datasets: dict[str, DataConfig]
    units: list[Unit]
    notes: list[str] = field(default_factory=list)

    @property
    def runs_study(self) -> str:
        return self.name + RUNS_SUFFIX

    def unit(self, arm: str, dataset: str) -> Unit:
        return next(u for u in self.units if u.key == (arm, dataset))

    def arm_label(self, arm: str) -> str:
        return self.spec.arms[arm].label or arm


def study_name(suite: str, arm: str, dataset: str) -> str:
    return f"{suite}.{arm}.{dataset}"


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` merged into ``base``: mappings merge key by key, a ``null`` value removes
    the key (its default applies), anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            if value is None:
                out.pop(key, None)
            elif key in base:
                out[key] = deep_merge(base[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def _owner(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class whose field the last part of ``loc`` names; list indices and the keys
    of ``dict[str, Model]`` fields (arm and dataset names) are stepped over."""
    current: Any = model
    skip = False
    for part in loc[:-1]:
        if skip or isinstance(part, int):
            skip = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        annotation = info.annotation
        skip = getattr(annotation, "__origin__", None) is dict
        current = _model_in(annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _format(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    from losstune.studies.spec import format_validation_error

    lines = format_validation_error(exc, model)
    for i, err in enumerate(exc.errors()):  # unknown keys: list the valid ones of their owner
        if err["type"] == "extra_forbidden" and i < len(lines):
            loc = tuple(err["loc"])
            owner = _owner(model, loc)
            valid = sorted(owner.model_fields) if owner is not None else []
            key = str(loc[-1])
            hint = did_you_mean(key, valid)
            path = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in loc)
            lines[i] = (f"{path.replace('.[', '[')}: unknown key {key!r}.{hint} Valid keys: "
                        f"{', '.join(valid)}")
    return "; ".join(prefix + line for line in lines)


def parse_suite(data: Any, *, source: str = "<dict>") -> SuiteSpec:
    if not isinstance(data, dict):
        raise SuiteFileError(f"{source}: a suite file must be a YAML mapping, got "
                             f"{type(data).__name__}")
    try:
        return SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise SuiteFileError(f"{source}: {_format(exc, SuiteSpec)}") from None


def load_suite(path: str | Path, *, quick: bool = False) -> Suite:
    """Read, validate and resolve a suite file (every arm on every dataset)."""
    p = Path(path)
    if not p.exists():
        raise SuiteFileError(f"suite file {str(p)!r} does not exist")
    if p.is_dir():
        raise SuiteFileError(f"suite file {str(p)!r} is a folder, not a YAML file")
    text = p.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteFileError(f"{p}:{where}: invalid YAML: {problem}") from None
    spec = parse_suite(data, source=str(p))
    return resolve(spec, path=p, text=text, quick=quick)


def resolve(spec: SuiteSpec, *, path: Path, text: str = "", quick: bool = False) -> Suite:
    """Build every (arm, dataset) unit, validating each arm's study or configuration."""
    if quick and spec.quick is None:
        raise SuiteFileError(f"{path}: --quick needs a `quick:` section (n_trials, seeds, "
                             "splits, confirm, data_options) in the suite file")
    q = spec.quick if quick else None
    name = spec.name + (QUICK_SUFFIX if quick else "")
    datasets = {
        key: DataConfig(name=d.name, options=deep_merge(dict(d.options), q.data_options))
        if q is not None and q.data_options else d
        for key, d in spec.datasets.items()
    }
    for key, d in datasets.items():
        _check_dataset(f"{path}: datasets.{key}", d)
    units: list[Unit] = []
    notes: list[str] = []
    base = path.parent
    for arm, section in spec.arms.items():
        for ds in spec.arm_datasets(arm):
            where = f"{path}: arms.{arm} (dataset {ds})"
            if section.config is not None:
                config = _fixed_config(section.config, datasets[ds], base, where)
                units.append(Unit(arm=arm, dataset=ds, search=False, fixed=config,
                                  fine_tune=config.encoder.fine_tune))
                continue
            unit = _study_unit(name, arm, ds, section, datasets[ds], base, where, q)
            units.append(unit)
            if unit.search and unit.full_n_trials != unit.study.n_trials:
                notes.append(f"search budget shrunk by --quick: {arm} on {ds} runs "
                             f"{unit.study.n_trials} trials instead of {unit.full_n_trials}")
    seeds = q.seeds if q is not None and q.seeds else spec.seeds
    splits = q.splits if q is not None and q.splits else spec.splits
    confirm = q.confirm if q is not None and q.confirm else spec.confirm
    if quick:
        if (seeds, splits) != (spec.seeds, spec.splits):
            notes.append(f"paired runs shrunk by --quick: {seeds} seeds x {splits} holdouts "
                         f"instead of {spec.seeds} x {spec.splits}")
        if confirm != spec.confirm:
            notes.append(f"confirmation shrunk by --quick: top {confirm.top} x {confirm.seeds} "
                         f"seeds instead of top {spec.confirm.top} x {spec.confirm.seeds}")
    return Suite(spec=spec, path=path, text=text, quick=quick, name=name, seeds=seeds,
                 splits=splits, confirm=confirm, datasets=datasets, units=units, notes=notes)


def _check_dataset(where: str, data: DataConfig) -> None:
    from losstune.objectives.data import get_dataset_info
    from losstune.objectives.data.registry import check_dataset_options

    try:
        get_dataset_info(data.name)
        check_dataset_options(data.name, data.options)
    except (KeyError, ValueError) as exc:
        raise SuiteFileError(f"{where}: {exc.args[0] if isinstance(exc, KeyError) else exc}") \
            from None


def _study_unit(suite: str, arm: str, ds: str, section: ArmSection, data: DataConfig,
                base: Path, where: str, quick: QuickSection | None) -> Unit:
    from losstune.studies.spec import StudyFileError, parse_study

    assert section.study is not None
    study_path = (base / section.study) if not Path(section.study).is_absolute() \
        else Path(section.study)
    if not study_path.is_file():
        raise SuiteFileError(f"{where}: study: study file {str(study_path)!r} does not exist")
    try:
        raw = yaml.safe_load(study_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteFileError(f"{where}: study: {study_path} is not valid YAML: "
                             f"{str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SuiteFileError(f"{where}: study: {study_path} is not a YAML mapping")
    merged = deep_merge(raw, section.set)
    merged["name"] = study_name(suite, arm, ds)
    merged["data"] = data.model_dump(mode="json")
    merged.pop("storage", None)
    full = int(merged.get("n_trials", 20)) if isinstance(merged.get("n_trials", 20), int) \
        else None
    if section.search and quick is not None and quick.n_trials is not None and full:
        merged["n_trials"] = min(full, quick.n_trials)
    try:
        spec = parse_study(merged, source=f"{where} ({study_path.name} with `set`)")
    except StudyFileError as exc:
        raise SuiteFileError(str(exc)) from None
    unit = Unit(arm=arm, dataset=ds, search=section.search, study=spec,
                study_text=yaml.safe_dump(merged, sort_keys=False),
                fine_tune=spec.encoder.fine_tune, full_n_trials=full)
    if not section.search:
        unit.fixed = baseline_config(spec, where)
    return unit


def baseline_config(spec: Any, where: str = "") -> Any:
    """The paper-default trial of a study's first loss choice, as a trial configuration."""
    import optuna

    space = spec.compile_space()
    loss = spec.loss.choices[0]
    try:
        values = space.sample(optuna.trial.FixedTrial(space.baseline(loss)))
        return space.to_config(values, spec.template())
    except ValueError as exc:
        raise SuiteFileError(f"{where}: search: false uses the paper-default trial of "
                             f"{loss!r}, which this study cannot build: {exc}") from None


def _fixed_config(raw: str | dict[str, Any], data: DataConfig, base: Path, where: str) -> Any:
    from losstune.objectives.config import TrialConfig

    if isinstance(raw, str):
        from losstune.studies.export import ExportError, read_config_file

        path = base / raw if not Path(raw).is_absolute() else Path(raw)
        try:
            config, _ = read_config_file(path)
        except ExportError as exc:
            raise SuiteFileError(f"{where}: config: {exc}") from None
        config = TrialConfig.model_validate({**config.model_dump(mode="json"),
                                             "data": data.model_dump(mode="json")})
    else:
        try:
            config = TrialConfig.model_validate({**raw, "data": data.model_dump(mode="json")})
        except ValidationError as exc:
            raise SuiteFileError(f"{where}: {_format(exc, TrialConfig, 'config.')}") from None
    _check_parts(config, where)
    return config


def _check_parts(config: Any, where: str) -> None:
    """Registry names exist and the head gives every loss what it needs."""
    from losstune.objectives.compat import IncompatibleConfigError, check_model_contract
    from losstune.objectives.encoders import get_encoder_class
    from losstune.objectives.losses import get_loss_class
    from losstune.objectives.models import get_model_class

    if config.plugins:
        from losstune.objectives.plugins import import_plugin_modules

        import_plugin_modules(list(config.plugins))
    checks = [("config.encoder.name", get_encoder_class, config.encoder.name),
              ("config.model.head", get_model_class, config.model.head)]
    checks += [(f"config.loss.terms[{i}].name", get_loss_class, t.name)
               for i, t in enumerate(config.loss.terms)]
    for path, getter, name in checks:
        try:
            getter(name)
        except KeyError as exc:
            raise SuiteFileError(f"{where}: {path}: {exc.args[0]}") from None
    try:
        check_model_contract([t.name for t in config.loss.terms], config.model.head,
                             config.encoder.name, fine_tune=config.encoder.fine_tune,
                             eval_rule=config.eval.rule)
    except IncompatibleConfigError as exc:
        raise SuiteFileError(f"{where}: config.model.head: {exc}") from None


# ---------------------------------------------------------------------- keys of stored runs
CHOICE_ATTR = "choice"
#: training seeds of the paired evaluation: suite seed + EVAL_SEED_OFFSET + i (never a seed
#: that a search or a confirmation used with the default seeds)
EVAL_SEED_OFFSET = 10000


def config_digest(config: Any) -> str:
    """What identifies a chosen configuration: the trial config without the run's seed,
    thread count, device and informational plugin provenance."""
    data = config.model_dump(mode="json")
    for key in ("seed", "threads", "device"):
        data["train"].pop(key, None)
    data.pop("plugin_packages", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def eval_seeds(suite: Suite) -> list[int]:
    return [suite.spec.seed + EVAL_SEED_OFFSET + i for i in range(suite.seeds)]


def choice_key(arm: str, dataset: str) -> str:
    return f"{CHOICE_ATTR}.{arm}.{dataset}"
