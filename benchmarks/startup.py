"""How soon does a study whose features are cached start and finish its first trial?

Runs ``losstune run STUDY --n-trials 1 --no-progress`` (the quickstart study by default) on a
fresh SQLite file, as one fresh Python process (``python -X importtime``, the same entry point as
the ``losstune`` command), and prints, from one run:

* seconds from the command to the first trial's start and to its end (read from the storage);
* the import time of the command (its top-level imports' cumulative ``-X importtime``
  times, summed) and its largest top-level imports;
* whether the encoder libraries (sentence-transformers, transformers, tokenizers) were imported:
  with cached features they must not be.

The first run encodes the study's data (minutes, once); it says so and you run it again.

Usage: ``python benchmarks/startup.py [--study studies/configs/quickstart.yaml]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    args = parser.parse_args()

    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'startup.db'}"
        command = [sys.executable, "-X", "importtime", "-c", CODE.format(heavy=HEAVY), "run",
                   args.study, "--storage", url, "--n-trials", "1", "--no-progress"]
        started = time.time()
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
        ended = time.time()
        if done.returncode != 0:
            sys.exit(f"the run failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        encoded = "encoding " in done.stderr
        studies = optuna.get_all_study_summaries(url)
        trial = optuna.load_study(study_name=studies[0].study_name, storage=url).trials[0]

    def since(moment: dt.datetime | None) -> float:
        return (moment.timestamp() - started) if moment else float("nan")

    imports = _import_times(done.stderr)
    heavy = next((line.split()[1] for line in done.stdout.splitlines()
                  if line.startswith("HEAVY")), "?")
    print(f"study: {Path(args.study).name}, first trial {trial.params}")
    if encoded:
        print("note: this run encoded the study's data (not cached yet); run it again")
    print(f"command -> first trial started:  {since(trial.datetime_start):6.2f} s")
    print(f"command -> first trial finished: {since(trial.datetime_complete):6.2f} s "
          f"(whole command {ended - started:.2f} s)")
    print(f"import time of the command: {sum(imports.values()) / 1e6:.2f} s; largest top-level "
          "imports: " + ", ".join(f"{name} {us / 1e6:.2f} s" for name, us in
                                   sorted(imports.items(), key=lambda kv: -kv[1])[:5]))
    print(f"encoder libraries imported: {heavy}")


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
