"""The ``losstune`` command line. Each command parses its input, calls one function of
:mod:`losstune.studies.api`, prints the result and returns. Known errors print one line and exit
2."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from losstune.objectives.errors import LosstuneError

if TYPE_CHECKING:
    from losstune.objectives.attributes import TrialRecord

STORAGE_HELP = ("Storage URL (sqlite:///FILE.db, postgresql://USER@HOST/DB, "
                "mysql+pymysql://USER@HOST/DB, grpc://HOST:PORT of `losstune storage-proxy`). "
                "Default: $LOSSTUNE_STORAGE, else "
                "sqlite:///losstune.db in the working directory.")


class UserError(click.ClickException):
    """One line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


#: Where the group stores the log level of ``-v`` / ``-vv`` for the commands (``ctx.meta``).
LOG_LEVEL_KEY = "losstune.log_level"


def set_optuna_verbosity() -> None:
    """Optuna's own logging: WARNING by default and with ``-v`` (losstune's own lines tell the
    story), INFO with ``-vv`` (one line per trial from Optuna too). Only the CLI sets it (the
    Python API leaves it to the caller); it runs when a command runs, so that ``--help`` stays
    fast (Optuna is not imported for it)."""
    import optuna

    ctx = click.get_current_context(silent=True)
    level = ctx.meta.get(LOG_LEVEL_KEY, logging.WARNING) if ctx is not None else logging.WARNING
    optuna.logging.set_verbosity(logging.INFO if level <= logging.DEBUG else logging.WARNING)
    # Optuna's lines go through the command's handler: one format, and above a progress bar
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time, so that log lines go above a live
    progress bar (rich redirects ``sys.stderr`` while one is shown)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(verbose: int) -> int:
    """``-v``: the ``losstune`` loggers at INFO, ``-vv``: DEBUG; other libraries stay at
    WARNING. Only the command line calls this (library modules never configure logging).
    Returns the level of the ``losstune`` loggers."""
    level = max(logging.WARNING - 10 * verbose, logging.DEBUG)
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("losstune").setLevel(level)
    return level


def _usage_error(exc: click.UsageError) -> UserError:
    """Click's own usage errors (a missing argument, a bad option value, an unknown command)
    as the same one line as every other error, with where to find help."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = exc.ctx
    path = ctx.command_path if ctx is not None else "losstune"
    error = UserError(f"{message}; see `{path} --help`")
    error.exit_code = exc.exit_code
    return error


class OneLineErrors(click.Group):
    """A click group whose usage errors print one line (``error: ...``) and exit 2."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError:
            raise  # `losstune` alone: the help page is the answer
        except click.UsageError as exc:
            raise _usage_error(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _usage_error(exc) from None


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command: Optuna's verbosity from ``-v``, and any :class:`LosstuneError` as one
    ``error: ...`` line with exit status 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        set_optuna_verbosity()
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except LosstuneError as exc:
            raise UserError(str(exc)) from None
        except Exception as exc:
            if not _is_storage_error(exc):
                raise
            from losstune.objectives.errors import short_text
            from losstune.studies.secrets import scrub_text

            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UserError(f"the storage database refused the operation: "
                            f"{type(exc).__name__}: {short_text(scrub_text(first), 300)} "
                            "(is it read-only, full or locked?)") from None

    return wrapper


def _is_storage_error(exc: BaseException) -> bool:
    """A database error reaching a command (e.g. the SQLite file became read-only mid-run):
    the environment's problem, told in one line, not a losstune bug."""
    if "sqlalchemy" not in sys.modules and "sqlite3" not in sys.modules:
        return False
    from losstune.studies.api import is_database_error

    return is_database_error(exc)


def _console() -> Any:
    from losstune.studies.progress import make_console

    return make_console()


def _echo(console: Any) -> Callable[[str], None]:
    """Notes of a command, as plain lines on ``console`` (above a live bar)."""
    return lambda text: console.print(text, markup=False, highlight=False)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True,
              help="Log what happens: -v info (feature cache, storage, launcher, resume), -vv "
                   "debug (and Optuna's per-trial lines).")
@click.version_option(package_name="losstune", prog_name="losstune")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """losstune: hyperparameter studies for text-classification losses.

    Typical session: `losstune run studies/configs/quickstart.yaml`, watch it with
    `losstune dashboard`, then `losstune export quickstart -o best.yaml` and
    `losstune train best.yaml`.
    """
    ctx.meta[LOG_LEVEL_KEY] = configure_logging(verbose)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # OpenMP threads (torch's) that wait for work spin on their core by default; on a machine
    # busy with other jobs the spinning steals the cores the other threads need, and a replay
    # took 7x longer. PASSIVE makes them sleep. It must be set before torch loads the OpenMP
    # runtime (it is not imported yet here); a local Ray instance and its workers inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _skip_exit_collection()


