"""Static study reports: one offline HTML page (plotly embedded, no CDN) plus PNG figures.

Figures come from ``optuna.visualization`` (interactive) and ``optuna.visualization.matplotlib``
(PNG). Loss knobs are conditional (``loss.focal.gamma`` exists only when focal was chosen), and
Optuna's importance and slice plots work on parameters every trial has; so besides the
whole-study plots, each loss gets its own slice and importance plots over only the trials that
chose it (a filtered in-memory copy of the study). Per-term loss curves, confirmation
intervals and head/medium/tail F1 come from the trials' user attributes.
"""

from __future__ import annotations

import html
import logging
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from losstune.objectives.attributes import LOSS_PARAM, TrialRecord
from losstune.objectives.errors import LosstuneError
from losstune.studies.secrets import scrub_text

logger = logging.getLogger(__name__)


class ReportError(LosstuneError, ValueError):
    """The report cannot be written where asked."""


@dataclass
class Figure:
    slug: str
    title: str
    plotly: Any = None
    png: str | None = None
    note: str = ""


@dataclass
class Section:
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)
    table_html: str = ""


#: Fewest completed trials a parameter-importance plot is drawn over: fewer make importances
#: that are noise (a forest fitted to a handful of points), so the report says so instead.
MIN_IMPORTANCE_TRIALS = 5
#: Widest PNG figure (inches); wider slice plots squeeze their panels instead.
MAX_PNG_WIDTH = 18.0


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def varying_params(trials: list[optuna.trial.FrozenTrial], *,
                   in_all: bool = False) -> list[str]:
    """Parameters that take more than one value over ``trials``, sorted (with ``in_all``: only
    those every trial has). A parameter that never changes explains nothing, so slice and
    importance plots leave it out."""
    names = {p for t in trials for p in t.params}
    if in_all:
        names = {p for p in names if all(p in t.params for t in trials)}
    return sorted(p for p in names
                  if len({repr(t.params[p]) for t in trials if p in t.params}) > 1)


def _importance_note(what: str, n: int) -> str:
    return (f"{what}: parameter importances not drawn: {n} completed trial(s); they need at "
            f"least {MIN_IMPORTANCE_TRIALS} to mean anything")


def _target(study: optuna.Study) -> tuple[Callable[[Any], float] | None, str]:
    names = study.metric_names or ["value"]
    if len(study.directions) > 1:
        return (lambda t: t.values[0]), names[0]
    return None, names[0]


def loss_substudy(study: optuna.Study, loss: str) -> optuna.Study:
    """An in-memory study with only the COMPLETE trials that chose ``loss``."""
    sub = optuna.create_study(directions=[d.name.lower() for d in study.directions])
    for t in _complete(study):
        if t.params.get(LOSS_PARAM) == loss:
            sub.add_trial(optuna.trial.create_trial(
                params=dict(t.params), distributions=dict(t.distributions),
                values=list(t.values), user_attrs={}, state=TrialState.COMPLETE))
    return sub


