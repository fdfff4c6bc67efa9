"""The public Python API: every CLI command is a thin wrapper around one function here.

Example (a notebook)::

    from losstune.studies import api
    spec, text = api.load_study("studies/configs/quickstart.yaml")
    summary = api.run_study(spec, study_text=text, storage="sqlite:///nb.db", n_trials=5)
    df = api.results_dataframe(spec.name, storage="sqlite:///nb.db")
    api.export_trial(spec.name, "best.yaml", storage="sqlite:///nb.db")
    report = api.train_config("best.yaml")
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

import losstune.storage as storage_pkg
from losstune.objectives.errors import LosstuneError
from losstune.studies.export import (
    ExportError,
    export_document,
    pick_trial,
    read_config_file,
    write_yaml_atomic,
)
from losstune.studies.optuna_parts import best_first
from losstune.studies.runner import (
    RunSummary,
    StopFlag,
    count_states,
    create_or_load,
    fail_stale_trials,
    install_sigint,
)
from losstune.studies.spec import StudySpec, load_study_file, parse_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


class StudyNotFoundError(LosstuneError, KeyError):
    """No study of that name in the storage."""

    def __str__(self) -> str:
        return str(self.args[0])


def load_study(path: str | Path) -> tuple[StudySpec, str]:
    """Read and validate a study file (raises :class:`losstune.studies.spec.StudyFileError`)."""
    return load_study_file(path)


def describe_space(path: str | Path) -> tuple[StudySpec, Any]:
    """Validate a study file and compile its search space (``losstune space``)."""
    spec, _ = load_study_file(path)
    return spec, spec.compile_space()


def study_from_dict(data: Mapping[str, Any]) -> tuple[StudySpec, str]:
    """Validate a study given as a dict; returns the spec and its YAML text."""
    spec = parse_study(dict(data))
    return spec, yaml.safe_dump(dict(data), sort_keys=False)


def _url(storage: str | None, spec: StudySpec | None = None) -> str:
    return storage_pkg.resolve_storage_url(storage, spec.storage if spec else None)


def run_study(
    spec: StudySpec,
    *,
    study_text: str | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    launcher: str = "local",
    workers: int | None = None,
    progress: bool = True,
    console: Any = None,
    address: str | None = None,
) -> RunSummary:
    """Create or resume ``spec``'s study and run it up to its budget.

    ``n_trials`` overrides the file's budget; ``timeout`` (seconds) stops starting new trials
    after that time. Ctrl-C stops after the current trial.
    """
    from losstune.studies.launchers import get_launcher
    from losstune.studies.progress import StudyProgress, make_console

    console = console or make_console()
    url = _url(storage, spec)
    budget = n_trials if n_trials is not None else spec.n_trials
    if budget < 1:
        raise ValueError(f"`n_trials >= 1` must hold, but got n_trials={budget}")
    timeout = timeout if timeout is not None else spec.timeout
    n_workers = workers if workers is not None else (spec.ray.workers if launcher != "local"
                                                     else 1)
    chosen = get_launcher(launcher)
    if launcher != "local" and address is not None:
        chosen.address = address  # type: ignore[attr-defined]
    if hasattr(chosen, "echo"):  # launcher notes go where this run's output goes
        chosen.echo = lambda text: console.print(text, highlight=False, markup=False)
    text = study_text if study_text is not None else yaml.safe_dump(
        spec.model_dump(mode="json"), sort_keys=False)
    chosen.prepare(spec, url, n_workers)  # launcher errors leave the storage untouched
    try:
        console.print(f"storage: {storage_pkg.mask_url(url)}", highlight=False)
        study, created = create_or_load(spec, text, url)
        stale = [] if created else fail_stale_trials(study, spec.storage_options.grace_period)
        if stale:
            console.print(f"failed {len(stale)} stale RUNNING trial(s) left by a dead run: "
                          f"{stale} (they are retried)", highlight=False)
        counts = count_states(study)
        finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        started = time.time()
        if finished >= budget:
            console.print(f"study {spec.name!r} already has {finished} finished trial(s) "
                          f"(budget {budget}): nothing to do", highlight=False)
            return _summary(study, url, budget, 0, 0.0, "nothing to do", created, stale)
        console.print(
            f"{'created' if created else 'resuming'} study {spec.name!r}: {finished}/{budget} "
            f"finished; objective: validation {', '.join(spec.metric_names)}"
            + (" (multi-objective: no pruning)" if spec.is_multi_objective else ""),
            highlight=False,
        )
        stop = StopFlag()
        restore = install_sigint(stop)
        deadline = started + timeout if timeout else None
        try:
            with StudyProgress(study, n_trials=budget, metric_names=spec.metric_names,
                               console=console, enabled=progress) as bar:
                results = chosen.launch(
                    spec, url, n_trials=budget, workers=n_workers, stop=stop,
                    deadline=deadline, on_trial_end=lambda s, t: bar.refresh(),
                )
        finally:
            restore()
    finally:
        chosen.close()
    reasons = sorted({r["reason"] for r in results})
    reason = "; ".join(reasons)
    return _summary(study, url, budget, sum(r["started"] for r in results),
                    time.time() - started, reason, created, stale)


def _summary(study: optuna.Study, url: str, budget: int, started_here: int, seconds: float,
             reason: str, created: bool, stale: list[int]) -> RunSummary:
    counts = count_states(study)
    return RunSummary(
        study_name=study.study_name,
        storage=storage_pkg.mask_url(url),
        n_trials=budget,
        finished=counts[TrialState.COMPLETE] + counts[TrialState.PRUNED],
        complete=counts[TrialState.COMPLETE],
        pruned=counts[TrialState.PRUNED],
        failed=counts[TrialState.FAIL],
        started_here=started_here,
        seconds=seconds,
        stopped_reason=reason,
        created=created,
        stale_failed=stale,
    )


def serve_storage_proxy(storage: str | None = None, *, host: str = "127.0.0.1",
                        port: int = 13000, threads: int | None = None,
                        pool_size: int | None = None, ready: Any = None) -> None:
    """Serve the storage to workers through a gRPC proxy (``losstune storage-proxy``; blocks):
    workers use ``grpc://HOST:PORT`` as their storage URL. See :mod:`losstune.storage.proxy`."""
    from losstune.storage import proxy

    proxy.serve(_url(storage), host=host, port=port,
                threads=threads or proxy.DEFAULT_THREADS,
                pool_size=pool_size or proxy.DEFAULT_POOL_SIZE, ready=ready)


