"""Report figures: importances only over enough trials and without constant parameters, no
slice plot of a single trial, figures that fit the page, a loss-term legend that names the
validation curve and sits outside the plot, and confidence intervals drawn whole."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from losstune.studies import api
from losstune.studies.confirm import confirm_study
from losstune.studies.report import (
    MIN_IMPORTANCE_TRIALS,
    _confirm_section,
    _term_section,
    interval_limits,
    varying_params,
    write_report,
)
from tests.conftest import tiny_study

LOSSES = CategoricalDistribution(("ce", "focal"))
GAMMA = FloatDistribution(0.0, 5.0)
LR = FloatDistribution(1e-3, 1e-1, log=True)
SMOOTH = FloatDistribution(0.0, 0.2)


def synthetic_study(url: str, n_ce: int, n_focal: int) -> optuna.Study:
    """A stored study without training: ``n_ce`` CE trials with a constant label smoothing and
    ``n_focal`` focal trials."""
    study = optuna.create_study(study_name="figs", storage=url, direction="maximize")
    for i in range(n_ce):
        study.add_trial(create_trial(
            params={"loss.name": "ce", "loss.ce.label_smoothing": 0.1,
                    "train.lr": 0.002 * (i + 1)},
            distributions={"loss.name": LOSSES, "loss.ce.label_smoothing": SMOOTH,
                           "train.lr": LR},
            value=0.5 + 0.01 * i, state=TrialState.COMPLETE))
    for i in range(n_focal):
        study.add_trial(create_trial(
            params={"loss.name": "focal", "loss.focal.gamma": 1.0 + i, "train.lr": 0.01},
            distributions={"loss.name": LOSSES, "loss.focal.gamma": GAMMA, "train.lr": LR},
            value=0.4, state=TrialState.COMPLETE))
    return study


def figure_json(page: str, slug: str) -> dict:
    """The plotly figure of ``slug`` as embedded in the page: data, layout and config."""
    call = page.index(f'"fig-{slug}",', page.index("Plotly.newPlot(", page.index(
        f'id="fig-{slug}"')))
    pos = call + len(f'"fig-{slug}",')
    decoder = json.JSONDecoder()
    parts = []
    for _ in range(3):
        while page[pos] in " \n\t,":
            pos += 1
        value, pos = decoder.raw_decode(page, pos)
        parts.append(value)
    return dict(zip(("data", "layout", "config"), parts, strict=True))


def test_importance_slice_and_width_rules(sqlite_url: str, tmp_path: Path) -> None:
    synthetic_study(sqlite_url, n_ce=MIN_IMPORTANCE_TRIALS, n_focal=1)
    index = write_report("figs", tmp_path / "rep", storage=sqlite_url)
    page = index.read_text()
    # focal: one trial -> no slice plot and no importances, each said in words
    assert "focal: one completed trial: no slice plot (it needs two or more)" in page
    assert (f"focal: parameter importances not drawn: 1 completed trial(s); they need at least "
            f"{MIN_IMPORTANCE_TRIALS}") in page
    assert not (tmp_path / "rep" / "figures" / "slice_focal.png").exists()
    # ce: enough trials; the constant label smoothing is left out of both plots
    importance = figure_json(page, "importance_ce")
    shown = {y for trace in importance["data"] for y in trace.get("y", [])}
    assert shown == {"train.lr"}
    sliced = figure_json(page, "slice_ce")
    titles = {v.get("title", {}).get("text") for k, v in sliced["layout"].items()
              if k.startswith("xaxis")}
    assert "loss.ce.label_smoothing" not in titles and "train.lr" in titles
    # figures fit the page: no fixed pixel width, responsive plotly, CSS max-width
    for slug in ("slice_ce", "importance_ce", "history"):
        fig = figure_json(page, slug)
        assert "width" not in fig["layout"] and fig["config"].get("responsive") is True
    assert ".figure .plotly-graph-div{max-width:100%}" in page
    assert varying_params(optuna.load_study(study_name="figs", storage=sqlite_url).trials,
                          in_all=True) == ["loss.name", "train.lr"]


def test_whole_study_importance_needs_enough_trials(sqlite_url: str, tmp_path: Path) -> None:
    synthetic_study(sqlite_url, n_ce=2, n_focal=1)
    page = write_report("figs", tmp_path / "rep", storage=sqlite_url).read_text()
    assert "whole study: parameter importances not drawn: 3 completed trial(s)" in page
    assert '"fig-importance"' not in page


def test_term_legend_and_confirmation_intervals(sqlite_url: str, tmp_path: Path) -> None:
    spec, text = api.study_from_dict(tiny_study(n_trials=3))
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    confirm_study("tiny", storage=sqlite_url, top=2, seeds=3)
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    section = _term_section(study, tmp_path, k=1)
    fig = section.figures[0].plotly
    names = [trace.name for trace in fig.data]
    assert "validation macro_f1 (right axis)" in names
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0  # under the plot
    confirmation = _confirm_section(study, tmp_path)
    assert confirmation is not None
    low, high = confirmation.figures[0].plotly.layout.yaxis.range
    means = confirmation.figures[0].plotly.data[0].y
    errs = confirmation.figures[0].plotly.data[0].error_y.array
    for mean, err in zip(means, errs, strict=True):
        assert low < mean - err and mean + err < high


def test_interval_limits_hold_whole_intervals() -> None:
    low, high = interval_limits([0.5, 0.9], [0.3, 0.2], [0.95])
    assert low < 0.2 and high > 1.1
    assert interval_limits([0.7], [0.0], [0.7]) == pytest.approx((0.69, 0.71))
    assert interval_limits([], [], []) == (0.0, 1.0)
