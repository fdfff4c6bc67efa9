"""Compare studies side by side: best single run and best confirmed result of each."""

from __future__ import annotations

import math
from typing import Any

from losstune.objectives.attributes import LOSS_PARAM, TrialRecord
from losstune.studies.confirm import best_confirmed
from losstune.studies.export import ExportError, pick_trial
from losstune.studies.store import get_study, linked_study, only_study


def compare_studies(names: list[str], storage: str | None = None) -> list[dict[str, Any]]:
    """One row per study: its best trial (value, loss, test metrics) and its best confirmed
    configuration (mean and 95% interval over fresh seeds), when it was confirmed. No names:
    the only search study in the storage. A linked study (``<study>--confirm``,
    ``<suite>--runs``) gets a row that says what it is, without a best trial."""
    rows = []
    for name in names or [only_study(storage, command="compare")]:
        study = get_study(name, storage)
        metric = (study.metric_names or ["value"])[0]
        row: dict[str, Any] = {"study": name, "dataset": study.user_attrs.get("dataset", "-"),
                               "metric": metric, "trials": len(study.trials)}
        linked = linked_study(study.user_attrs)
        if linked is not None:
            row.update(linked=linked.description, best_trial=None, best_loss="-",
                       best_value=None, best_test_macro_f1=None, best_test_accuracy=None)
            rows.append(row)
            continue
        try:
            best = pick_trial(study, None)
            record = TrialRecord.from_trial(best)
            row.update(best_trial=record.number, best_loss=record.params.get(LOSS_PARAM, "-"),
                       best_value=best.value,
                       best_test_macro_f1=record.test.get("macro_f1"),
                       best_test_accuracy=record.test.get("accuracy"))
        except ExportError:
            row.update(best_trial=None, best_loss="-", best_value=None,
                       best_test_macro_f1=None, best_test_accuracy=None)
        confirmed = best_confirmed(study)
        if confirmed is not None:
            row.update(confirmed_trial=confirmed.trial, confirmed_loss=confirmed.loss,
                       confirmed_mean=confirmed.val_stats["mean"],
                       confirmed_ci95=confirmed.val_stats["ci95"],
                       confirmed_seeds=len(confirmed.seeds),
                       confirmed_test_macro_f1=confirmed.test_stats.get("macro_f1", {})
                       .get("mean"))
        rows.append(row)
    return rows


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


COLUMNS = ("study", "dataset", "metric", "best loss", "best val", "best test macro-F1",
           "confirmed loss", "confirmed val (95% CI)", "confirmed test macro-F1")


def table_cells(row: dict[str, Any]) -> list[str]:
    confirmed = ("-" if row.get("confirmed_mean") is None else
                 f"{row['confirmed_mean']:.4f} ± {row['confirmed_ci95']:.4f} "
                 f"(#{row['confirmed_trial']}, {row['confirmed_seeds']} seeds)")
    best_loss = "-" if row["best_trial"] is None else f"{row['best_loss']} (#{row['best_trial']})"
    study = row["study"] + (f" ({row['linked']})" if row.get("linked") else "")
    return [study, str(row["dataset"]), row["metric"], best_loss, _num(row["best_value"]),
            _num(row["best_test_macro_f1"]), str(row.get("confirmed_loss", "-")), confirmed,
            _num(row.get("confirmed_test_macro_f1"))]


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"
