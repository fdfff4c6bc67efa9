"""Row reuse in the encoder cache: another holdout or a ``limit`` subset is assembled from the
cached encodings of its documents; only documents never encoded before are encoded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from losstune.objectives import cache
from losstune.objectives.config import EncoderConfig
from losstune.objectives.data import load_dataset
from losstune.objectives.encoders import build_encoder
from losstune.objectives.features import encoder_outputs
from tests.conftest import R8_SMALL

HASHING = EncoderConfig(name="hashing")


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    cache.clear_memory()
    yield tmp_path / "cache"
    cache.clear_memory()


def _encode_all(options: dict, kind: str = "embeddings") -> dict[str, dict[str, np.ndarray]]:
    dataset = load_dataset("synthetic", options)
    return {s: encoder_outputs(dataset, s, HASHING, kind=kind) for s in ("train", "val", "test")}


def _counts() -> tuple[int, int]:
    return cache.STATS.misses, cache.STATS.rows_computed


def _fresh(texts: tuple[str, ...]) -> np.ndarray:
    return build_encoder("hashing", max_length=HASHING.max_length).encode(texts)


def test_a_new_holdout_and_a_limit_subset_encode_nothing(fresh_cache: Path) -> None:
    misses, rows = _counts()
    _encode_all({})
    assert cache.STATS.rows_computed - rows == 320  # 216 + 24 + 80: everything once
    misses, rows = _counts()
    for options in ({"split_seed": 1}, {"split_seed": 2},
                    {"limit": {"train": 50, "val": 10, "test": 20}},
                    {"limit": 40, "split_seed": 3}):
        cache.clear_memory()  # as a new process would: read from disk
        out = _encode_all(options)
        dataset = load_dataset("synthetic", options)
        for split, arrays in out.items():
            texts = dataset.split(split).texts
            # the hashing encoder encodes each text on its own: reused rows are exact
            np.testing.assert_array_equal(arrays["embeddings"], _fresh(texts))
    assert _counts() == (misses, rows), "a holdout or subset of cached documents encoded again"
    assert cache.STATS.rows_reused > 0


def test_only_new_documents_are_encoded_and_token_states_too(fresh_cache: Path) -> None:
    _encode_all({}, kind="token_states")
    misses, rows = _counts()
    # n_train 300 generates the same first 240 training documents and 60 new ones
    bigger = load_dataset("synthetic", {"n_train": 300})
    old = set(load_dataset("synthetic").train.texts) | set(load_dataset("synthetic").val.texts)
    new = {t for s in ("train", "val") for t in bigger.split(s).texts} - old
    assert 0 < len(new) <= 60
    for split in ("train", "val", "test"):
        arrays = encoder_outputs(bigger, split, HASHING, kind="token_states")
        states, mask = build_encoder("hashing").encode_tokens(bigger.split(split).texts)
        np.testing.assert_array_equal(arrays["token_states"], states)
        np.testing.assert_array_equal(arrays["token_mask"], mask)
    assert cache.STATS.rows_computed - rows == len(new)
    assert cache.STATS.misses - misses == 2  # one new-rows entry each for train and val
    # and the next process finds everything
    cache.clear_memory()
    misses, rows = _counts()
    for split in ("train", "val", "test"):
        encoder_outputs(bigger, split, HASHING, kind="token_states")
    assert _counts() == (misses, rows)


def test_entries_written_before_row_reuse_are_adopted(fresh_cache: Path) -> None:
    _encode_all({})
    # what an older losstune left: entries without row digests, and no index
    for rows_file in fresh_cache.rglob(cache.ROWS_FILE):
        rows_file.unlink()
    shutil.rmtree(fresh_cache / "rows-index")
    cache.clear_memory()
    misses, rows = _counts()
    out = _encode_all({"limit": {"train": 30, "val": 8, "test": 16}})
    assert _counts() == (misses, rows), "the whole dataset's cached encoding was not used"
    subset = load_dataset("synthetic", {"limit": {"train": 30, "val": 8, "test": 16}})
    np.testing.assert_array_equal(out["val"]["embeddings"], _fresh(subset.val.texts))


def test_minilm_rows_served_from_the_cache_differ_by_float_rounding_only() -> None:
    """A smaller subset of the real R8 test subset is served from its cached MiniLM rows; a
    fresh encoding of the same texts (other batches, other padding) agrees to ~1e-6."""
    small = load_dataset(R8_SMALL["name"], R8_SMALL["options"])
    minilm = EncoderConfig(name="minilm", max_length=128)
    encoder_outputs(small, "test", minilm)  # cached by the real-data tests (or encoded now)
    misses, rows = _counts()
    smaller = load_dataset("r8", {"limit": {"train": 100, "val": 40, "test": 40}})
    assert set(smaller.test.texts) <= set(small.test.texts)
    served = encoder_outputs(smaller, "test", minilm)
    assert _counts() == (misses, rows)
    texts = smaller.test.texts[:12]
    fresh = build_encoder("minilm", max_length=128).encode(texts, batch_size=5)
    diff = float(np.abs(np.asarray(served["embeddings"][:12]) - fresh).max())
    assert diff < 1e-5, diff
