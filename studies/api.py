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

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from losstune.objectives.attributes import TrialRecord
from losstune.objectives.errors import LosstuneError
from losstune.studies.confirm import best_confirmed, confirmation_note, stored_confirmation
from losstune.studies.export import (
    ExportError,
    export_document,
    pick_trial,
    read_config_file,
    write_yaml_atomic,
)
from losstune.studies.optuna_parts import best_first
from losstune.studies.runner import (
    count_states,
)
from losstune.studies.session import run_study as run_study
from losstune.studies.spec import StudySpec, check_device, load_study_file, parse_study
from losstune.studies.stats import mean_ci as mean_ci
from losstune.studies.stats import summarize_runs
from losstune.studies.store import LinkedStudy, linked_study, only_study, resolve_url
from losstune.studies.store import StudyNotFoundError as StudyNotFoundError
from losstune.studies.store import check_storage_writable as check_storage_writable
from losstune.studies.store import get_study as get_study
from losstune.studies.store import is_database_error as is_database_error
from losstune.studies.store import open_storage_ro as open_storage_ro


def load_study(path: str | Path) -> tuple[StudySpec, str]:
    """Read and validate a study file (raises :class:`losstune.studies.spec.StudyFileError`)."""
    return load_study_file(path)


def describe_space(path: str | Path) -> tuple[StudySpec, Any]:
    """Validate a study file as ``losstune run`` does (data included) and compile its search
    space (``losstune space``)."""
    spec, _ = load_study_file(path)
    return spec, spec.compile_space()


def device_warning(spec: StudySpec) -> str | None:
    """Why ``losstune run`` (local launcher) would refuse ``spec``'s ``train.device`` on this
    machine, else None (``losstune space`` prints it as a warning: Ray workers elsewhere may
    have the GPU)."""
    try:
        check_device(spec.train.device)
    except LosstuneError as exc:
        return str(exc)
    return None


def study_from_dict(data: Mapping[str, Any]) -> tuple[StudySpec, str]:
    """Validate a study given as a dict; returns the spec and its YAML text."""
    spec = parse_study(dict(data))
    return spec, yaml.safe_dump(dict(data), sort_keys=False)


def run_suite(path: str | Path, *, storage: str | None = None, quick: bool = False,
              output: str | Path | None = None, markdown: str | Path | None = None,
              only: list[str] | tuple[str, ...] = (), console: Any = None, progress: bool = True,
              command: str | None = None, workers: int = 1) -> Any:
    """Run (or resume) a suite file: search, confirm and choose each arm's configuration per
    dataset, train every chosen configuration on the same seeds x holdouts, and write
    RESULTS.md, results.csv, results.tex and forest.png (``losstune suite``; docs/suites.md).
    Returns a :class:`losstune.studies.suite.runner.SuiteResult`."""
    from losstune.studies.suite.runner import run_suite as _run_suite

    return _run_suite(path, storage=storage, quick=quick, output=output, markdown=markdown,
                      only=only, console=console, progress=progress, command=command,
                      workers=workers)


def serve_storage_proxy(storage: str | None = None, *, host: str = "127.0.0.1",
                        port: int = 13000, threads: int | None = None,
                        pool_size: int | None = None, ready: Any = None) -> None:
    """Serve the storage to workers through a gRPC proxy (``losstune storage-proxy``; blocks):
    workers use ``grpc://HOST:PORT`` as their storage URL. See :mod:`losstune.storage.proxy`."""
    from losstune.storage import proxy

    proxy.serve(resolve_url(storage), host=host, port=port,
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
    linked: LinkedStudy | None = None


def list_studies(storage: str | None = None) -> list[StudyRow]:
    """Every study in the storage with trial counts and best values."""
    st = open_storage_ro(storage)
    rows = []
    for summary in optuna.get_all_study_summaries(st, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=st)
        counts = count_states(study)
        best_value = best_number = None
        linked = linked_study(study.user_attrs)
        if len(study.directions) == 1 and linked is None:
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
            linked=linked,
        ))
    return rows


@dataclass
class FailureGroup:
    """Failed trials of a study that failed for the same reason.

    Attributes:
        reason: the first line of the reason of the group's first trial (``fail_reason``, or
            ``stale_reason`` when its worker died).
        trials: the trial numbers, ascending.
    """

    reason: str
    trials: list[int]


def failure_groups(records: list[TrialRecord]) -> list[FailureGroup]:
    """The FAIL trials of ``records`` grouped by reason, most frequent first. Reasons that
    differ only in numbers (``nan at epoch 3, batch 7``) form one group."""
    import re

    groups: dict[str, FailureGroup] = {}
    for r in records:
        if r.state != TrialState.FAIL.name:
            continue
        reason = (r.fail_reason or "no reason recorded").strip().splitlines()[0]
        key = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", reason)
        groups.setdefault(key, FailureGroup(reason, [])).trials.append(r.number)
    return sorted(groups.values(), key=lambda g: (-len(g.trials), g.trials[0]))


