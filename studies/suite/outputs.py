"""A suite's tables, computed from the stored evaluation runs, and the files written from them:
RESULTS.md, results.csv (one row per run), results.tex (booktabs) and forest.png.

Everything here is generated: rerun ``losstune suite`` instead of editing the files.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from losstune.studies.stats import (
    INCONCLUSIVE,
    Interval,
    PairedTest,
    holm,
    paired_test,
    t_interval,
    verdict,
    verdict_rule,
)
from losstune.studies.suite.spec import (
    ComparisonSection,
    Suite,
    choice_key,
    config_digest,
    eval_seeds,
)

NOT_RUN = "no runs"
GROUP_METRICS = ("macro_f1", "head_macro_f1", "medium_macro_f1", "tail_macro_f1")
CSV_FIRST = ("suite", "arm", "dataset", "split", "split_seed", "seed_index", "seed",
             "config_digest", "state", "value", "best_epoch", "epochs_run", "best_is_last",
             "prediction_rule", "train_seconds", "device", "fail_reason")


@dataclass
class Cell:
    """One arm on one dataset: its chosen configuration and its evaluation runs."""

    arm: str
    dataset: str
    choice: dict[str, Any] | None
    runs: list[dict[str, Any]] = field(default_factory=list)  # attributes of COMPLETE runs
    failed: list[dict[str, Any]] = field(default_factory=list)  # diverged runs (NaN loss)
    stats: dict[str, Interval] = field(default_factory=dict)  # test metric -> interval

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def last_epoch(self) -> int:
        return sum(bool(r.get("best_is_last")) for r in self.runs)

    def values(self, metric: str) -> dict[tuple[int, int], float]:
        """Test ``metric`` per (holdout, seed) key."""
        out = {}
        for r in self.runs:
            v = r.get(f"metric.test.{metric}")
            if isinstance(v, (int, float)) and math.isfinite(v):
                out[(int(r["split"]), int(r["seed"]))] = float(v)
        return out


@dataclass
class ComparisonRow:
    comparison: ComparisonSection
    dataset: str
    test: PairedTest | None
    holm_p: float = math.nan
    verdict: str = NOT_RUN

    @property
    def label(self) -> str:
        return self.comparison.name


@dataclass
class SuiteTables:
    metric: str
    metrics: list[str]  # the compared metric first, then the extra ones
    cells: dict[tuple[str, str], Cell]
    comparisons: list[ComparisonRow]
    not_run: list[Any]
    n_tests: int

    def rows_for(self, labels: list[str]) -> list[ComparisonRow]:
        return [r for r in self.comparisons if r.label in labels]


def _choice(suite: Suite, runs: optuna.Study, arm: str, dataset: str) -> dict[str, Any] | None:

    choice = runs.user_attrs.get(choice_key(arm, dataset))
    if not isinstance(choice, dict):
        return None
    unit = suite.unit(arm, dataset)
    if not unit.search and choice.get("digest") != config_digest(unit.fixed):
        return None  # the fixed configuration changed since: its old runs do not count
    return choice


def build_tables(suite: Suite, runs: optuna.Study, *, not_run: list[Any] = ()) -> SuiteTables:
    """Cells and comparisons from the runs stored for the current choices."""

    seeds = set(eval_seeds(suite))
    trials = runs.get_trials(deepcopy=False)
    cells: dict[tuple[str, str], Cell] = {}
    for unit in suite.units:
        choice = _choice(suite, runs, unit.arm, unit.dataset)
        cell = Cell(unit.arm, unit.dataset, choice)
        if choice is not None:
            for t in trials:
                a = t.user_attrs
                if (a.get("arm"), a.get("dataset"), a.get("config_digest")) != (
                        unit.arm, unit.dataset, choice["digest"]):
                    continue
                if a.get("split") not in range(suite.splits) or a.get("seed") not in seeds:
                    continue
                if t.state == TrialState.COMPLETE:
                    cell.runs.append({**a, "value": t.value, "state": t.state.name})
                elif t.state == TrialState.FAIL and a.get("diverged"):
                    cell.failed.append({**a, "value": None, "state": t.state.name})
        names = sorted({k[len("metric.test."):] for r in cell.runs for k in r
                        if k.startswith("metric.test.")})
        cell.stats = {m: t_interval(list(cell.values(m).values())) for m in names}
        cells[unit.key] = cell
    rows: list[ComparisonRow] = []
    for comparison in suite.spec.comparisons:
        for ds in suite.spec.comparison_datasets(comparison):
            arm = cells[(comparison.arm, ds)].values(suite.spec.metric)
            base = cells[(comparison.baseline, ds)].values(suite.spec.metric)
            keys = sorted(set(arm) & set(base))
            test = paired_test([arm[k] for k in keys], [base[k] for k in keys]) if keys \
                else None
            rows.append(ComparisonRow(comparison, ds, test))
    tested = [r for r in rows if r.test is not None]
    for row, p in zip(tested, holm([r.test.t_p for r in tested]), strict=True):
        row.holm_p = p
        row.verdict = verdict(row.test, p, claim=row.comparison.claim, alpha=suite.spec.alpha,
                              min_effect=suite.spec.min_effect)
    return SuiteTables(metric=suite.spec.metric,
                       metrics=[suite.spec.metric, *[m for m in suite.spec.metrics
                                                     if m != suite.spec.metric]],
                       cells=cells, comparisons=rows, not_run=list(not_run),
                       n_tests=len(tested))


# ---------------------------------------------------------------------- formatting
def fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def fmt_cell(interval: Interval | None) -> str:
    if interval is None or interval.n == 0:
        return "–"
    return f"{interval.mean:.4f} ± {interval.half_width:.4f}"


def fmt_diff(test: PairedTest | None) -> str:
    if test is None:
        return "–"
    d = test.diff
    return f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"


def describe_config(config: dict[str, Any]) -> str:
    """``ce(label_smoothing=0.01); lr 0.03, wd 0.0001, 20 epochs, batch 64`` for a table."""
    terms = []
    for i, term in enumerate(config.get("loss", {}).get("terms", [])):
        knobs = ", ".join(f"{k}={_short(v)}" for k, v in sorted(term.get("params", {}).items()))
        text = term["name"] + (f"({knobs})" if knobs else "")
        if i and term.get("weight", 1.0) != 1.0:
            text = f"{_short(term['weight'])}·{text}"
        terms.append(text)
    t = config.get("train", {})
    train = (f"lr {_short(t.get('lr'))}, wd {_short(t.get('weight_decay'))}, "
             f"{t.get('epochs')} epochs, batch {t.get('batch_size')}")
    head = config.get("model", {}).get("head", "?")
    return f"{' + '.join(terms)}; {head} head; {train}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def describe_choice(choice: dict[str, Any] | None) -> str:
    if choice is None:
        return "not run"
    if choice.get("search"):
        budget = f"{choice.get('n_trials')} trials"
        if choice.get("full_n_trials") and choice["full_n_trials"] != choice.get("n_trials"):
            budget = f"{choice.get('n_trials')} of {choice['full_n_trials']} trials"
        return (f"trial #{choice['trial']} of `{choice['study']}` ({budget}); confirmed val "
                f"{choice.get('metric', 'value')} {choice['confirmed_mean']:.4f} ± "
                f"{choice['confirmed_ci95']:.4f} over {choice['confirmed_n']} run(s)")
    return str(choice.get("source", "fixed configuration"))


def machine_text() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i)
                            for i in range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001 - informational
        gpu = "unknown"
    return f"{model}, {os.cpu_count()} CPU cores; GPU: {gpu}; {platform.system()} " \
           f"{platform.release()}, Python {platform.python_version()}"


# ---------------------------------------------------------------------- writers
def write_outputs(suite: Suite, tables: SuiteTables, out_dir: Path, *, markdown: Path | None,
                  storage: str, command: str, seconds: float,
                  invocations: list[dict[str, Any]] | None = None) -> list[Path]:
    """Write every output file; returns their paths (RESULTS.md first)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "RESULTS.md", out_dir / "results.csv", out_dir / "results.tex"]
    _atomic(files[1], runs_csv(suite, tables))
    _atomic(files[2], latex(suite, tables))
    forest = out_dir / "forest.png"
    forest_note = draw_forest(suite, tables, forest)
    if forest_note is None:
        files.append(forest)
    meta = run_metadata(suite, tables, storage=storage, command=command, seconds=seconds,
                        invocations=invocations)
    _atomic(files[0], render_markdown(suite, tables, meta, md_dir=out_dir, out_dir=out_dir,
                                      forest_note=forest_note))
    if markdown is not None:
        _atomic(markdown, render_markdown(suite, tables, meta, md_dir=markdown.parent,
                                          out_dir=out_dir, forest_note=forest_note))
        files.append(markdown)
    return files