_exit_collection_skipped: list[bool] = []


def _skip_exit_collection() -> None:
    """At exit Python garbage-collects every object still alive (torch, SQLAlchemy and Optuna
    leave millions): over a second after each command. The process ends anyway, so they are
    frozen (``gc.freeze``) and left to the operating system; exit handlers, thread joins and
    stream flushes still run as before."""
    import atexit
    import gc

    if not _exit_collection_skipped:
        _exit_collection_skipped.append(True)
        atexit.register(gc.freeze)


# ---------------------------------------------------------------------- run
@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--n-trials", type=click.IntRange(min=1), default=None,
              help="Budget of finished trials (overrides the study file's n_trials).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds after which no new trial starts (the running one finishes).")
@click.option("--launcher", type=click.Choice(["local", "ray", "ray-tune"]), default="local",
              show_default=True, help="Where trials run.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel workers (Ray launchers; default: the study file's ray.workers).")
@click.option("--address", default=None, help="Ray cluster address to join (ray launchers).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads per trial (overrides train.threads; default: one for a "
                   "head that gains nothing from threads, else the usable cores shared by "
                   "the workers).")
@click.option("--no-progress", is_flag=True, help="Plain per-trial lines instead of a bar.")
@handle_errors
def run(study_file: str, storage: str | None, n_trials: int | None, timeout: float | None,
        launcher: str, workers: int | None, address: str | None, threads: int | None,
        no_progress: bool) -> None:
    """Create (or resume) the study in STUDY_FILE and run it to its budget."""
    from losstune.studies import api

    spec, text = api.load_study(study_file)
    console = _console()
    try:
        summary = api.run_study(spec, study_text=text, storage=storage, n_trials=n_trials,
                                timeout=timeout, launcher=launcher, workers=workers,
                                progress=not no_progress, console=console, address=address,
                                threads=threads)
    except KeyboardInterrupt:
        click.echo("\naborted (second Ctrl-C): the interrupted trial is recorded as failed; the "
                   "study is consistent: run the same command again to resume it", err=True)
        sys.exit(130)
    console.print(
        f"\n{summary.study_name}: {summary.finished}/{summary.n_trials} finished "
        f"({summary.complete} complete, {summary.pruned} pruned, {summary.failed} failed); "
        f"{summary.started_here} trial(s) run now in {summary.seconds:.1f}s — "
        f"{summary.stopped_reason}."
    )
    if "interrupted" in summary.stopped_reason:
        console.print("The study is consistent; run the same command again to resume it.")
    from losstune.storage import follow_up_hint, resolve_storage_url

    url = resolve_storage_url(storage, spec.storage)  # what the run used, for all that follows
    storage_flag, note = follow_up_hint(url)
    try:
        shown = api.show_study(spec.name, url)
    except Exception:  # noqa: BLE001
        shown = None
    if shown and shown.chosen:
        _print_trial(console, shown.chosen, shown.metric_names, title="Best trial")
    elif shown and shown.pareto:
        console.print(f"Pareto front: {len(shown.pareto)} trial(s) "
                      f"{[r.number for r in shown.pareto]}")
    if shown and summary.failed:
        _print_failures(console, shown.failures)
    console.print("\nNext:" + (f" ({note})" if note else ""), markup=False)
    console.print(f"  losstune show {spec.name}{storage_flag}", markup=False)
    console.print(f"  losstune dashboard{storage_flag}", markup=False)
    if shown and shown.pareto and not shown.chosen:
        console.print(f"  losstune export {spec.name} --pareto -o pareto/{storage_flag}",
                      markup=False)
    elif shown and shown.chosen:
        console.print(f"  losstune export {spec.name} -o best.yaml{storage_flag}", markup=False)
        console.print("  losstune train best.yaml", markup=False)
    elif summary.failed:
        console.print(f"  losstune -v run {study_file}{storage_flag}   (no trial completed: fix "
                      "the failures above; -v prints each failure's traceback)", markup=False)
    if summary.stopped_reason.startswith("max_failures"):
        raise UserError(f"study stopped: {summary.stopped_reason}; see `losstune show "
                        f"{spec.name}{storage_flag}` for the failure reasons")


# ---------------------------------------------------------------------- suite
@cli.command()
@click.argument("suite_file", type=click.Path(dir_okay=False))
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--quick", is_flag=True,
              help="Apply the suite's quick: overrides (smaller search budget), with separate "
                   "'-quick' study names.")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Folder for RESULTS.md, results.csv, results.tex and forest.png "
                   "(default: suite-results/<name>).")
@click.option("--markdown", type=click.Path(), default=None,
              help="Also write RESULTS.md to this path (links relative to it).")