@dataclass
class StudyView:
    """What ``losstune show`` prints: a study's counts, its chosen (or best) trial, its top
    trials and, for multi-objective studies, its Pareto front.

    Attributes:
        name: the study name.
        metric_names: the objective metrics (validation).
        directions: ``maximize`` / ``minimize`` per metric.
        counts: trials per state name (states with trials only).
        chosen: the trial asked for, else the best trial of a single-objective study (None for
            a multi-objective study or a study without a completed trial).
        top: the best completed trials, best first (by the first metric).
        pareto: the Pareto front by trial number (multi-objective studies; else empty).
        confirmation_note: whether ``chosen`` was confirmed, and its winner's curse (empty for
            a linked study).
        user_attrs: the study's user attributes (without the compiled space).
        failures: the failed trials grouped by reason, most frequent first.
        linked: what the study is when it is not a search study (a ``<study>--confirm`` or a
            ``<suite>--runs`` study), else None.
    """

    name: str
    metric_names: list[str]
    directions: list[str]
    counts: dict[str, int]
    chosen: TrialRecord | None
    top: list[TrialRecord]
    pareto: list[TrialRecord]
    confirmation_note: str
    user_attrs: dict[str, Any]
    failures: list[FailureGroup] = field(default_factory=list)
    linked: LinkedStudy | None = None


def show_study(name: str | None = None, storage: str | None = None, *, top: int = 5,
               trial: int | None = None) -> StudyView:
    """The chosen (or best) trial, the top-k trials, the counts and the failure reasons of a
    study (``name`` None: the only search study in the storage)."""
    name = name if name is not None else only_study(storage, command="show")
    study = get_study(name, storage)
    linked = linked_study(study.user_attrs)
    counts = count_states(study)
    directions = [d.name.lower() for d in study.directions]
    metric_names = study.metric_names or ["value"]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    multi = len(directions) > 1
    if multi:
        ranked = best_first(complete, lambda t: t.values[0], directions[0])
        front = [TrialRecord.from_trial(t)
                 for t in sorted(study.best_trials, key=lambda t: t.number)]
    else:
        ranked = best_first(complete, lambda t: t.value, directions[0])
        front = []
    chosen = None
    if trial is not None or not multi:
        try:
            chosen = TrialRecord.from_trial(pick_trial(study, trial))
        except ExportError:
            if trial is not None:
                raise
    return StudyView(
        name=name,
        metric_names=metric_names,
        directions=directions,
        counts={s.name: n for s, n in counts.items() if n},
        chosen=chosen,
        top=[TrialRecord.from_trial(t) for t in ranked[:top]],
        pareto=front,
        confirmation_note=confirmation_note(study, chosen.number)
        if chosen and linked is None else "",
        user_attrs={k: v for k, v in study.user_attrs.items() if k not in ("space",)},
        failures=failure_groups([TrialRecord.from_trial(t) for t in study.get_trials(
            deepcopy=False, states=(TrialState.FAIL,))]),
        linked=linked,
    )