# ---------------------------------------------------------------------- reading studies
@dataclass
class StudyRow:
    name: str
    complete: int
    pruned: int
    failed: int
    running: int
    metric_names: list[str]
    directions: list[str]
    best_value: float | None
    best_trial: int | None
    dataset: str | None
    created: str | None


def open_storage_ro(storage: str | None) -> Any:
    """Open an existing storage (an SQLite file that does not exist is an error, not created)."""
    url = _url(storage)
    path = storage_pkg.sqlite_path(url)
    if path is not None and not path.exists():
        raise storage_pkg.StorageError(
            f"no study storage at {str(path)!r} (from {storage_pkg.mask_url(url)}); run "
            "`losstune run STUDY.yaml` here first, or pass --storage / set LOSSTUNE_STORAGE"
        )
    return storage_pkg.get_storage(url)


def list_studies(storage: str | None = None) -> list[StudyRow]:
    """Every study in the storage with trial counts and best values."""
    st = open_storage_ro(storage)
    rows = []
    for summary in optuna.get_all_study_summaries(st, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=st)
        counts = count_states(study)
        best_value = best_number = None
        if len(study.directions) == 1:
            try:
                best = study.best_trial
                best_value, best_number = best.value, best.number
            except ValueError:
                pass
        rows.append(StudyRow(
            name=summary.study_name,
            complete=counts[TrialState.COMPLETE],
            pruned=counts[TrialState.PRUNED],
            failed=counts[TrialState.FAIL],
            running=counts[TrialState.RUNNING],
            metric_names=study.metric_names or ["value"],
            directions=[d.name.lower() for d in study.directions],
            best_value=best_value,
            best_trial=best_number,
            dataset=study.user_attrs.get("dataset"),
            created=summary.datetime_start.isoformat(timespec="seconds")
            if summary.datetime_start else None,
        ))
    return rows


def get_study(name: str, storage: str | None = None) -> optuna.Study:
    """Load a study by name, with an error that lists the studies in the storage."""
    st = open_storage_ro(storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)]
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(sorted(names)) if names else "none"
        raise StudyNotFoundError(
            f"no study named {name!r} in {storage_pkg.mask_url(_url(storage))}.{hint} "
            f"Studies there: {shown}"
        )
    return optuna.load_study(study_name=name, storage=st)


def trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    attrs = trial.user_attrs
    return {
        "number": trial.number,
        "state": trial.state.name,
        "values": list(trial.values) if trial.values else None,
        "loss": trial.params.get("loss.name", (attrs.get("config") or {}).get("loss", {})
                                 .get("terms", [{}])[0].get("name")),
        "params": dict(trial.params),
        "val": {k[len("metric.val."):]: v for k, v in attrs.items()
                if k.startswith("metric.val.")},
        "test": {k[len("metric.test."):]: v for k, v in attrs.items()
                 if k.startswith("metric.test.")},
        "terms": {k[len("term."):]: v for k, v in attrs.items() if k.startswith("term.")},
        "best_epoch": attrs.get("best_epoch"),
        "prediction_rule": attrs.get("prediction_rule"),
        "fail_reason": attrs.get("fail_reason") or attrs.get("stale_reason"),
    }


def show_study(name: str, storage: str | None = None, *, top: int = 5,
               trial: int | None = None) -> dict[str, Any]:
    """The chosen (or best) trial, the top-k trials and the counts of a study."""
    study = get_study(name, storage)
    counts = count_states(study)
    directions = [d.name.lower() for d in study.directions]
    metric_names = study.metric_names or ["value"]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    multi = len(directions) > 1
    if multi:
        ranked = best_first(complete, lambda t: t.values[0], directions[0])
        front = [trial_row(t) for t in sorted(study.best_trials, key=lambda t: t.number)]
    else:
        ranked = best_first(complete, lambda t: t.value, directions[0])
        front = []
    chosen = None
    if trial is not None or not multi:
        try:
            chosen = trial_row(pick_trial(study, trial))
        except ExportError:
            if trial is not None:
                raise
    from losstune.studies.confirm import confirmation_note

    note = confirmation_note(study, chosen["number"]) if chosen else ""
    return {
        "name": name,
        "confirmation_note": note,
        "metric_names": metric_names,
        "directions": directions,
        "counts": {s.name: n for s, n in counts.items() if n},
        "chosen": chosen,
        "top": [trial_row(t) for t in ranked[:top]],
        "pareto": front,
        "user_attrs": {k: v for k, v in study.user_attrs.items() if k not in ("space",)},
    }


def results_dataframe(name: str, storage: str | None = None) -> Any:
    """All trials as a pandas DataFrame: number, state, values, dotted params, metric attrs."""
    import pandas as pd

    study = get_study(name, storage)
    metric_names = study.metric_names or ["value"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        for i, m in enumerate(metric_names):
            row[m] = t.values[i] if t.values else None
        row.update(t.params)
        for k, v in t.user_attrs.items():
            if isinstance(v, (int, float, str, bool)) or v is None:
                row[k] = v
        row["duration_s"] = t.duration.total_seconds() if t.duration else None
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- export and replay
def export_trial(name: str, output: str | Path, *, storage: str | None = None,
                 trial: int | None = None, force: bool = False,
                 confirmed: bool = False) -> tuple[Path, dict]:
    """Write trial ``trial`` (default: the best; ``confirmed``: the best confirmed) of study
    ``name`` to ``output`` as YAML. Returns the path and the document."""
    from losstune.studies.confirm import best_confirmed, confirmation_note, stored_confirmation

    study = get_study(name, storage)
    if confirmed:
        row = best_confirmed(study)
        if row is None:
            raise ExportError(f"study {name!r} has no confirmed trial; run `losstune confirm "
                              f"{name}` first")
        trial = row.trial
    chosen = pick_trial(study, trial)
    doc = export_document(study, chosen, storage_url=_url(storage))
    doc["provenance"]["confirmation_note"] = confirmation_note(study, chosen.number)
    rows = stored_confirmation(study)
    if chosen.number in rows:
        doc["provenance"]["confirmation"] = rows[chosen.number].to_json()
    path = Path(output)
    write_yaml_atomic(path, doc, force=force)
    return path, doc


def export_pareto(name: str, output: str | Path, *, storage: str | None = None,
                  force: bool = False) -> list[Path]:
    """Multi-objective studies: write one config per Pareto trial into folder ``output``."""
    study = get_study(name, storage)
    if len(study.directions) < 2:
        raise ExportError(f"study {name!r} has one objective; --pareto is for multi-objective "
                          "studies (use plain export)")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{str(folder)!r} is a file; --pareto writes into a folder")
    front = sorted(study.best_trials, key=lambda t: t.number)
    if not front:
        raise ExportError(f"study {name!r} has no completed trial yet")
    targets = [folder / f"trial_{t.number}.yaml" for t in front]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise ExportError(f"{existing[0]!r} already exists; pass --force to overwrite")
    docs = [export_document(study, t, storage_url=_url(storage)) for t in front]
    folder.mkdir(parents=True, exist_ok=True)
    for path, doc in zip(targets, docs, strict=True):
        write_yaml_atomic(path, doc, force=True)
    return targets


@dataclass
class TrainReport:
    """Metrics of a replay: one entry per seed plus mean/std/95% interval per metric."""

    config: Any
    seeds: list[int]
    runs: list[dict[str, Any]]
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    recorded_value: float | None = None
    reproduced: bool | None = None
    metric: str = "macro_f1"


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean, sample std and a 95% Student-t interval (half-width) of ``values``."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": mean, "std": 0.0, "ci95": 0.0, "n": n}
    std = statistics.stdev(values)
    from scipy import stats

    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"mean": mean, "std": std, "ci95": half, "n": n}