@click.option("--only", "only", multiple=True, metavar="ARM",
              help="Run only this arm (repeatable); the tables show every arm stored so far.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes, each taking whole arm x dataset units; torch threads "
                   "per worker: cores // workers, one for heads that gain nothing from more "
                   "(recorded in every run's config).")
@click.option("--no-progress", is_flag=True, help="Plain lines instead of a progress bar.")
@handle_errors
def suite(suite_file: str, storage: str | None, quick: bool, output: str | None,
          markdown: str | None, only: tuple[str, ...], workers: int,
          no_progress: bool) -> None:
    """Run SUITE_FILE: search, confirm and pair every arm on every dataset, then write the
    paper's table (mean ± 95% CI per cell, paired tests, Holm, verdicts)."""
    import shlex

    from rich.table import Table

    from losstune.studies import api
    from losstune.studies.suite.runner import SuiteInterrupted

    console = _console()
    command = "losstune " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["suite"] else None
    try:
        result = api.run_suite(suite_file, storage=storage, quick=quick, output=output,
                               markdown=markdown, only=list(only), console=console,
                               progress=not no_progress, command=command,
                               workers=workers)
    except (SuiteInterrupted, KeyboardInterrupt) as exc:
        click.echo(f"\ninterrupted{': ' + str(exc) if str(exc) else ''}; everything finished "
                   "so far is stored: run the same command again to resume", err=True)
        sys.exit(130)
    tables = result.tables
    if tables.comparisons:
        table = Table("comparison", "dataset", "n", f"Δ test {tables.metric} [95% CI]",
                      "Holm p", "verdict", title=f"{result.suite.name}: comparisons")
        from losstune.studies.suite.outputs import fmt_diff, fmt_p

        for r in tables.comparisons:
            table.add_row(r.label, r.dataset, str(r.test.n if r.test else 0), fmt_diff(r.test),
                          fmt_p(r.holm_p), r.verdict)
        console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    for n in result.not_run:
        console.print(f"not run here: {n.arm} on {n.dataset} ({n.reason}); run it with: "
                      f"{n.command}", highlight=False, markup=False)
    console.print(f"{result.suite.name}: {result.ran_units} arm x dataset unit(s) in "
                  f"{result.seconds:.1f}s; wrote " + ", ".join(str(p) for p in result.files),
                  highlight=False, markup=False)


# ---------------------------------------------------------------------- inspect
@cli.command("studies")
@click.option("--storage", default=None, help=STORAGE_HELP)
@handle_errors
def studies_cmd(storage: str | None) -> None:
    """List the studies in the storage with trial counts and best values."""
    from rich.table import Table

    from losstune.studies import api

    rows = api.list_studies(storage)
    console = _console()
    if not rows:
        console.print("no studies yet")
        return
    table = Table("study", "dataset", "complete", "pruned", "failed", "running", "metric",
                  "best", "trial", "created")
    for r in rows:
        best = "-" if r.best_value is None else f"{r.best_value:.4f}"
        name = r.name if r.linked is None else f"{r.name}\n[dim]{r.linked.description}[/dim]"
        table.add_row(name, r.dataset or "-", str(r.complete), str(r.pruned), str(r.failed),
                      str(r.running),
                      ", ".join(f"{m} ({d[:3]})" for m, d in zip(r.metric_names, r.directions,
                                                                  strict=False)),
                      best, "-" if r.best_trial is None else str(r.best_trial), r.created or "-")
    console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_trial(console: Any, record: TrialRecord, metric_names: list[str], *,
                 title: str) -> None:
    values = ", ".join(f"{m}={v:.4f}" for m, v in zip(metric_names, record.values or [],
                                                      strict=False))
    console.print(f"\n{title}: #{record.number} ({record.state}) validation {values}; "
                  f"kept epoch {record.best_epoch}; rule {record.prediction_rule}")
    console.print("  params: " + ", ".join(f"{k}={_fmt(v)}" for k, v in record.params.items()))
    if record.test:
        keys = [k for k in ("accuracy", "micro_f1", "macro_f1") if k in record.test]
        console.print("  test (never used for selection): "
                      + ", ".join(f"{k}={record.test[k]:.4f}" for k in keys))
    if record.terms:
        console.print("  final loss terms: "
                      + ", ".join(f"{k}={_fmt(v)}" for k, v in record.terms.items()))


def _print_failures(console: Any, groups: list[Any]) -> None:
    """Failed trials grouped by reason, with counts."""
    if not groups:
        return
    total = sum(len(g.trials) for g in groups)
    console.print(f"\nFailed trials ({total}), by reason:")
    for g in groups:
        shown = ", ".join(map(str, g.trials[:8])) + (", ..." if len(g.trials) > 8 else "")
        console.print(f"  {len(g.trials)} x {g.reason}  (trial{'s' if len(g.trials) > 1 else ''} "
                      f"{shown})", markup=False, highlight=False)


