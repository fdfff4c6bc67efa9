"""How soon does a study whose features are cached start and finish its first trial?

Runs ``losstune run STUDY --n-trials 1 --no-progress`` (the quickstart study by default) on a
fresh SQLite file, each time as a fresh Python process (the same entry point as the
``losstune`` command): ``--runs`` times as a user runs it, then once more under
``python -X importtime`` (which slows imports down, so it is timed apart), and prints:

* seconds from the command to the first trial's start and to its end (read from the storage),
  and to the command's exit: the median and range of the plain runs;
* the import time of the command (its top-level imports' cumulative ``-X importtime``
  times, summed) and its largest top-level imports;
* whether the encoder libraries (sentence-transformers, transformers, tokenizers) were imported:
  with cached features they must not be.

The first run encodes the study's data (minutes, once); it says so and you run it again.

Usage: ``python benchmarks/startup.py [--study studies/configs/quickstart.yaml] [--runs 3]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("sentence_transformers", "transformers", "tokenizers")

CODE = """
import sys
from losstune.studies.cli import cli
try:
    cli(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = [m for m in {heavy!r} if m in sys.modules]
print("HEAVY", ",".join(heavy) or "-", flush=True)
sys.exit(code)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(REPO / "studies" / "configs" / "quickstart.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    plain = [_run(args.study, importtime=False) for _ in range(args.runs)]
    profiled = _run(args.study, importtime=True)
    if any(r["encoded"] for r in plain + [profiled]):
        print("note: a run encoded the study's data (not cached yet); run it again")
    print(f"study: {Path(args.study).name}, first trial {profiled['params']}; "
          f"{args.runs} plain runs, each a fresh process")
    for key, label in (("started", "command -> first trial started: "),
                       ("finished", "command -> first trial finished:"),
                       ("exited", "command -> command exited:      ")):
        values = [r[key] for r in plain]
        print(f"{label} {statistics.median(values):6.2f} s (median; "
              f"{min(values):.2f}-{max(values):.2f})")
    imports = profiled["imports"]
    print(f"import time of the command (a run under -X importtime): "
          f"{sum(imports.values()) / 1e6:.2f} s; largest top-level imports: "
          + ", ".join(f"{name} {us / 1e6:.2f} s" for name, us in
                      sorted(imports.items(), key=lambda kv: -kv[1])[:5]))
    print(f"encoder libraries imported: {profiled['heavy']}")


def _run(study: str, *, importtime: bool) -> dict[str, Any]:
    """One ``losstune run STUDY --n-trials 1`` in a fresh process on a fresh SQLite file."""
    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'startup.db'}"
        command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c",
                   CODE.format(heavy=HEAVY), "run", study, "--storage", url, "--n-trials",
                   "1", "--no-progress"]
        started = time.time()
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
        ended = time.time()
        if done.returncode != 0:
            sys.exit(f"the run failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        studies = optuna.get_all_study_summaries(url)
        trial = optuna.load_study(study_name=studies[0].study_name, storage=url).trials[0]

    def since(moment: dt.datetime | None) -> float:
        return (moment.timestamp() - started) if moment else float("nan")

    heavy = next((line.split()[1] for line in done.stdout.splitlines()
                  if line.startswith("HEAVY")), "?")
    return {"started": since(trial.datetime_start), "finished": since(trial.datetime_complete),
            "exited": ended - started, "params": trial.params, "heavy": heavy,
            "encoded": "encoding " in done.stderr,
            "imports": _import_times(done.stderr) if importtime else {}}


def _import_times(stderr: str) -> dict[str, float]:
    """Cumulative microseconds of each top-level import (``-X importtime`` lines)."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        try:
            cumulative = float(parts[1])
        except ValueError:
            continue  # the header line
        name = parts[2]
        if not name.startswith(" ") or name.startswith("  "):
            continue  # nested import: counted in its parent's cumulative time
        out[name.strip()] = cumulative
    return out


if __name__ == "__main__":
    main()