def train_config(config: Any, *, seeds: int = 1, output_dir: str | Path | None = None,
                 provenance: Mapping[str, Any] | None = None) -> TrainReport:
    """Replay a config (a TrialConfig or a path to an export) without Optuna.

    With one seed on CPU the validation metric equals the exported trial's exactly. More seeds
    re-train with seeds ``seed, seed+1, ...`` (initialisation and batch order only).
    """
    from losstune.objectives.training import run_trial

    if isinstance(config, (str, Path)):
        config, provenance = read_config_file(config)
    if seeds < 1:
        raise ValueError(f"`seeds >= 1` must hold, but got seeds={seeds}")
    out = Path(output_dir) if output_dir is not None else None
    if out is not None and out.exists() and not out.is_dir():
        raise ExportError(f"output {str(out)!r} exists and is not a folder")
    base = config.train.seed
    runs = []
    seed_list = [base + i for i in range(seeds)]
    results = []
    for seed in seed_list:
        result = run_trial(config.with_seed(seed), keep_state=out is not None)
        results.append(result)
        runs.append({"seed": seed, "value": result.value, "best_epoch": result.best_epoch,
                     "val": result.val, "test": result.test})
    metrics = sorted({k for r in runs for k in r["val"]} - {"train_seconds"})
    summary = {}
    for k in metrics:
        summary[f"val.{k}"] = mean_ci([r["val"][k] for r in runs if k in r["val"]])
    for k in sorted({k for r in runs for k in r["test"]}):
        summary[f"test.{k}"] = mean_ci([r["test"][k] for r in runs if k in r["test"]])
    report = TrainReport(config=config, seeds=seed_list, runs=runs, summary=summary,
                         metric=config.eval.metric)
    if provenance and isinstance(provenance.get("value"), (int, float)):
        report.recorded_value = float(provenance["value"])
        report.reproduced = runs[0]["value"] == report.recorded_value
    if out is not None:
        _save_weights(out, config, results, runs)
    return report


def _save_weights(out: Path, config: Any, results: list[Any], runs: list[dict]) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    for result, run in zip(results, runs, strict=True):
        torch.save(result.state_dict, out / f"weights_seed{run['seed']}.pt")
    (out / "config.yaml").write_text(
        yaml.safe_dump({"config": config.model_dump(mode="json"), "runs": runs},
                       sort_keys=False), encoding="utf-8")