def _atomic(path: Path, text: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as an ordinary file; mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_metadata(suite: Suite, tables: SuiteTables, *, storage: str, command: str,
                 seconds: float,
                 invocations: list[dict[str, Any]] | None = None) -> dict[str, str]:
    import losstune.storage as storage_pkg
    from losstune.studies.export import package_versions
    from losstune.studies.runner import git_commit, losstune_version
    from losstune.studies.secrets import scrub_text

    searches = sorted({u.study.name for u in suite.units if u.search})
    train_s = sum(float(r.get("train_seconds") or 0.0) for c in tables.cells.values()
                  for r in c.runs)
    n_runs = sum(c.n for c in tables.cells.values())
    versions = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    return {
        "command": scrub_text(command, storage),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "losstune": f"{losstune_version()} (git {git_commit() or 'unknown'})",
        "packages": versions,
        "machine": machine_text(),
        "storage": storage_pkg.mask_url(storage),
        "studies": f"`{suite.runs_study}` (evaluation runs)" + (
            "; searches: " + ", ".join(f"`{n}`" for n in searches) if searches else "")
        + ("; confirmations: `<search>--confirm`" if searches else ""),
        "wall time": f"{seconds:.1f} s for this command{_workers_text(invocations)}"
                     f"{_invocations_text(invocations)}; the {n_runs} evaluation runs in the "
                     f"tables trained for {train_s:.1f} s in all",
    }


def _workers_text(invocations: list[dict[str, Any]] | None) -> str:
    workers = int(invocations[-1].get("workers", 1)) if invocations else 1
    return f" ({workers} worker processes)" if workers > 1 else ""


def _invocations_text(invocations: list[dict[str, Any]] | None) -> str:
    """The suite's earlier invocations on this storage (a resumed suite, or one run in parts)."""
    if not invocations or len(invocations) < 2:
        return ""
    total = sum(float(e.get("seconds", 0.0)) for e in invocations)
    return (f"; {total:.1f} s over the {len(invocations)} invocations of the suite on this "
            f"storage (first started {invocations[0].get('started', '?')})")


def render_markdown(suite: Suite, tables: SuiteTables, meta: dict[str, str], *,
                    md_dir: Path, out_dir: Path, forest_note: str | None) -> str:
    spec = suite.spec

    def link(name: str) -> str:
        return Path(os.path.relpath(out_dir / name, md_dir)).as_posix()

    seeds = [spec.seed + 10000 + i for i in range(suite.seeds)]
    lines = [
        f"<!-- Generated by `losstune suite` from {suite.path.name}: do not edit; rerun the "
        "command instead. -->",
        f"# {suite.name}: results", "",
    ]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += ["| | |", "|---|---|"]
    for key, value in meta.items():
        shown = f"`{value}`" if key == "command" else value
        lines.append(f"| {key} | {shown} |")
    lines.append(
        f"| evaluation | the chosen configuration of every arm trained with seeds "
        f"{seeds[0]}–{seeds[-1]} on holdouts 0–{suite.splits - 1} (holdout r: `split_seed` = "
        f"the dataset's split seed + r; the test split never changes); {suite.seeds} x "
        f"{suite.splits} = {suite.seeds * suite.splits} paired runs per cell; the kept epoch "
        f"is chosen on validation |")
    lines.append(f"| compared | test `{tables.metric}`"
                 + (f"; also reported: {', '.join(f'`{m}`' for m in tables.metrics[1:])}"
                    if len(tables.metrics) > 1 else "") + " |")
    lines.append("")
    for note in suite.notes:
        lines += [f"> **Note:** {note}.", ""]
    rule = verdict_rule(alpha=spec.alpha, min_effect=spec.min_effect, n_tests=tables.n_tests)
    in_sections = set()
    for section in spec.sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text.strip(), ""]
        if section.claim:
            lines += [f"**Claim.** {section.claim.strip()}", ""]
        if section.setting:
            lines += [f"**Setting (theirs vs ours).** {section.setting.strip()}", ""]
        rows = tables.rows_for(section.comparisons)
        in_sections.update(section.comparisons)
        if rows:
            lines += _comparison_table(rows, tables.metric) + ["", f"*{rule}*", ""]
        if section.published:
            lines += ["Published numbers beside ours:", "",
                      "| arm | dataset | metric | published | ours (mean ± 95% CI) | n | source |",
                      "|---|---|---|---|---|---|---|"]
            for p in section.published:
                cell = tables.cells.get((p.arm, p.dataset))
                ours = cell.stats.get(p.metric) if cell is not None else None
                lines.append(f"| {suite.arm_label(p.arm)} | {p.dataset} | {p.metric} | "
                             f"{p.value:.4f} | {fmt_cell(ours)} | {ours.n if ours else 0} | "
                             f"{p.source} |")
            lines.append("")
    rest = [r for r in tables.comparisons if r.label not in in_sections]
    if rest:
        lines += ["## Comparisons", ""] + _comparison_table(rest, tables.metric) + [
            "", f"*{rule}*", ""]
    lines += ["## Results by dataset", "",
              "Each cell: mean ± half-width of the 95% t-interval over the paired runs (n); "
              "\"kept last epoch\" counts runs whose best validation epoch was their last one "
              "(training may not have converged).", ""]
    for ds, data in suite.datasets.items():
        options = (f" (options: `{json.dumps(data.options, sort_keys=True)}`)"
                   if data.options else "")
        lines += [f"### {ds}: `{data.name}`{options}", ""]
        header = ["arm", "chosen configuration", "n", *[f"test {m}" for m in tables.metrics],
                  "kept last epoch"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for arm in spec.arms:
            cell = tables.cells.get((arm, ds))
            if cell is None:
                continue
            config = (cell.choice or {}).get("config")
            chosen = describe_choice(cell.choice) + (
                f"<br>{describe_config(config)}" if config else "")
            diverged = f" ({len(cell.failed)} diverged)" if cell.failed else ""
            lines.append("| " + " | ".join([
                suite.arm_label(arm), chosen, f"{cell.n}{diverged}",
                *[fmt_cell(cell.stats.get(m)) for m in tables.metrics],
                f"{cell.last_epoch}/{cell.n}" if cell.n else "–"]) + " |")
        lines.append("")
        if spec.rules:
            lines += _group_table(suite, tables, ds)
    if tables.not_run:
        lines += ["## Not run here", ""]
        for n in tables.not_run:
            lines.append(f"* **{suite.arm_label(n.arm)}** on **{n.dataset}**: {n.reason}. "
                         f"Run it with `{n.command}`.")
        lines.append("")
    missing = [c for c in tables.cells.values() if c.choice is None and
               (c.arm, c.dataset) not in {(n.arm, n.dataset) for n in tables.not_run}]
    if missing:
        lines += ["## Not run yet", ""]
        lines += [f"* **{suite.arm_label(c.arm)}** on **{c.dataset}** (e.g. left out by "
                  "`--only`)." for c in missing]
        lines.append("")
    lines += ["## Files", "",
              f"* [results.csv]({link('results.csv')}): one row per evaluation run",
              f"* [results.tex]({link('results.tex')}): booktabs tables of the cells and the "
              "comparisons"]
    if forest_note is None:
        lines += [f"* [forest.png]({link('forest.png')}): paired differences with their 95% "
                  "intervals", "", f"![Paired differences]({link('forest.png')})"]
    else:
        lines += [f"* forest.png: not drawn ({forest_note})"]
    lines.append("")
    return "\n".join(lines)


def _comparison_table(rows: list[ComparisonRow], metric: str) -> list[str]:
    out = [f"| comparison | dataset | claim | n | Δ test {metric} [95% CI] | t-test p | "
           "Wilcoxon p | Holm p | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r.comparison
        claim = f"{c.arm} {'>' if c.claim == 'greater' else '<'} {c.baseline}"
        t = r.test
        out.append(f"| {r.label} | {r.dataset} | {claim} | {t.n if t else 0} | {fmt_diff(t)} | "
                   f"{fmt_p(t.t_p) if t else '–'} | {fmt_p(t.wilcoxon_p) if t else '–'} | "
                   f"{fmt_p(r.holm_p)} | **{r.verdict}** |")
    return out


def _group_table(suite: Suite, tables: SuiteTables, ds: str) -> list[str]:
    rules = list(suite.spec.rules)
    header = ["arm"] + [f"{rule} {m.replace('_macro_f1', '').replace('macro_f1', 'all')}"
                        for rule in rules for m in GROUP_METRICS]
    out = ["Test macro-F1 of all / head / medium / tail classes under each prediction rule "
           "(argmax: the top class; threshold: every class whose sigmoid exceeds the study's "
           "eval.threshold, 0.5 by default):", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in suite.spec.arms:
        cell = tables.cells.get((arm, ds))
        if cell is None:
            continue
        out.append("| " + " | ".join([suite.arm_label(arm)] + [
            fmt_cell(cell.stats.get(f"{rule}.{m}")) for rule in rules for m in GROUP_METRICS])
            + " |")
    return out + [""]


def runs_csv(suite: Suite, tables: SuiteTables) -> str:
    import io

    rows = [r for c in tables.cells.values() for r in [*c.runs, *c.failed]]
    metric_cols = sorted({k for r in rows for k in r
                          if k.startswith(("metric.val.", "metric.test."))})
    columns = [*CSV_FIRST, *metric_cols]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for r in sorted(rows, key=lambda r: (r["dataset"], r["arm"], r["split"], r["seed"])):
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buffer.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "<": r"$<$", ">": r"$>$", "|": r"$|$", "−": "--", "–": "--", "±": r"$\pm$",
        "Δ": r"$\Delta$"}


def tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def _tex_cell(interval: Interval | None) -> str:
    if interval is None or interval.n == 0:
        return "--"
    return f"${interval.mean:.4f} \\pm {interval.half_width:.4f}$"


def latex(suite: Suite, tables: SuiteTables) -> str:
    """Two booktabs tables: the cells per dataset and arm, and the comparisons."""
    spec = suite.spec
    lines = [f"% Generated by `losstune suite` from {tex(suite.path.name)}: do not edit.",
             "% Needs \\usepackage{booktabs}.", "",
             "\\begin{table}[t]", "\\centering",
             f"\\caption{{{tex(suite.name)}: test metrics, mean $\\pm$ half-width of the 95\\% "
             f"t-interval over {suite.seeds} seeds $\\times$ {suite.splits} holdouts.}}",
             "\\begin{tabular}{ll r" + "r" * len(tables.metrics) + "}", "\\toprule",
             "Dataset & Arm & $n$ & " + " & ".join(tex(m) for m in tables.metrics) + " \\\\",
             "\\midrule"]
    for i, ds in enumerate(suite.datasets):
        if i:
            lines.append("\\midrule")
        for arm in spec.arms:
            cell = tables.cells.get((arm, ds))
            if cell is None:
                continue
            lines.append(f"{tex(ds)} & {tex(suite.arm_label(arm))} & {cell.n} & "
                         + " & ".join(_tex_cell(cell.stats.get(m)) for m in tables.metrics)
                         + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    rule = verdict_rule(alpha=spec.alpha, min_effect=spec.min_effect,
                        n_tests=tables.n_tests).replace("**", "")
    lines += ["\\begin{table}[t]", "\\centering",
              f"\\caption{{Paired comparisons on test {tex(tables.metric)}. {tex(rule)}}}",
              "\\begin{tabular}{lll r l rrr l}", "\\toprule",
              "Comparison & Dataset & Claim & $n$ & $\\Delta$ [95\\% CI] & $p_t$ & $p_W$ & "
              "$p_\\mathrm{Holm}$ & Verdict \\\\", "\\midrule"]
    for r in tables.comparisons:
        c, t = r.comparison, r.test
        claim = f"{tex(c.arm)} {'$>$' if c.claim == 'greater' else '$<$'} {tex(c.baseline)}"
        diff = (f"${t.diff.mean:+.4f}$ [${t.diff.low:+.4f}$, ${t.diff.high:+.4f}$]"
                if t is not None and t.n else "--")
        lines.append(" & ".join([
            tex(r.label), tex(r.dataset), claim, str(t.n if t else 0), diff,
            tex(fmt_p(t.t_p)) if t else "--", tex(fmt_p(t.wilcoxon_p)) if t else "--",
            tex(fmt_p(r.holm_p)), tex(r.verdict)]).replace("–", "--") + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def draw_forest(suite: Suite, tables: SuiteTables, path: Path) -> str | None:
    """The forest plot of the paired differences; returns why it was not drawn, or None."""
    rows = [r for r in tables.comparisons if r.test is not None and r.test.n]
    if not rows:
        return "no comparison has paired runs yet"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install 'losstune[report]'"
    colors = {"holds": "#1a7f37", "does not hold": "#cf222e", INCONCLUSIVE: "#57606a"}
    height = 1.2 + 0.45 * len(rows)
    fig, ax = plt.subplots(figsize=(8, height))
    effect = suite.spec.min_effect
    ax.axvspan(-effect, effect, color="#d0d7de", alpha=0.6)
    ax.axvline(0.0, color="black", linewidth=0.8)
    for y, r in enumerate(reversed(rows)):
        d = r.test.diff
        color = colors.get(r.verdict, "#57606a")
        ax.errorbar(d.mean, y, xerr=[[d.mean - d.low], [d.high - d.mean]], fmt="o",
                    color=color, capsize=3)
    labels = [f"{r.label} ({r.dataset}; claim {'>' if r.comparison.claim == 'greater' else '<'}"
              f"; {r.verdict})" for r in reversed(rows)]
    ax.set_yticks(range(len(rows)), labels)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(f"arm − baseline, test {tables.metric}: mean and 95% CI over paired runs\n"
                  f"(shaded: |difference| < min_effect = {effect:g})")
    ax.set_title(f"{suite.name}: paired differences")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None

