"""Shared fixtures.

* The encoder cache lives in one folder per test session (``$LOSSTUNE_TEST_CACHE`` to reuse one
  across runs), so real data subsets are encoded once per run and never touch the user's cache.
* Services (PostgreSQL, MariaDB, Ray, chromium) are required under ``CI=true``: a test that needs
  a missing one fails there, and is skipped with a reason elsewhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("LOSSTUNE_STORAGE", None)

REPO = Path(__file__).resolve().parents[1]

#: A small stratified subset of real R8, encoded with real MiniLM once per test run.
R8_SMALL: dict[str, Any] = {"name": "r8", "options": {"limit": {"train": 240, "val": 80,
                                                                  "test": 80}}}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, what: str) -> None:
    """Fail under CI=true, skip elsewhere, when a required service is missing."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} is not available here")


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reuse = os.environ.get("LOSSTUNE_TEST_CACHE")
    path = Path(reuse) if reuse else tmp_path_factory.mktemp("losstune-cache")
    path.mkdir(parents=True, exist_ok=True)
    old = os.environ.get("LOSSTUNE_CACHE")
    os.environ["LOSSTUNE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LOSSTUNE_CACHE", None)
    else:
        os.environ["LOSSTUNE_CACHE"] = old


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def tiny_study(**overrides: Any) -> dict[str, Any]:
    """A study dict on the synthetic corpus with the hashing encoder: seconds per trial."""
    study: dict[str, Any] = {
        "name": "tiny",
        "n_trials": 4,
        "seed": 0,
        "data": {"name": "synthetic"},
        "encoder": {"name": "hashing"},
        "model": {"head": "linear"},
        "loss": {"choices": ["ce", "bce", "focal"], "baseline": True},
        "space": {"train.epochs": {"low": 2, "high": 4}, "train.lr": {"low": 0.01, "high": 0.1,
                                                                      "log": True}},
        "train": {"threads": 1},
        "pruner": {"name": "none"},
    }
    for key, value in overrides.items():
        study[key] = value
    return study


def r8_small_study(**overrides: Any) -> dict[str, Any]:
    """A study dict on the small real R8 subset with real MiniLM embeddings."""
    study = tiny_study(data=R8_SMALL, encoder={"name": "minilm", "max_length": 128},
                       space={"train.epochs": {"low": 10, "high": 20},
                              "train.lr": {"low": 0.03, "high": 0.3, "log": True}})
    study.update(overrides)
    return study


def chromium_paths() -> tuple[str | None, str | None]:
    return shutil.which("chromium"), shutil.which("chromedriver")