def results_dataframe(name: str, storage: str | None = None) -> Any:
    """All trials as a pandas DataFrame: number, state, values, dotted params, metric attrs."""
    import pandas as pd

    study = get_study(name, storage)
    metric_names = study.metric_names or ["value"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.from_trial(t)
        row: dict[str, Any] = {"number": record.number, "state": record.state}
        for i, m in enumerate(metric_names):
            row[m] = record.values[i] if record.values else None
        row.update(record.params)
        row.update(record.scalar_attributes())
        row["duration_s"] = t.duration.total_seconds() if t.duration else None
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- export and replay
def export_trial(name: str, output: str | Path, *, storage: str | None = None,
                 trial: int | None = None, force: bool = False,
                 confirmed: bool = False) -> tuple[Path, dict]:
    """Write trial ``trial`` (default: the best; ``confirmed``: the best confirmed) of study
    ``name`` to ``output`` as YAML. Returns the path and the document."""
    study = get_study(name, storage)
    if confirmed:
        row = best_confirmed(study)
        if row is None:
            raise ExportError(f"study {name!r} has no confirmed trial; run `losstune confirm "
                              f"{name}` first")
        trial = row.trial
    chosen = pick_trial(study, trial)
    doc = export_document(study, chosen, storage_url=resolve_url(storage))
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
    docs = [export_document(study, t, storage_url=resolve_url(storage)) for t in front]
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
    threads: int | None = None  # torch threads of the replay
    threads_note: str | None = None  # why the replay is not bit-exact, when threads changed


def replay_threads(config: Any, threads: int | None) -> tuple[Any, str | None]:
    """``config`` with the torch threads of a replay: ``threads`` (``--threads``), else the
    config's ``train.threads`` (what the trial was recorded with), else the default of its head
    (:meth:`~losstune.objectives.config.TrialConfig.default_threads`).
    Returns the config and, when ``threads`` differs from the recorded count, one line saying
    that the replay is no longer bit-exact."""
    recorded = config.train.threads
    if threads is not None and threads < 1:
        raise ValueError(f"`threads >= 1` must hold, but got threads={threads}")
    note = None
    if threads is not None and recorded is not None and threads != recorded:
        note = (f"note: --threads {threads} differs from the {recorded} thread(s) the trial was "
                "recorded with (train.threads): CPU sums run in another order, so the replay "
                "is not bit-exact (metrics may differ in the last digits)")
    chosen = threads if threads is not None else recorded
    if chosen is None:
        chosen = config.default_threads()
    return config.with_threads(chosen), note


def thread_warning(threads: int, source: str, workers: int = 1) -> str | None:
    """One line when ``workers`` x ``threads`` exceed the usable cores, else None."""
    from losstune.objectives.config import usable_cores
    from losstune.studies.launchers.base import ThreadPlan

    return ThreadPlan(threads, source, workers, usable_cores()).warning()


def train_config(config: Any, *, seeds: int = 1, output_dir: str | Path | None = None,
                 provenance: Mapping[str, Any] | None = None, threads: int | None = None,
                 on_epoch: Any = None, echo: Any = None) -> TrainReport:
    """Replay a config (a TrialConfig or a path to an export) without Optuna.

    With one seed on CPU the validation metric equals the exported trial's exactly (with the
    thread count it recorded; ``threads`` overrides it, see :func:`replay_threads`). More seeds
    re-train with seeds ``seed, seed+1, ...`` (initialisation and batch order only).
    ``on_epoch(seed_index, epoch)`` is called after each epoch (epochs count from 0);
    ``echo(line)`` receives notes before training starts (threads no longer bit-exact, more
    threads than cores).
    """
    import logging

    from losstune.objectives.training import run_trial

    if isinstance(config, (str, Path)):
        config, provenance = read_config_file(config)  # knobs checked, with the file's paths
    else:
        from losstune.studies.export import check_config_knobs

        check_config_knobs(config, None)
    check_device(config.train.device, hint="set train.device: cpu or auto in the config")
    if seeds < 1:
        raise ValueError(f"`seeds >= 1` must hold, but got seeds={seeds}")
    out = Path(output_dir) if output_dir is not None else None
    if out is not None:
        _check_output_folder(out)
    recorded_threads = config.train.threads
    config, threads_note = replay_threads(config, threads)
    source = ("--threads" if threads is not None else "the trial's train.threads"
              if recorded_threads is not None else "default: usable cores")
    for line in (threads_note, thread_warning(config.train.threads, source)):
        if line and echo is not None:
            echo(line)
    logging.getLogger(__name__).info(
        "train: %d seed(s) of %d epoch(s), %d torch thread(s) (%s)", seeds, config.train.epochs,
        config.train.threads, source)
    base = config.train.seed
    runs = []
    seed_list = [base + i for i in range(seeds)]
    results = []
    for index, seed in enumerate(seed_list):
        step = None if on_epoch is None else (
            lambda epoch, _metrics, index=index: on_epoch(index, epoch))
        result = run_trial(config.with_seed(seed), keep_state=out is not None, on_epoch=step)
        results.append(result)
        runs.append({"seed": seed, "value": result.value, "best_epoch": result.best_epoch,
                     "val": result.val, "test": result.test})
    summary = summarize_runs(runs, skip=frozenset({"train_seconds"}))
    report = TrainReport(config=config, seeds=seed_list, runs=runs, summary=summary,
                         metric=config.eval.metric, threads=config.train.threads,
                         threads_note=threads_note)
    if provenance and isinstance(provenance.get("value"), (int, float)):
        report.recorded_value = float(provenance["value"])
        report.reproduced = runs[0]["value"] == report.recorded_value
    if out is not None:
        _save_weights(out, config, results, runs)
    return report


def _check_output_folder(out: Path) -> None:
    """``out`` is (or can be made) a writable folder: checked before any training."""
    import os

    if out.exists() and not out.is_dir():
        raise ExportError(f"output {str(out)!r} exists and is not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ExportError(f"output {str(out)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"output {str(out)!r}: {str(existing)!r} is not writable here")


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
    """Serve optuna-dashboard on the losstune storage (blocks). A port that is taken or a
    host that cannot be bound is a :class:`DashboardError` before anything is served."""
    from optuna_dashboard import run_server

    opened = open_storage_ro(storage)
    check_port_free(host, port)
    try:
        run_server(opened, host=host, port=port)
    except OSError as exc:  # lost a race for the port, or the host went away
        raise DashboardError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


class DashboardError(LosstuneError, OSError):
    """The dashboard cannot listen where it was asked to."""


def check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` once (and let go): a port in use or a host that is not this
    machine's is an error naming both, with what to do."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DashboardError(f"--host {host!r} is not a host name or address here "
                             f"({getattr(exc, 'strerror', None) or exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            import errno

            if exc.errno == errno.EADDRINUSE:
                raise DashboardError(
                    f"port {port} on {host} is already in use (another dashboard or server?); "
                    "pick a free one with --port, e.g. --port "
                    f"{port + 1 if port < 65535 else 8080}") from None
            if exc.errno == errno.EACCES:
                raise DashboardError(f"port {port} on {host} needs more privileges (ports below "
                                     "1024 usually do); pick another with --port") from None
            raise DashboardError(f"cannot listen on {host}:{port}: "
                                 f"{exc.strerror or exc}") from None


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