def _show_next(console: Any, info: Any, storage_flag: str) -> None:
    """The ``Next:`` hints of ``show``: export/train only when a trial completed, confirm only
    for a search study that is not confirmed yet."""
    name, hints = info.name, []
    if info.linked is not None and info.linked.kind == "confirm":
        hints += [f"losstune show {info.linked.source}{storage_flag}   (the confirmed means)",
                  f"losstune export {info.linked.source} --confirmed -o best.yaml{storage_flag}"]
    elif info.linked is not None:
        hints.append("losstune suite SUITE.yaml   (resumes the suite and rewrites its tables)")
    elif info.pareto and not info.chosen:
        hints.append(f"losstune export {name} --pareto -o pareto/{storage_flag}")
    elif info.top:
        hints += [f"losstune export {name} -o best.yaml{storage_flag}", "losstune train best.yaml"]
        if "confirmation" not in info.user_attrs:
            hints.append(f"losstune confirm {name}{storage_flag}")
    elif info.failures:
        hints.append("losstune -v run STUDY.yaml   (no trial completed yet: fix the failures "
                     "above; -v prints each failure's traceback)")
    hints.append(f"losstune dashboard{storage_flag}")
    console.print("\nNext:")
    for hint in hints:
        console.print(f"  {hint}", markup=False, highlight=False)


@cli.command()
@click.argument("study", required=False)
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--trial", "trial_number", type=int, default=None,
              help="Show this trial instead of the best.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True)
@handle_errors
def show(study: str | None, storage: str | None, trial_number: int | None, top: int) -> None:
    """Show the best (or chosen) trial of STUDY, its top trials and why trials failed.
    Without STUDY: the only study in the storage."""
    from rich.table import Table

    from losstune.studies import api

    info = api.show_study(study, storage, top=top, trial=trial_number)
    console = _console()
    counts = ", ".join(f"{n} {s.lower()}" for s, n in info.counts.items()) or "no trials"
    what = f"{info.linked.description}; " if info.linked else ""
    console.print(f"study {info.name}: {what}{counts}; objective: validation "
                  f"{', '.join(info.metric_names)} ({', '.join(info.directions)})")
    if info.chosen:
        title = "Trial" if trial_number is not None else (
            "Best run" if info.linked else "Best trial")
        _print_trial(console, info.chosen, info.metric_names, title=title)
        if info.confirmation_note:
            console.print("  " + info.confirmation_note)
    if info.pareto:
        console.print(f"\nPareto front ({len(info.pareto)} trials):")
        table = Table("trial", "loss", *info.metric_names)
        for r in info.pareto:
            table.add_row(str(r.number), str(r.loss), *[f"{v:.4f}" for v in r.values or []])
        console.print(table)
    if info.top:
        table = Table("rank", "trial", "loss", *[f"val {m}" for m in info.metric_names],
                      "test macro_f1", "test accuracy", "epoch", title=f"Top {top}")
        for i, r in enumerate(info.top, 1):
            table.add_row(str(i), str(r.number), str(r.loss),
                          *[f"{v:.4f}" for v in r.values or []],
                          _fmt(r.test.get("macro_f1", "-")), _fmt(r.test.get("accuracy", "-")),
                          _fmt(r.best_epoch))
        console.print(table)
    _print_failures(console, info.failures)
    _show_next(console, info, f" --storage '{_masked(storage)}'" if storage else "")


def _masked(storage: str) -> str:
    from losstune.storage import mask_url

    return mask_url(storage)


# ---------------------------------------------------------------------- export / train
@cli.command()
@click.argument("study")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="YAML file to write (a folder with --pareto).")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--trial", "trial_number", type=int, default=None,
              help="Export this trial instead of the best.")
@click.option("--confirmed", is_flag=True,
              help="Export the best confirmed configuration (see `losstune confirm`).")