def _safe(build: Callable[[], Any], what: str) -> tuple[Any, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build(), ""
    except Exception as exc:  # noqa: BLE001 - a figure Optuna cannot draw becomes a note
        logger.debug("figure %s failed", what, exc_info=True)
        return None, f"{what}: not drawn ({type(exc).__name__}: {str(exc).splitlines()[0]})"


def _save_png(ax_or_fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = getattr(ax_or_fig, "figure", None)
    if fig is None and hasattr(ax_or_fig, "flat"):
        fig = ax_or_fig.flat[0].figure
    if fig is None:
        fig = plt.gcf()
    panels = sum(1 for ax in fig.axes if ax.get_label() != "<colorbar>")
    fig.set_size_inches(min(max(9.0, 3.4 * panels + 1.5), MAX_PNG_WIDTH), 5.5)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _figure(slug: str, title: str, fig_dir: Path, interactive: Callable[[], Any],
            static: Callable[[], Any] | None) -> Figure:
    fig, note = _safe(interactive, title)
    png = None
    if static is not None and fig is not None:
        ax, snote = _safe(static, title + " (PNG)")
        if ax is not None:
            name = f"{slug}.png"
            _save_png(ax, fig_dir / name)
            png = f"figures/{name}"
        note = note or snote
    return Figure(slug=slug, title=title, plotly=fig, png=png, note=note)


def _study_sections(study: optuna.Study, fig_dir: Path) -> list[Section]:
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as mvis

    target, target_name = _target(study)
    kw = {"target": target, "target_name": target_name} if target else {}
    overview = Section("Search", "Whole-study views (all trials).")
    overview.figures.append(_figure(
        "history", "Optimisation history", fig_dir,
        lambda: vis.plot_optimization_history(study, **kw),
        lambda: mvis.plot_optimization_history(study, **kw)))
    if len(study.directions) == 1:
        overview.figures.append(_figure(
            "intermediate", "Validation metric per epoch (reported for pruning)", fig_dir,
            lambda: vis.plot_intermediate_values(study),
            lambda: mvis.plot_intermediate_values(study)))
    else:
        names = study.metric_names or None
        overview.figures.append(_figure(
            "pareto", "Pareto front", fig_dir,
            lambda: vis.plot_pareto_front(study, target_names=names),
            lambda: mvis.plot_pareto_front(study, target_names=names)
            if len(study.directions) in (2, 3) else None))
    complete = _complete(study)
    varying = varying_params(complete, in_all=True)
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        overview.figures.append(Figure("importance", "Parameter importances",
                                       note=_importance_note("whole study", len(complete))))
    elif not varying:
        overview.figures.append(Figure(
            "importance", "Parameter importances",
            note="parameter importances not drawn: no parameter that every trial has takes "
                 "more than one value"))
    else:
        overview.figures.append(_figure(
            "importance", "Parameter importances (parameters every trial has that vary)",
            fig_dir,
            lambda: vis.plot_param_importances(study, params=varying, **kw),
            lambda: mvis.plot_param_importances(study, params=varying, **kw)))
    overview.figures.append(_figure(
        "parallel", "Parallel coordinates", fig_dir,
        lambda: vis.plot_parallel_coordinate(study, **kw),
        lambda: mvis.plot_parallel_coordinate(study, **kw)))
    return [overview]


def _per_loss_sections(study: optuna.Study, fig_dir: Path) -> list[Section]:
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as mvis

    losses = sorted({str(t.params[LOSS_PARAM]) for t in _complete(study)
                     if LOSS_PARAM in t.params})
    sections = []
    for loss in losses:
        sub = loss_substudy(study, loss)
        knobs = sorted({p for t in sub.trials for p in t.params if p.startswith(f"loss.{loss}.")})
        section = Section(
            f"Loss {loss}",
            f"{len(sub.trials)} completed trial(s) chose {loss}; slice and importance plots over "
            "only those trials, so its conditional knobs are included.")
        target, target_name = _target(sub)
        kw = {"target": target, "target_name": target_name} if target else {}
        varying = set(varying_params(sub.trials))
        params = [p for p in knobs + sorted({p for t in sub.trials for p in t.params
                                             if p.startswith(("train.", "model.", "weight."))})
                  if p in varying]
        n = len(sub.trials)
        if n < 2:
            section.figures.append(Figure(
                f"slice_{loss}", f"{loss}: slice plot",
                note=f"{loss}: one completed trial: no slice plot (it needs two or more)"))
        elif params:
            section.figures.append(_figure(
                f"slice_{loss}", f"{loss}: slice plot ({n} trials)", fig_dir,
                lambda sub=sub, params=params, kw=kw: vis.plot_slice(sub, params=params, **kw),
                lambda sub=sub, params=params, kw=kw: mvis.plot_slice(sub, params=params, **kw)))
        important = [p for p in params if all(p in t.params for t in sub.trials)]
        if n < MIN_IMPORTANCE_TRIALS:
            section.figures.append(Figure(f"importance_{loss}",
                                          f"{loss}: parameter importances",
                                          note=_importance_note(loss, n)))
        elif important:
            section.figures.append(_figure(
                f"importance_{loss}", f"{loss}: parameter importances", fig_dir,
                lambda sub=sub, kw=kw, ps=important: vis.plot_param_importances(
                    sub, params=ps, **kw),
                lambda sub=sub, kw=kw, ps=important: mvis.plot_param_importances(
                    sub, params=ps, **kw)))
        sections.append(section)
    return sections


def _best_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    from losstune.studies.confirm import top_trials

    return top_trials(study, k)


def _term_section(study: optuna.Study, fig_dir: Path, k: int = 3) -> Section:
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    section = Section("Loss terms of the best trials",
                      "Mean value of each named loss term per epoch (user attributes "
                      "curve.term_*), and the validation metric.")
    for trial in _best_trials(study, k):
        record = TrialRecord.from_trial(trial)
        curves = record.term_curves
        if not curves:
            continue
        metric = (study.metric_names or ["macro_f1"])[0]
        val = record.val_curve(metric)
        val_label = f"validation {metric} (right axis)"
        fig = go.Figure()
        for name, values in curves.items():
            fig.add_trace(go.Scatter(y=values, mode="lines+markers", name=f"term {name}"))
        if val:
            fig.add_trace(go.Scatter(y=val, mode="lines", name=val_label,
                                     yaxis="y2", line={"dash": "dot"}))
        # the legend goes under the plot, where it covers no curve
        fig.update_layout(title=f"Trial {trial.number}: loss terms per epoch",
                          xaxis_title="epoch", yaxis_title="loss term",
                          yaxis2={"overlaying": "y", "side": "right",
                                  "title": f"validation {metric}"},
                          legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"})
        mfig, ax = plt.subplots()
        for name, values in curves.items():
            ax.plot(values, marker="o", label=f"term {name}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss term")
        handles, labels = ax.get_legend_handles_labels()
        if val:
            ax2 = ax.twinx()
            ax2.plot(val, linestyle=":", color="black", label=val_label)
            ax2.set_ylabel(f"validation {metric}")
            more = ax2.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.0, -0.14),
                  ncol=min(len(labels), 3), frameon=False)
        ax.set_title(f"Trial {trial.number}: loss terms per epoch")
        name = f"terms_trial{trial.number}.png"
        _save_png(mfig, fig_dir / name)
        section.figures.append(Figure(f"terms_{trial.number}", f"Trial {trial.number}", fig,
                                      f"figures/{name}"))
    return section


def _confirm_section(study: optuna.Study, fig_dir: Path) -> Section | None:
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    from losstune.studies.confirm import stored_confirmation
    from losstune.studies.optuna_parts import best_first

    rows = best_first(list(stored_confirmation(study).values()),
                      lambda r: r.val_stats["mean"], study.directions[0].name)
    if not rows:
        return None
    labels = [f"#{r.trial} {r.loss}" for r in rows]
    means = [r.val_stats["mean"] for r in rows]
    errs = [r.val_stats["ci95"] for r in rows]
    singles = [r.single_value for r in rows]
    fig = go.Figure([
        go.Scatter(x=labels, y=means, error_y={"type": "data", "array": errs}, mode="markers",
                   name="confirmed mean ± 95% CI"),
        go.Scatter(x=labels, y=singles, mode="markers", marker={"symbol": "x"},
                   name="single search run"),
    ])
    low, high = interval_limits(means, errs, singles)
    fig.update_layout(title="Confirmation: validation metric over fresh seeds",
                      yaxis_title=(study.metric_names or ["value"])[0],
                      yaxis={"range": [low, high]})
    mfig, ax = plt.subplots()
    ax.errorbar(range(len(rows)), means, yerr=errs, fmt="o", capsize=4,
                label="confirmed mean ± 95% CI")
    ax.plot(range(len(rows)), singles, "x", label="single search run")
    ax.set_ylim(low, high)
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right")
    ax.legend(loc="best")
    ax.set_title("Confirmation: validation metric over fresh seeds")
    _save_png(mfig, fig_dir / "confirmation.png")
    header = ("<tr><th>rank</th><th>trial</th><th>loss</th><th>single run</th>"
              "<th>confirmed mean</th><th>95% CI</th><th>winner's curse</th>"
              "<th>test macro-F1 (mean)</th><th>seeds</th></tr>")
    body = "".join(
        f"<tr><td>{i}</td><td>{r.trial}</td><td>{html.escape(r.loss)}</td>"
        f"<td>{r.single_value:.4f}</td><td>{r.val_stats['mean']:.4f}</td>"
        f"<td>±{r.val_stats['ci95']:.4f}</td><td>{r.winners_curse:+.4f}</td>"
        f"<td>{r.test_stats.get('macro_f1', {}).get('mean', math.nan):.4f}</td>"
        f"<td>{len(r.seeds)}</td></tr>"
        for i, r in enumerate(rows, 1))
    section = Section("Confirmation", "Best trials re-trained with fresh seeds "
                      "(`losstune confirm`).", table_html=f"<table>{header}{body}</table>")
    section.figures.append(Figure("confirmation", "Confirmation intervals", fig,
                                  "figures/confirmation.png"))
    return section


def interval_limits(means: list[float], half_widths: list[float],
                    points: list[float]) -> tuple[float, float]:
    """Axis limits that hold every whole interval ``mean ± half_width`` and every point, with
    a 10% margin (non-finite numbers ignored)."""
    values = [v for m, e in zip(means, half_widths, strict=True) for v in (m - e, m + e)]
    values = [v for v in values + list(points) if math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    pad = 0.1 * (high - low) or 0.01
    return low - pad, high + pad


def _groups_section(study: optuna.Study, fig_dir: Path, k: int = 5) -> Section | None:
    import matplotlib.pyplot as plt
    import numpy as np
    import plotly.graph_objects as go

    trials = [TrialRecord.from_trial(t) for t in _best_trials(study, k)]
    groups = [g for g in ("head", "medium", "tail")
              if any(f"{g}_macro_f1" in t.test for t in trials)]
    if len(groups) < 2:  # one group only (e.g. R8): nothing to compare
        return None
    fig = go.Figure()
    mfig, ax = plt.subplots()
    width = 0.8 / max(len(trials), 1)
    for i, t in enumerate(trials):
        ys = [t.test.get(f"{g}_macro_f1") or 0.0 for g in groups]
        label = f"#{t.number} {t.params.get(LOSS_PARAM, '')}"
        fig.add_trace(go.Bar(x=groups, y=ys, name=label))
        ax.bar(np.arange(len(groups)) + i * width, ys, width, label=label)
    fig.update_layout(barmode="group", title="Test macro-F1 by class group (training frequency)",
                      yaxis_title="macro-F1")
    ax.set_xticks(np.arange(len(groups)) + width * (len(trials) - 1) / 2, groups)
    ax.set_ylabel("test macro-F1")
    ax.legend()
    ax.set_title("Test macro-F1 by class group")
    _save_png(mfig, fig_dir / "class_groups.png")
    groups_cfg = ((trials[0].config or {}).get("eval") or {}).get("class_groups") or (35, 8)
    section = Section("Head / medium / tail classes",
                      f"Classes grouped by training frequency: head ≥ {groups_cfg[0]}, tail ≤ "
                      f"{groups_cfg[1]} training documents (eval.class_groups).")
    section.figures.append(Figure("groups", "Class groups", fig, "figures/class_groups.png"))
    return section


def _linked_section(study: optuna.Study, linked: Any) -> Section:
    """A ``<study>--confirm`` or ``<suite>--runs`` study: a table of its runs, no search plots
    (its trials repeat chosen configurations with other seeds; they are not a search)."""
    if linked.kind == "confirm":
        intro = (f"These are the confirmation runs of study {linked.source!r} (losstune "
                 f"confirm), not a search, so this report draws no search plots. The "
                 f"confirmation intervals and the winner's curse are in the report of "
                 f"{linked.source!r} (losstune report {linked.source} -o DIR).")
        keys = ("source_trial", "seed", "split")
    else:
        intro = (f"These are the evaluation runs of suite {linked.source!r} (losstune suite), "
                 "not a search, so this report draws no search plots. The suite's tables are "
                 "in its RESULTS.md.")
        keys = ("arm", "dataset", "split", "seed")
    names = study.metric_names or ["value"]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("trial", "state", *keys))
    head += f"<th>validation {html.escape(names[0])}</th><th>test macro-F1</th>"
    body = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.from_trial(t)
        cells = [str(t.number), t.state.name.lower(),
                 *[html.escape(str(t.user_attrs.get(k, "-"))) for k in keys],
                 "-" if not record.values else f"{record.values[0]:.4f}",
                 "-" if record.test.get("macro_f1") is None
                 else f"{record.test['macro_f1']:.4f}"]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return Section("Runs", intro, table_html=f"<table><tr>{head}</tr>{''.join(body)}</table>")


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
pre{background:#f6f6f6;padding:1em;overflow:auto}.note{color:#a00}img{max-width:100%}
.figure{max-width:100%;overflow-x:auto}.figure .plotly-graph-div{max-width:100%}"""


def _render(study: optuna.Study, sections: list[Section], storage_url: str,
            linked: Any = None) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>losstune report: "
             f"{html.escape(study.study_name)}</title><style>{_CSS}</style></head><body>"]
    names = study.metric_names or ["value"]
    counts = {s: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    parts.append(f"<h1>Study {html.escape(study.study_name)}</h1>")
    if linked is not None:
        parts.append(f"<p><strong>{html.escape(linked.description.capitalize())}</strong>"
                     "</p>")
    parts.append(f"<p>Objective: validation {html.escape(', '.join(names))} "
                 f"({', '.join(d.name.lower() for d in study.directions)}). Trials: "
                 + ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)
                 + ". Test metrics are recorded but never used for selection.</p>")
    first_plot = True
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.intro:
            parts.append(f"<p>{html.escape(section.intro)}</p>")
        if section.table_html:
            parts.append(section.table_html)
        for fig in section.figures:
            parts.append(f"<h3>{html.escape(fig.title)}</h3>")
            if fig.plotly is not None:
                # fit the page: no fixed pixel width (Optuna's slice plot sets one per panel)
                fig.plotly.update_layout(width=None, autosize=True)
                parts.append("<div class='figure'>" + fig.plotly.to_html(
                    full_html=False, include_plotlyjs=True if first_plot else False,
                    div_id=f"fig-{fig.slug}", default_width="100%",
                    config={"responsive": True}) + "</div>")
                first_plot = False
            if fig.png:
                parts.append(f"<p><a href='{fig.png}'>PNG</a></p>")
            if fig.note:
                parts.append(f"<p class='note'>{html.escape(fig.note)}</p>")
    study_file = study.user_attrs.get("study_file")
    if study_file:
        parts.append("<h2>Study file</h2><pre>"
                     + html.escape(scrub_text(str(study_file), storage_url)) + "</pre>")
    parts.append("</body></html>")
    return scrub_text("\n".join(parts), storage_url)


#: Steps :func:`write_report` announces through ``progress`` (for a bar's total).
REPORT_STEPS = 5


def write_report(name: str, output: str | Path, *, storage: str | None = None,
                 force: bool = False,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Write ``output/index.html`` and ``output/figures/*.png`` for study ``name``.

    The report is built in a temporary folder and moved into place, so a failure never leaves
    a half-written report; an existing non-empty folder is replaced only with ``force``.
    ``progress(message)`` is called as each of the (at most :data:`REPORT_STEPS`) steps starts.
    """
    import matplotlib

    matplotlib.use("Agg")
    from losstune.studies.store import get_study, linked_study, resolve_url

    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ReportError(f"report output {str(out)!r} is a file; give a folder name")
    if out.exists() and any(out.iterdir()) and not force:
        raise ReportError(f"report folder {str(out)!r} is not empty; pass --force to replace it")
    parent = out.resolve().parent
    if not parent.exists():
        raise ReportError(f"folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportError(f"folder {str(parent)!r} is not writable here; pick another -o")
    study = get_study(name, storage)
    if not _complete(study):
        raise ReportError(f"study {name!r} has no completed trial to report on")
    url = resolve_url(storage)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as exc:
        raise ReportError(f"cannot write into {str(parent)!r}: {exc.strerror or exc}") from None
    try:
        fig_dir = tmp / "figures"
        fig_dir.mkdir()
        step = progress or (lambda _msg: None)
        linked = linked_study(study.user_attrs)
        if linked is not None:
            sections = [_linked_section(study, linked)]
        else:
            step("whole-study figures")
            sections = _study_sections(study, fig_dir)
            step("per-loss figures")
            sections += _per_loss_sections(study, fig_dir)
            step("loss-term curves")
            sections.append(_term_section(study, fig_dir))
            step("confirmation and class groups")
            for extra in (_confirm_section(study, fig_dir), _groups_section(study, fig_dir)):
                if extra is not None:
                    sections.append(extra)
        step("index page")
        (tmp / "index.html").write_text(_render(study, sections, url, linked),
                                        encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "index.html"
