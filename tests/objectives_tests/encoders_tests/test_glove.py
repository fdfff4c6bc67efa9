"""GloVe-50d: parsed once per machine, word geometry, token-id layout, mean encoder, cache."""

from __future__ import annotations

import numpy as np
import pytest

from losstune.objectives import cache
from losstune.objectives.config import EncoderConfig
from losstune.objectives.data import load_dataset
from losstune.objectives.encoders import build_encoder, get_encoder_class
from losstune.objectives.encoders import glove as glove_mod
from losstune.objectives.encoders.glove import (
    FIRST_WORD_ID,
    PAD_ID,
    UNK_ID,
    GloveEncoder,
    glove_vectors,
    tokenize,
)
from losstune.objectives.features import encoder_outputs, token_context

#: A small vocabulary keeps the one-time parse under a second in tests.
VOCAB = 20_000


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_known_words_have_glove_geometry() -> None:
    table = glove_vectors(VOCAB)
    good, great, oil = (table.vector(w) for w in ("good", "great", "oil"))
    assert good.shape == (50,)
    assert _cos(good, great) > _cos(good, oil)
    # measured on the same file with NumPy (docs/references.md)
    assert _cos(good, great) == pytest.approx(0.798, abs=1e-3)
    assert _cos(good, oil) == pytest.approx(0.438, abs=1e-3)
    assert table.words[:3] == ["the", ",", "."]  # file order = frequency order
    assert len(table) == VOCAB


def test_vectors_are_parsed_once_then_read_from_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_parse = glove_mod._parse

    def counting_parse(path, vocab_size):  # type: ignore[no-untyped-def]
        calls.append(vocab_size)
        return real_parse(path, vocab_size)

    monkeypatch.setattr(glove_mod, "_parse", counting_parse)
    size = 1234  # a size no other test uses: a fresh cache entry
    glove_mod._tables.clear()
    cache.clear_memory()
    misses = cache.STATS.misses
    first = glove_vectors(size)
    assert calls == [size] and cache.STATS.misses == misses + 1
    # a new process: no memo, the disk entry is read (a hit), nothing is parsed again
    glove_mod._tables.clear()
    cache.clear_memory()
    hits = cache.STATS.hits
    second = glove_vectors(size)
    assert calls == [size]
    assert cache.STATS.hits == hits + 1 and cache.STATS.misses == misses + 1
    assert second.words == first.words
    np.testing.assert_array_equal(second.vectors, first.vectors)


def test_tokenizer_lowercases_and_splits_words() -> None:
    assert tokenize("Hello, WORLD! it's 2024") == ["hello", "world", "it", "s", "2024"]
    assert tokenize("") == []


def test_token_id_layout() -> None:
    enc = GloveEncoder(max_length=6, vocab_size=VOCAB, oov_buckets=10)
    table = enc.table()
    ids, mask = enc.encode_ids(["The cat kwzzq1", "", "a b c d e f g h"])
    assert ids.dtype == np.int32 and ids.shape == (3, 6) and mask.dtype == np.uint8
    assert ids[0, 0] == FIRST_WORD_ID + table.index["the"]
    assert ids[0, 1] == FIRST_WORD_ID + table.index["cat"]
    oov = ids[0, 2]
    assert FIRST_WORD_ID + VOCAB <= oov < FIRST_WORD_ID + VOCAB + 10  # hashed bucket
    assert enc.encode_ids(["kwzzq1"])[0][0, 0] == oov  # stable across calls (crc32, no salt)
    assert list(ids[0, 3:]) == [PAD_ID] * 3 and list(mask[0]) == [1, 1, 1, 0, 0, 0]
    assert not mask[1].any()  # empty text: all padding
    assert mask[2].all()  # truncated to max_length
    assert enc.num_ids == FIRST_WORD_ID + VOCAB + 10
    no_buckets = GloveEncoder(max_length=6, vocab_size=VOCAB, oov_buckets=0)
    assert no_buckets.encode_ids(["kwzzq1"])[0][0, 0] == UNK_ID


def test_token_vectors_rows_match_ids() -> None:
    enc = GloveEncoder(vocab_size=VOCAB)
    vectors = enc.token_vectors()
    assert vectors.shape == (FIRST_WORD_ID + VOCAB, 50)
    assert not vectors[PAD_ID].any() and not vectors[UNK_ID].any()
    word_id = enc.encode_ids(["good"])[0][0, 0]
    np.testing.assert_array_equal(vectors[word_id], enc.table().vector("good"))


def test_mean_encoder_is_the_mean_of_known_word_vectors() -> None:
    enc = GloveEncoder(vocab_size=VOCAB)
    table = enc.table()
    emb = enc.encode(["Good movie kwzzq1", "kwzzq1 qqqxxz", ""])
    assert emb.shape == (3, 50) and emb.dtype == np.float32
    expected = (table.vector("good") + table.vector("movie")) / 2  # the OOV word is ignored
    np.testing.assert_allclose(emb[0], expected, rtol=1e-6)
    assert not emb[1].any() and not emb[2].any()  # no known word: zero vector (upstream)
    unit = GloveEncoder(vocab_size=VOCAB, normalize=True).encode(["good movie"])
    assert np.linalg.norm(unit[0]) == pytest.approx(1.0, abs=1e-6)
    short = GloveEncoder(vocab_size=VOCAB, max_length=1).encode(["good movie"])
    np.testing.assert_allclose(short[0], table.vector("good"))


def test_encoder_is_registered_and_checks_options() -> None:
    assert get_encoder_class("glove") is GloveEncoder
    assert build_encoder("glove", vocab_size=VOCAB).dim == 50
    with pytest.raises(ValueError, match="vocab_size"):
        GloveEncoder(vocab_size=0)
    with pytest.raises(ValueError, match="oov_buckets"):
        GloveEncoder(oov_buckets=-1)
    with pytest.raises(ValueError, match="takes no option"):
        GloveEncoder(dim=300)


def test_token_ids_are_cached_per_split_like_features() -> None:
    dataset = load_dataset("synthetic")
    config = EncoderConfig(name="glove", max_length=16, options={"vocab_size": VOCAB})
    cache.clear_memory()
    misses = cache.STATS.misses
    first = encoder_outputs(dataset, "val", config, kind="token_ids")
    assert set(first) == {"token_ids", "token_mask"}
    assert first["token_ids"].shape == (len(dataset.val), 16)
    assert first["token_ids"].dtype == np.int32
    computed = cache.STATS.misses - misses
    cache.clear_memory()
    hits = cache.STATS.hits
    second = encoder_outputs(dataset, "val", config, kind="token_ids")
    assert cache.STATS.misses - misses == computed  # nothing recomputed
    assert cache.STATS.hits > hits
    np.testing.assert_array_equal(first["token_ids"], second["token_ids"])
    # another tokenizer setting is another entry
    other = EncoderConfig(name="glove", max_length=16,
                          options={"vocab_size": VOCAB, "oov_buckets": 3})
    third = encoder_outputs(dataset, "val", other, kind="token_ids")
    assert third["token_ids"].max() < FIRST_WORD_ID + VOCAB + 3
    assert not np.array_equal(third["token_ids"], first["token_ids"])


def test_token_context_for_models() -> None:
    ctx = token_context(EncoderConfig(name="glove", options={"vocab_size": VOCAB}))
    assert ctx["token_dim"] == 50 and ctx["vocab_size"] == FIRST_WORD_ID + VOCAB + 1000
    assert ctx["token_vectors"].shape == (FIRST_WORD_ID + VOCAB, 50)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="cannot produce 'token_ids'"):
        token_context(EncoderConfig(name="hashing"))