@click.option("--pareto", is_flag=True,
              help="Multi-objective studies: one config per Pareto trial into the folder -o.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@handle_errors
def export(study: str, output: str, storage: str | None, trial_number: int | None,
           confirmed: bool, pareto: bool, force: bool) -> None:
    """Write the best (or chosen) trial of STUDY as a self-contained config."""
    from losstune.studies import api

    if sum([trial_number is not None, confirmed, pareto]) > 1:
        raise UserError("use only one of --trial, --confirmed and --pareto")
    if pareto:
        paths = api.export_pareto(study, output, storage=storage, force=force)
        click.echo(f"wrote {len(paths)} Pareto configs to {output}/: "
                   + ", ".join(p.name for p in paths))
        return
    path, doc = api.export_trial(study, output, storage=storage, trial=trial_number,
                                 force=force, confirmed=confirmed)
    prov = doc["provenance"]
    click.echo(f"wrote {path}: study {prov['study']} trial {prov['trial']}, validation "
               f"{prov['metric']} {prov['value']}")
    click.echo(prov["confirmation_note"])
    click.echo(f"replay it with: losstune train {path}")


@cli.command()
@click.argument("config_file", type=click.Path(dir_okay=False))
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train with this many seeds (the config's seed, then +1, +2, ...).")
@click.option("-o", "--output", type=click.Path(file_okay=True), default=None,
              help="Folder for trained weights (torch.load(weights_only=True)) and the config.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads (default: the count the trial was recorded with, else the "
                   "usable cores); another count than the recorded one is not bit-exact.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@handle_errors
def train(config_file: str, seeds: int, output: str | None, threads: int | None,
          no_progress: bool) -> None:
    """Replay an exported CONFIG_FILE without Optuna and print its metrics."""
    from rich.table import Table

    from losstune.studies import api
    from losstune.studies.export import read_config_file
    from losstune.studies.progress import encoding_rows, task_progress

    console = _console()
    epochs = read_config_file(config_file)[0].train.epochs  # checked again by train_config
    with task_progress(console, enabled=not no_progress) as bar, encoding_rows(bar):
        task = bar.add_task("train", total=seeds * epochs, count=f"0/{seeds * epochs} epochs")

        def step(index: int, epoch: int) -> None:
            done = index * epochs + epoch + 1
            bar.update(task, completed=done, count=f"{done}/{seeds * epochs} epochs"
                       + (f" (seed {index + 1}/{seeds})" if seeds > 1 else ""))

        report = api.train_config(config_file, seeds=seeds, output_dir=output, threads=threads,
                                  on_epoch=step, echo=_echo(console))
        bar.update(task, completed=seeds * epochs)
    metric = report.metric
    if seeds == 1:
        run0 = report.runs[0]
        console.print(f"validation {metric}: {run0['value']:.6f} (kept epoch "
                      f"{run0['best_epoch']})")
        table = Table("split", "accuracy", "micro_f1", "macro_f1")
        for split in ("val", "test"):
            m = run0[split]
            table.add_row(split, *[f"{m.get(k, float('nan')):.4f}"
                                   for k in ("accuracy", "micro_f1", "macro_f1")])
        console.print(table)
    else:
        table = Table("metric", "mean", "std", "95% CI", "n",
                      title=f"{seeds} seeds: {report.seeds}")
        for key, s in report.summary.items():
            if key.split(".", 1)[1] in ("accuracy", "micro_f1", "macro_f1", "weighted_f1") or \
                    key.split(".", 1)[1].endswith("macro_f1"):
                table.add_row(key, f"{s['mean']:.4f}", f"{s['std']:.4f}",
                              f"[{s['mean'] - s['ci95']:.4f}, {s['mean'] + s['ci95']:.4f}]",
                              str(s["n"]))
        console.print(table)
    if report.recorded_value is not None:
        if report.reproduced:
            console.print(f"reproduced: the exported trial's validation {metric} "
                          f"{report.recorded_value:.6f} exactly")
        else:
            console.print(f"differs from the exported trial's validation {metric} "
                          f"{report.recorded_value:.6f} by "
                          f"{report.runs[0]['value'] - report.recorded_value:+.6f} "
                          "(different device, threads or package versions?)")
    if output:
        console.print(f"saved weights and config to {output}/")


# ---------------------------------------------------------------------- trust
@cli.command()
@click.argument("study")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many best trials (multi-objective: Pareto trials by the first metric).")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Fresh seeds per trial (the config's seed + 1, + 2, ...).")
@click.option("--splits", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run each seed on this many train/validation holdouts (data.options."
                   "split_seed = the dataset's split seed + 0, 1, ...; test never changes).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads per run (default: the count each trial was recorded with, "
                   "else the usable cores).")
@click.option("--no-progress", is_flag=True, help="Plain per-run lines instead of a bar.")
@handle_errors
def confirm(study: str, storage: str | None, top: int, seeds: int, splits: int,
            threads: int | None, no_progress: bool) -> None:
    """Re-train the best trials of STUDY with fresh seeds; rank them by mean validation metric
    with 95% intervals, and store the results on the study."""
    from rich.table import Table

    from losstune.studies.confirm import confirm_study
    from losstune.studies.progress import encoding_rows, task_progress

    console = _console()
    with task_progress(console, enabled=not no_progress) as bar, encoding_rows(bar):
        task = bar.add_task("confirm", total=None, count="")
        plan: dict[str, Any] = {"starts": [], "total": 0, "runs": 0, "done": 0}

        def planned(epochs: list[int]) -> None:
            starts, total = [], 0
            for n in epochs:
                starts.append(total)
                total += n
            plan.update(starts=starts, total=total, runs=len(epochs))
            bar.update(task, total=total, count=f"0/{len(epochs)} runs")

        def epoch_done(index: int, epoch: int) -> None:
            bar.update(task, completed=plan["starts"][index] + epoch + 1)

        def run_done(trial: int, seed: int, value: float) -> None:
            plan["done"] += 1
            index = plan["done"]
            end = plan["starts"][index] if index < plan["runs"] else plan["total"]
            bar.update(task, completed=end, count=f"{index}/{plan['runs']} runs")
            if not bar.live.is_started:
                console.print(f"trial {trial} seed {seed}: {value:.4f}")

        report = confirm_study(study, storage=storage, top=top, seeds=seeds, splits=splits,
                               on_run=run_done, threads=threads, on_epoch=epoch_done,
                               on_plan=planned, echo=_echo(console))
    table = Table("rank", "trial", "loss", "single run", f"mean val {report.metric}", "95% CI",
                  "std", "winner's curse", "test macro_f1 (mean ± CI)",
                  title=f"{study}: {len(report.rows)} trial(s) x {seeds} seeds"
                        + (f" x {splits} holdouts" if splits > 1 else "")
                        + f" in {report.seconds:.1f}s")
    for i, r in enumerate(report.ranked(), 1):
        s, t = r.val_stats, r.test_stats.get("macro_f1", {})
        table.add_row(str(i), str(r.trial), r.loss, f"{r.single_value:.4f}", f"{s['mean']:.4f}",
                      f"[{s['mean'] - s['ci95']:.4f}, {s['mean'] + s['ci95']:.4f}]",
                      f"{s['std']:.4f}", f"{r.winners_curse:+.4f}",
                      f"{t.get('mean', float('nan')):.4f} ± {t.get('ci95', float('nan')):.4f}")
    console.print(table)
    ranked = report.ranked()
    single_best = report.single_run_best()
    if ranked[0].trial != single_best.trial:
        console.print(f"The confirmed best is trial {ranked[0].trial}, not the single-run best "
                      f"{single_best.trial}.")
    else:
        console.print(f"The single-run best (trial {single_best.trial}) is also the confirmed "
                      "best.")
    console.print(f"Export it with: losstune export {study} --confirmed -o best.yaml")


@cli.command()
@click.argument("study")
@click.option("-o", "--output", required=True, type=click.Path(), help="Folder to write.")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@handle_errors
def report(study: str, output: str, storage: str | None, force: bool,
           no_progress: bool) -> None:
    """Write a static HTML report of STUDY (offline plotly) with PNG figures."""
    from losstune.studies.progress import task_progress
    from losstune.studies.report import REPORT_STEPS, write_report

    console = _console()
    with task_progress(console, enabled=not no_progress) as bar:
        task = bar.add_task("report", total=REPORT_STEPS, count="")
        started: list[str] = []

        def step(message: str) -> None:  # called as a step starts: the previous one is done
            bar.update(task, completed=len(started), description=f"report: {message}",
                       count=f"{len(started)}/{REPORT_STEPS} steps")
            started.append(message)

        index = write_report(study, output, storage=storage, force=force, progress=step)
        bar.update(task, completed=REPORT_STEPS, count=f"{REPORT_STEPS}/{REPORT_STEPS} steps")
    console.print(f"wrote {index} (open it in a browser; figures in {index.parent}/figures)")


@cli.command()
@click.argument("studies_", metavar="[STUDY]...", nargs=-1)
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--markdown", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as Markdown to this file.")
@handle_errors
def compare(studies_: tuple[str, ...], storage: str | None, markdown: str | None) -> None:
    """Best and confirmed results of several studies side by side (without STUDY: the only
    study in the storage)."""
    from pathlib import Path

    from rich.table import Table

    from losstune.studies.compare import COLUMNS, compare_studies, table_cells, to_markdown

    if markdown:
        _check_output_file(Path(markdown), "--markdown")
    rows = compare_studies(list(studies_), storage)
    table = Table(*COLUMNS)
    for row in rows:
        table.add_row(*table_cells(row))
    _console().print(table)
    if markdown:
        try:
            Path(markdown).write_text(to_markdown(rows), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--markdown {markdown!r}: cannot write it: "
                            f"{exc.strerror or exc}") from None
        click.echo(f"wrote {markdown}")


def _check_output_file(path: Any, option: str) -> None:
    """An output file can be written: its folder exists and is writable, and it is not a
    folder itself (checked before any work, so a bad path costs nothing)."""
    folder = path.parent if str(path.parent) else type(path)(".")
    if path.is_dir():
        raise UserError(f"{option} {str(path)!r} is a folder; give a file name")
    if not folder.is_dir():
        raise UserError(f"{option} {str(path)!r}: folder {str(folder)!r} does not exist; "
                        "create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists()
                                                     and not os.access(path, os.W_OK)):
        raise UserError(f"{option} {str(path)!r}: not writable here (permissions)")


# ---------------------------------------------------------------------- contracts
_FIXES = {
    "registry": "register it (register_loss / register_model / an entry point) under its `name`",
    "search space": "give it a default space (losstune.search_spaces.register_loss_space) "
                    "whose keys are constructor knobs and whose ranges hold the defaults",
    "docstring": "write a class docstring with the formula (``L = ...``), Args, References and "
                 "Inputs",
    "constructor": "make every knob keyword-only, typed, with the paper's default, and raise "
                   "ValueError on invalid values",
}


def _report_contract(kind: str, results: dict[str, list[Any]]) -> None:
    console = _console()
    failed = 0
    for name, problems in results.items():
        if not problems:
            console.print(f"ok: {kind} {name!r} meets the contract")
            continue
        failed += 1
        console.print(f"FAIL: {kind} {name!r} — {len(problems)} problem(s):")
        for p in problems:
            fix = _FIXES.get(p.step)
            console.print(f"  [{p.step}] {p.message}" + (f"\n      fix: {fix}" if fix else ""),
                          markup=False)
    if failed:
        raise click.exceptions.Exit(2)


@cli.command("check-loss")
@click.argument("name_or_module")
@handle_errors
def check_loss_cmd(name_or_module: str) -> None:
    """Run the loss contract on a registered loss or on the losses of a module."""
    from losstune.studies import api

    _report_contract("loss", api.check_loss(name_or_module))


@cli.command("check-model")
@click.argument("name_or_module")
@handle_errors
def check_model_cmd(name_or_module: str) -> None:
    """Run the model-head contract on a registered head or on the heads of a module."""
    from losstune.studies import api

    _report_contract("model head", api.check_model(name_or_module))


@cli.command("check-dataset")
@click.argument("name")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Loader option (repeatable), e.g. -o path=data.csv -o text_column=text.")
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
              help="Import this plugin module first (repeatable).")
@handle_errors
def check_dataset_cmd(name: str, options: tuple[str, ...], plugins: tuple[str, ...]) -> None:
    """Run the dataset contract on a registered dataset."""
    from losstune.objectives.plugins import import_plugin_modules
    from losstune.studies import api

    if plugins:
        import_plugin_modules(list(plugins))
    _report_contract("dataset", api.check_dataset(name, api.parse_data_options(options)))


# ---------------------------------------------------------------------- dashboard
@cli.command()
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but 127.0.0.1 exposes the studies.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@handle_errors
def dashboard(storage: str | None, host: str, port: int) -> None:
    """Serve optuna-dashboard on the losstune storage."""
    from losstune.storage import mask_url, resolve_storage_url
    from losstune.studies import api

    url = resolve_storage_url(storage)
    api.open_storage_ro(storage)
    api.check_port_free(host, port)  # before saying where it serves
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding to {host}: anyone who can reach this machine can read "
                   "the studies (optuna-dashboard has no login)", err=True)
    click.echo(f"optuna-dashboard for {mask_url(url)} at http://{host}:{port}/ (Ctrl-C stops)")
    api.serve_dashboard(storage, host=host, port=port)


