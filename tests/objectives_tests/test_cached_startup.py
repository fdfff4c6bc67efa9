"""Cached features start a study without the encoder: a run, or a ``limit`` subset of cached
documents, never encodes, never builds the MiniLM model and never imports sentence-transformers
or transformers (they cost seconds of start-up). Each check runs in a fresh process, as a user's
command would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from losstune.objectives.config import EncoderConfig
from losstune.objectives.data import load_dataset
from losstune.objectives.features import encoder_outputs
from tests.conftest import R8_SMALL, tiny_study

MINILM = EncoderConfig(name="minilm", max_length=128)
HEAVY = ("sentence_transformers", "transformers", "tokenizers")
REPORT = (
    "\nimport sys\n"
    "from losstune.objectives import cache\n"
    "from losstune.objectives.encoders import minilm\n"
    f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    "print('MODELS', len(minilm._models), 'MISSES', cache.STATS.misses, "
    "'ROWS', cache.STATS.rows_computed)\n"
)


def _cache_r8_small() -> None:
    """The real R8 subset's MiniLM features in this session's cache (encoded once)."""
    dataset = load_dataset(R8_SMALL["name"], R8_SMALL["options"])
    for split in ("train", "val", "test"):
        encoder_outputs(dataset, split, MINILM)


def _report(code: str, cwd: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + REPORT], cwd=cwd, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    return [lines[-2], lines[-1]]


def test_a_run_on_cached_features_imports_no_encoder_library(tmp_path: Path) -> None:
    _cache_r8_small()
    study = tiny_study(name="cached", n_trials=1, data=R8_SMALL,
                       encoder={"name": "minilm", "max_length": 128},
                       loss={"choices": ["ce"], "baseline": True},
                       space={"train.epochs": 1})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    heavy, counts = _report(
        "from losstune.studies.cli import cli\n"
        "cli(['run', 's.yaml', '--storage', 'sqlite:///s.db', '--no-progress'], "
        "standalone_mode=False)\n", tmp_path)
    assert heavy == "HEAVY []"
    assert counts == "MODELS 0 MISSES 0 ROWS 0"


def test_a_limit_subset_of_cached_documents_builds_no_encoder(tmp_path: Path) -> None:
    _cache_r8_small()
    smaller = {"limit": {"train": 100, "val": 40, "test": 40}}  # documents of R8_SMALL
    heavy, counts = _report(
        "from losstune.objectives.config import EncoderConfig\n"
        "from losstune.objectives.data import load_dataset\n"
        "from losstune.objectives.features import encoder_outputs\n"
        f"dataset = load_dataset('r8', {smaller!r})\n"
        "for split in ('train', 'val', 'test'):\n"
        "    out = encoder_outputs(dataset, split, EncoderConfig(name='minilm'))\n"
        "    assert len(out['embeddings']) == len(dataset.split(split))\n", tmp_path)
    assert heavy == "HEAVY []"
    assert counts == "MODELS 0 MISSES 0 ROWS 0"
