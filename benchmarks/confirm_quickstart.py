"""How often is the quickstart's single-run best not the confirmed best, and what does
``confirm --top 5 --seeds 5`` cost?

Runs the quickstart study (studies/configs/quickstart.yaml) once per sampler seed, each in a
fresh SQLite file, then confirms its top trials with fresh seeds, and prints one row per study:
the single-run best trial, the confirmed best trial, whether they differ, the single-run best's
winner's curse (single value minus its confirmed mean) and the seconds ``confirm`` took.

Usage: ``python benchmarks/confirm_quickstart.py [--repeats 4] [--top 5] [--seeds 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()

    import optuna
    import yaml

    from losstune.studies import api
    from losstune.studies.confirm import confirm_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as the CLI does

    base = yaml.safe_load((REPO / "studies" / "configs" / "quickstart.yaml").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            study = dict(base, seed=repeat, name=f"quickstart_seed{repeat}")
            url = f"sqlite:///{Path(tmp) / f'q{repeat}.db'}"
            spec, text = api.study_from_dict(study)
            t0 = time.perf_counter()
            api.run_study(spec, study_text=text, storage=url, progress=False)
            run_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = confirm_study(spec.name, storage=url, top=args.top, seeds=args.seeds)
            confirm_s = time.perf_counter() - t0
            single = report.single_run_best()
            confirmed = report.ranked()[0]
            rows.append((repeat, single, confirmed, run_s, confirm_s))
    print(f"quickstart x{args.repeats} (sampler seeds 0..{args.repeats - 1}); confirm --top "
          f"{args.top} --seeds {args.seeds}")
    print(f"{'seed':>4} {'single best':>22} {'confirmed best':>30} {'differ':>6} "
          f"{'curse':>8} {'run s':>7} {'confirm s':>9}")
    for repeat, single, confirmed, run_s, confirm_s in rows:
        mean, ci = confirmed.val_stats["mean"], confirmed.val_stats["ci95"]
        single_text = f"#{single.trial} {single.loss} {single.single_value:.4f}"
        confirmed_text = f"#{confirmed.trial} {confirmed.loss} {mean:.4f}±{ci:.4f}"
        differ = "yes" if single.trial != confirmed.trial else "no"
        print(f"{repeat:>4} {single_text:>22} {confirmed_text:>30} {differ:>6} "
              f"{single.winners_curse:+8.4f} {run_s:7.1f} {confirm_s:9.1f}")
    differ = sum(1 for _, s, c, _, _ in rows if s.trial != c.trial)
    curses = [s.winners_curse for _, s, _, _, _ in rows]
    print(f"single-run best != confirmed best in {differ} of {len(rows)} studies; mean winner's "
          f"curse of the single-run best {statistics.fmean(curses):+.4f}; confirm took "
          f"{statistics.fmean(r[4] for r in rows):.1f} s on average "
          f"({args.top * args.seeds} trainings)")


if __name__ == "__main__":
    main()