@cli.command("storage-proxy")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but 127.0.0.1 lets others read and write the "
                   "studies (the proxy has no login).")
@click.option("--port", type=click.IntRange(0, 65535), default=13000, show_default=True,
              help="Port to listen on (0: a free port, printed).")
@click.option("--threads", type=click.IntRange(min=8), default=128, show_default=True,
              help="gRPC threads; keep it above the number of workers (each worker waiting "
                   "for the budget lock occupies one).")
@click.option("--pool-size", type=click.IntRange(min=2), default=8, show_default=True,
              help="Database connections the proxy holds.")
@handle_errors
def storage_proxy(storage: str | None, host: str, port: int, threads: int,
                  pool_size: int) -> None:
    """Serve the storage to many workers through one gRPC proxy: workers run with
    `--storage grpc://HOST:PORT` and need no database access."""
    import socket

    from losstune.storage import mask_url, resolve_storage_url
    from losstune.studies import api

    url = resolve_storage_url(storage)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding to {host}: anyone who can reach this port can read and "
                   "change the studies (the proxy has no login; keep it on a private network)",
                   err=True)
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host

    def ready(bound: int) -> None:
        click.echo(f"storage proxy for {mask_url(url)} at grpc://{shown}:{bound} ({threads} "
                   f"threads, {pool_size} database connections); workers use --storage "
                   f"grpc://{shown}:{bound} (Ctrl-C stops)")

    api.serve_storage_proxy(storage, host=host, port=port, threads=threads,
                            pool_size=pool_size, ready=ready)


