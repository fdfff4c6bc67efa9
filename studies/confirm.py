"""Multi-seed confirmation of a study's best trials (the winner's curse, measured).

``confirm_study`` re-trains the K best trials (single-objective: by value; multi-objective: the
Pareto trials ranked by the first metric) with S fresh seeds each — ``train.seed + 1 ... + S``,
never the seed the search used, so the confirmed mean is not biased by the selection — and
evaluates validation and test with the kept epoch of each run. With ``splits=R`` every seed also
runs on R train/validation holdouts (``data.options.split_seed`` = the dataset's split seed +
0 ... R-1; holdout 0 is the study's own split, and the test split never changes).

Results survive in the RDB where the dashboard shows them:

* a linked study ``<study>--confirm`` holds one COMPLETE trial per (source trial, seed), with the
  source trial's parameters and ``source_trial``, ``seed``, ``metric.val.*``, ``metric.test.*``;
* the study's user attribute ``confirmation`` holds the summary rows (mean, std, 95% interval of
  the validation and test metrics per source trial, and the single-run value).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from losstune.objectives import attributes as attrs_schema
from losstune.objectives.attributes import TrialRecord, result_attributes
from losstune.objectives.errors import LosstuneError
from losstune.studies.optuna_parts import best_first
from losstune.studies.stats import mean_ci
from losstune.studies.store import (
    CONFIRMS_ATTR,
    check_storage_writable,
    get_study,
    linked_study,
    open_storage_ro,
    resolve_url,
)

CONFIRM_SUFFIX = "--confirm"


class ConfirmError(LosstuneError, ValueError):
    """A study cannot be confirmed (no completed trial, bad arguments)."""

SUMMARY_ATTR = "confirmation"


@dataclass
class ConfirmRow:
    trial: int
    loss: str
    single_value: float
    seeds: list[int]
    val: list[float]
    test: dict[str, list[float]]
    val_stats: dict[str, float] = field(default_factory=dict)
    test_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    diverged: list[int] = field(default_factory=list)  # seeds whose training went NaN
    splits: int = 1  # holdouts per seed (``val`` lists one value per (split, seed) run)

    @property
    def winners_curse(self) -> float:
        """How much the single search run exceeded the confirmed mean."""
        return self.single_value - self.val_stats["mean"]

    def to_json(self) -> dict[str, Any]:
        return {
            "trial": self.trial, "loss": self.loss, "single_value": self.single_value,
            "seeds": self.seeds, "val": self.val, "test": self.test,
            "val_stats": self.val_stats, "test_stats": self.test_stats,
            "diverged": self.diverged, "splits": self.splits,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfirmRow:
        return cls(trial=data["trial"], loss=data["loss"], single_value=data["single_value"],
                   seeds=data["seeds"], val=data["val"], test=data["test"],
                   val_stats=data["val_stats"], test_stats=data["test_stats"],
                   diverged=data.get("diverged", []), splits=data.get("splits", 1))


@dataclass
class ConfirmReport:
    study: str
    metric: str
    direction: str
    rows: list[ConfirmRow]
    seconds: float
    threads_note: str | None = None  # --threads differs from what the trials recorded

    def ranked(self) -> list[ConfirmRow]:
        return best_first(self.rows, lambda r: r.val_stats["mean"], self.direction)

    def single_run_best(self) -> ConfirmRow:
        return best_first(self.rows, lambda r: r.single_value, self.direction)[0]


def top_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """Single-objective: the K best COMPLETE trials. Multi-objective: Pareto trials ranked by
    the first metric."""
    directions = [d.name.lower() for d in study.directions]
    if len(directions) > 1:
        pool = list(study.best_trials)
    else:
        pool = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pool = [t for t in pool if t.values and attrs_schema.CONFIG in t.user_attrs]
    return best_first(pool, lambda t: t.values[0], directions[0])[:k]


def confirm_study(
    name: str,
    *,
    storage: str | None = None,
    top: int = 5,
    seeds: int = 5,
    splits: int = 1,
    on_run: Callable[[int, int, float], None] | None = None,
    threads: int | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
    on_plan: Callable[[list[int]], None] | None = None,
    echo: Callable[[str], None] | None = None,
) -> ConfirmReport:
    """Re-train the ``top`` best trials of study ``name`` with ``seeds`` fresh seeds each, on
    ``splits`` train/validation holdouts (1: the study's own split only).

    ``threads`` overrides the torch threads each trial recorded (``train.threads``; trials
    without one use the usable cores); ``on_plan(epochs)`` receives the epochs of every run
    before the first starts, ``on_epoch(run_index, epoch)`` is called after each epoch and
    ``on_run(trial, seed, value)`` after each run (for progress displays); ``echo(line)``
    receives notes before training starts (threads no longer bit-exact, more threads than
    cores).
    """
    import logging
    import time

    from losstune.objectives.config import TrialConfig
    from losstune.objectives.data.registry import holdout_options
    from losstune.objectives.training import NonFiniteLossError, run_trial

    if top < 1 or seeds < 1 or splits < 1:
        raise ConfirmError(f"`top >= 1`, `seeds >= 1` and `splits >= 1` must hold, but got "
                           f"top={top}, seeds={seeds}, splits={splits}")
    check_storage_writable(resolve_url(storage), writer="confirm")  # refused before any training
    study = get_study(name, storage)
    linked = linked_study(study.user_attrs)
    if linked is not None:
        raise ConfirmError(f"study {name!r} holds the {linked.description}, not a search; "
                           + (f"confirm {linked.source!r} instead" if linked.kind == "confirm"
                              else "its runs are already the suite's evaluation"))
    chosen = top_trials(study, top)
    if not chosen:
        raise ConfirmError(f"study {name!r} has no completed trial to confirm yet")
    metric_names = study.metric_names or ["value"]
    direction = study.directions[0].name.lower()
    st = open_storage_ro(storage)
    linked = optuna.create_study(
        study_name=name + CONFIRM_SUFFIX, storage=st, load_if_exists=True,
        directions=[d.name.lower() for d in study.directions[:1]],
    )
    _set_metric_names(linked, metric_names[:1])
    linked.set_user_attr(CONFIRMS_ATTR, name)
    _describe_linked(linked, name, resolve_url(storage))
    if threads is not None and threads < 1:
        raise ConfirmError(f"`threads >= 1` must hold, but got threads={threads}")
    configs = [TrialConfig.model_validate(TrialRecord.from_trial(t).config) for t in chosen]
    recorded = sorted({c.train.threads for c in configs if c.train.threads is not None})
    threads_note = None
    if threads is not None and recorded and recorded != [threads]:
        counts = "/".join(map(str, recorded))
        threads_note = (f"note: --threads {threads} differs from the {counts} thread(s)"
                        " the trials were recorded with (train.threads): these runs "
                        "are not bit-exact repeats of a confirmation with the recorded threads")
    if echo is not None:
        from losstune.objectives.config import usable_cores
        from losstune.studies.launchers.base import ThreadPlan

        most = max([threads] if threads is not None else
                   [c.train.threads or c.default_threads() for c in configs])
        source = "--threads" if threads is not None else "the trials' train.threads"
        for line in (threads_note, ThreadPlan(most, source, 1, usable_cores()).warning()):
            if line:
                echo(line)
    if on_plan is not None:
        on_plan([c.train.epochs for c in configs for _ in range(seeds * splits)])
    logger = logging.getLogger(__name__)
    started = time.time()
    rows: list[ConfirmRow] = []
    run_index = 0
    for trial, config in zip(chosen, configs, strict=True):
        record = TrialRecord.from_trial(trial)
        run_threads = threads if threads is not None else (
            config.train.threads if config.train.threads is not None
            else config.default_threads())
        logger.info("confirm: trial %d with %d torch thread(s) (%s), %d run(s)", trial.number,
                    run_threads, "--threads" if threads is not None else "recorded"
                    if config.train.threads is not None else "default",
                    seeds * splits)
        config = config.with_threads(run_threads)
        if config.plugins:
            from losstune.objectives.plugins import import_plugin_modules

            import_plugin_modules(list(config.plugins))
        seed_list = [config.train.seed + i for i in range(1, seeds + 1)]
        vals: list[float] = []
        tests: dict[str, list[float]] = {}
        diverged: list[int] = []
        runs = [(split, seed) for split in range(splits) for seed in seed_list]
        for split, seed in runs:
            run_config = config.with_seed(seed)
            if split:
                data = run_config.data.model_copy(update={"options": holdout_options(
                    config.data.name, config.data.options, split)})
                run_config = run_config.model_copy(update={"data": data})
            step = None if on_epoch is None else (
                lambda epoch, _metrics, index=run_index: on_epoch(index, epoch))
            run_index += 1
            try:
                result = run_trial(run_config, on_epoch=step)
            except NonFiniteLossError:
                if seed not in diverged:
                    diverged.append(seed)  # recorded; the other seeds still count
                if on_run is not None:
                    on_run(trial.number, seed, math.nan)
                continue
            vals.append(result.value)
            for k, v in result.test.items():
                tests.setdefault(k, []).append(v)
            _record(linked, trial, seed, result, metric_names[0],
                    split=split if splits > 1 else None)
            if on_run is not None:
                on_run(trial.number, seed, result.value)
        if not vals:
            raise ConfirmError(f"trial {trial.number}: training diverged (NaN loss) for every "
                               f"seed {diverged}; it cannot be confirmed")
        row = ConfirmRow(
            trial=trial.number,
            loss=str(record.loss or config.loss.primary.name),
            single_value=float(trial.values[0]),
            seeds=seed_list,
            val=vals,
            test=tests,
            val_stats=mean_ci(vals),
            test_stats={k: mean_ci(v) for k, v in tests.items()},
            diverged=diverged,
            splits=splits,
        )
        rows.append(row)
    report = ConfirmReport(study=name, metric=metric_names[0], direction=direction, rows=rows,
                           seconds=time.time() - started, threads_note=threads_note)
    previous = {r["trial"]: r for r in study.user_attrs.get(SUMMARY_ATTR, [])}
    for row in rows:
        previous[row.trial] = row.to_json()
    study.set_user_attr(SUMMARY_ATTR, [previous[k] for k in sorted(previous)])
    return report


def _describe_linked(linked: optuna.Study, name: str, url: str) -> None:
    """The dashboard note of ``<study>--confirm``: what its trials are (not a search)."""
    from losstune.studies.runner import save_dashboard_note

    save_dashboard_note(linked, "\n".join([
        f"# {linked.study_name}",
        "",
        f"**Confirmation runs of study `{name}`** (`losstune confirm {name}`), not a search: "
        f"each trial re-trains one of the best trials of `{name}` (user attribute "
        "`source_trial`) with a fresh seed (`seed`), and on another train/validation holdout "
        "when `split` is set. Its parameters repeat the source trial's, so this study's "
        "parameter plots compare seeds, not configurations.",
        "",
        f"The summary (mean and 95% interval per trial, the winner's curse) is the "
        f"`confirmation` attribute of `{name}`: `losstune show {name}`, "
        f"`losstune report {name} -o DIR`.",
    ]), url)


def _set_metric_names(study: optuna.Study, names: list[str]) -> None:
    from losstune.storage import quiet_experimental

    with quiet_experimental():
        study.set_metric_names(names)


def _record(linked: optuna.Study, source: optuna.trial.FrozenTrial, seed: int, result: Any,
            metric: str, split: int | None = None) -> None:
    attrs = {k: v for k, v in result_attributes(result).items()
             if not k.startswith(attrs_schema.CURVE_PREFIX)}
    attrs.update({attrs_schema.SOURCE_TRIAL: source.number, attrs_schema.SEED: seed,
                  attrs_schema.CONFIG: source.user_attrs.get(attrs_schema.CONFIG)})
    if split is not None:
        attrs[attrs_schema.SPLIT] = split
    value = float(result.value)
    if not math.isfinite(value):
        return
    linked.add_trial(optuna.trial.create_trial(
        params=dict(source.params), distributions=dict(source.distributions),
        value=value, user_attrs=attrs, state=TrialState.COMPLETE,
    ))


def stored_confirmation(study: optuna.Study) -> dict[int, ConfirmRow]:
    """Confirmation rows stored on a study, by source trial number."""
    return {r["trial"]: ConfirmRow.from_json(r) for r in study.user_attrs.get(SUMMARY_ATTR, [])}


def best_confirmed(study: optuna.Study) -> ConfirmRow | None:
    rows = list(stored_confirmation(study).values())
    if not rows:
        return None
    return best_first(rows, lambda r: r.val_stats["mean"], study.directions[0].name)[0]


def confirmation_note(study: optuna.Study, trial_number: int) -> str:
    """One line for ``show`` and ``export``: confirmed or not, and the winner's curse."""
    rows = stored_confirmation(study)
    if trial_number not in rows:
        return (f"trial {trial_number} is not confirmed yet (run `losstune confirm "
                f"{study.study_name}`)")
    r = rows[trial_number]
    s = r.val_stats
    return (f"confirmed with {len(r.seeds)} fresh seeds: mean {s['mean']:.4f} ± {s['ci95']:.4f} "
            f"(95% CI); the single search run {r.single_value:.4f} exceeded it by "
            f"{r.winners_curse:+.4f} (winner's curse)")