# ---------------------------------------------------------------------- contracts
def _classes_from(name_or_module: str, registry: Mapping[str, type], base: type,
                  kind: str) -> list[type]:
    """The registered class called ``name_or_module``, or every ``base`` subclass defined in
    the module of that name (imported as a plugin)."""
    import inspect
    import sys

    from losstune.objectives.plugins import (
        PluginError,
        import_plugin_modules,
        load_entry_point_plugins,
    )

    load_entry_point_plugins()
    if name_or_module in registry:
        return [registry[name_or_module]]
    if not all(part.isidentifier() for part in name_or_module.split(".")):
        raise PluginError(f"{name_or_module!r} is neither a registered {kind} "
                          f"({', '.join(sorted(registry))}) nor a module name")
    try:
        import_plugin_modules([name_or_module])
    except PluginError as exc:
        if "." not in name_or_module and "not installed" in str(exc):
            raise PluginError(f"{name_or_module!r} is neither a registered {kind} "
                              f"({', '.join(sorted(registry))}) nor an importable module") \
                from None
        raise
    module = sys.modules[name_or_module]
    found = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
             if issubclass(obj, base) and obj is not base
             and obj.__module__.startswith(name_or_module)
             and not inspect.isabstract(obj) and getattr(obj, "name", "")]
    if not found:
        raise PluginError(f"module {name_or_module!r} defines no {kind} (no subclass of "
                          f"{base.__module__}.{base.__qualname__} with a `name`)")
    return found


def check_loss(name_or_module: str) -> dict[str, list[Any]]:
    """Run the loss contract (the built-in losses' checks) on a registered loss or on every
    loss class of a module. Returns ``{loss name: [problems]}`` (empty lists pass)."""
    from losstune.objectives.losses import LOSSES, BaseLoss
    from losstune.search_spaces.contract import check_loss_contract

    classes = _classes_from(name_or_module, LOSSES, BaseLoss, "loss")
    return {cls.name: check_loss_contract(cls) for cls in classes}


def check_model(name_or_module: str) -> dict[str, list[Any]]:
    """Run the head contract (declared outputs with the right shapes, gradients flow)."""
    from losstune.objectives.models import MODELS, BaseHead
    from losstune.objectives.models.contract import check_model_class
    from losstune.search_spaces.training import MODEL_SPACES

    classes = _classes_from(name_or_module, MODELS, BaseHead, "model head")
    return {cls.name: check_model_class(cls, space=MODEL_SPACES.get(cls.name))
            for cls in classes}


def check_dataset(name: str, options: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
    """Run the dataset contract (splits present and disjoint, labels parse, every class named,
    text non-empty) on a registered dataset, with loader ``options``."""
    from losstune.objectives.data.contract import check_dataset as run_check
    from losstune.objectives.plugins import load_entry_point_plugins

    load_entry_point_plugins()
    return {name: run_check(name, options or {})}


def serve_dashboard(storage: str | None = None, *, host: str = "127.0.0.1",
                    port: int = 8080) -> None:
    """Serve optuna-dashboard on the losstune storage (blocks)."""
    from optuna_dashboard import run_server

    run_server(open_storage_ro(storage), host=host, port=port)


# ---------------------------------------------------------------------- datasets
def list_datasets() -> list[dict[str, Any]]:
    """Every registered dataset: name, description, source, multilabel, derived, options."""
    from losstune.objectives.data import DATASETS
    from losstune.objectives.data.registry import COMMON_OPTIONS
    from losstune.objectives.plugins import load_entry_point_plugins

    load_entry_point_plugins()
    return [{"name": info.name, "description": info.description, "source": info.source,
             "multilabel": info.multilabel, "derived": info.derived,
             "task": "from the data" if "task-from-data" in info.tags else
             "multi-label" if info.multilabel else "single-label",
             "options": sorted(set(COMMON_OPTIONS) | set(info.loader_options))}
            for info in sorted(DATASETS.values(), key=lambda i: i.name)]


def parse_data_options(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["limit.train=100", "path=x.csv", "classes=[a, b]"]`` -> nested options (values are
    read as YAML, so numbers, booleans and lists keep their types)."""
    from losstune.objectives.data.registry import DatasetError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise DatasetError(f"--option expects KEY=VALUE, got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        *parents, leaf = key.strip().split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise DatasetError(f"--option {pair!r} conflicts with an earlier option")
        node[leaf] = value
    return out


def dataset_info(name: str, options: Mapping[str, Any] | None = None, *, head_min: int = 35,
                 tail_max: int = 8, top: int = 5) -> Any:
    """Label statistics of a dataset (:class:`losstune.objectives.data.stats.LabelStatistics`)."""
    from losstune.objectives.data import get_dataset_info, load_dataset
    from losstune.objectives.data.registry import DatasetError
    from losstune.objectives.data.stats import label_statistics

    get_dataset_info(name)
    dataset = load_dataset(name, dict(options or {}))
    try:
        return label_statistics(dataset, head_min=head_min, tail_max=tail_max, top=top)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