# ---------------------------------------------------------------------- study files
@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@handle_errors
def space(study_file: str) -> None:
    """Validate STUDY_FILE and print its compiled search space."""
    from rich.table import Table

    from losstune.studies import api

    spec, compiled = api.describe_space(study_file)
    warning = api.device_warning(spec)
    if warning:
        click.echo(f"warning: {warning} (`losstune run` with the local launcher refuses it)",
                   err=True)
    table = Table("parameter", "distribution", "default", "only when",
                  title=f"{spec.name}: {len(compiled.params)} parameters, fingerprint "
                        f"{compiled.fingerprint()}")
    for p in compiled.params:
        when = ", ".join(f"{k}={v}" for k, v in p.when) or "-"
        table.add_row(p.name, p.dist.describe(), _fmt(p.effective_default()), when)
    _console().print(table)


# ---------------------------------------------------------------------- datasets
@cli.group(cls=OneLineErrors)
def data() -> None:
    """Datasets: list the registered ones, show a dataset's label statistics."""


@data.command("list")
@handle_errors
def data_list() -> None:
    """List the registered datasets with their descriptions and sources."""
    from rich.table import Table

    from losstune.studies import api

    table = Table("name", "task", "derived", "description", "source")
    for row in api.list_datasets():
        table.add_row(row["name"], row["task"],
                      "derived" if row["derived"] else "-", row["description"], row["source"])
    _console().print(table)
    click.echo("Details: `losstune data info NAME`; derived = a task built by losstune from "
               "real labels, not a published benchmark.")


@data.command("info")
@click.argument("name")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A data.options entry, e.g. -o path=my.csv -o limit.train=200 (repeatable; "
                   "values are read as YAML).")
@click.option("--head-min", type=click.IntRange(min=0), default=35, show_default=True,
              help="Head classes have at least this many training documents.")
@click.option("--tail-max", type=click.IntRange(min=0), default=8, show_default=True,
              help="Tail classes have at most this many training documents.")
@click.option("--top", type=click.IntRange(min=0), default=5, show_default=True,
              help="How many most / least frequent classes to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@handle_errors
def data_info(name: str, options: tuple[str, ...], head_min: int, tail_max: int, top: int,
              as_json: bool) -> None:
    """Label statistics of dataset NAME: docs per split, labels per document, head / medium /
    tail classes by training frequency and, for multi-label data, the DB losses' ratio r."""
    import json

    from rich.table import Table

    from losstune.studies import api

    stats = api.dataset_info(name, api.parse_data_options(options), head_min=head_min,
                             tail_max=tail_max, top=top)
    if as_json:
        click.echo(json.dumps(stats.to_dict(), indent=2))
        return
    console = _console()
    kind = "multi-label" if stats.multilabel else "single-label"
    derived = ", DERIVED from real labels (not a published benchmark)" if stats.derived else ""
    console.print(f"{stats.name}: {stats.num_classes} classes, {kind}{derived}")
    console.print(f"  {stats.description}")
    table = Table("split", "docs", "classes present", "labels/doc mean", "labels/doc max",
                  "docs with no label")
    for split, s in stats.splits.items():
        table.add_row(split, str(s.docs), str(s.classes_present), f"{s.labels_per_doc_mean:.3f}",
                      str(s.labels_per_doc_max), str(s.docs_without_label))
    console.print(table)
    console.print(f"class groups by training documents (head >= {stats.head_min}, medium "
                  f"{stats.tail_max + 1}-{stats.head_min - 1}, tail <= {stats.tail_max}): "
                  + ", ".join(f"{g} {len(rows)}" for g, rows in stats.groups.items()))
    for group, rows in stats.groups.items():
        if rows:
            shown = ", ".join(f"{r.name} ({r.train})" for r in rows[:8])
            more = f", ... {len(rows) - 8} more" if len(rows) > 8 else ""
            console.print(f"  {group}: {shown}{more}")
    for title, rows in (("most frequent", stats.top), ("least frequent", stats.bottom)):
        if rows:
            console.print(f"{title} (train/val/test): "
                          + ", ".join(f"{r.name} {r.train}/{r.val}/{r.test}" for r in rows))
    if stats.imbalance_ratio is not None:
        console.print(f"imbalance ratio (largest / smallest training class): "
                      f"{stats.imbalance_ratio:.1f}")
    if stats.without_train_docs:
        console.print(f"classes with no training document: {stats.without_train_docs}")
    if stats.r_mean is not None:
        low, high = stats.suggested_mu or (0.0, 0.0)
        console.print(f"DB rebalancing ratio r over {stats.r_pairs} positive (doc, label) pairs "
                      f"of train: mean {stats.r_mean:.4f}, median {stats.r_median:.4f}; "
                      f"suggested mu range [{low:g}, {high:g}] (loss.db.mu)")
    for note in stats.notes:
        console.print(f"note: {note}")


def main() -> None:
    """Entry point of the ``losstune`` script."""
    cli(standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main()
