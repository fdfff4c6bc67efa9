"""A torch-free bag-of-words encoder: feature hashing plus a fixed random projection.

No weight files and no downloads. It is fast enough to encode thousands of documents per second,
which makes it the encoder of the tests that need exact control and of quick sanity studies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from losstune.objectives.encoders.base import TextEncoder


class HashingEncoder(TextEncoder):
    """Hashed unigram + bigram counts (2**18 buckets), tf-idf-free, projected to ``dim`` dims.

    Token states (for heads that read ``token_states``): each whitespace token of the lowercased
    text becomes a fixed pseudo-random unit vector seeded by a CRC32 of the token.
    """

    name = "hashing"
    provides = frozenset({"embeddings", "token_states"})

    def __init__(
        self, *, max_length: int = 128, device: str = "cpu", dim: int = 256, **options: Any
    ) -> None:
        super().__init__(max_length=max_length, device=device, **options)
        if dim < 2:
            raise ValueError(f"`dim >= 2` must hold, but got dim={dim}.")
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def identity(self) -> dict[str, Any]:
        return {"encoder": self.name, "dim": self._dim, "max_length": self.max_length, "v": 1}

    def count_truncated(self, texts: Sequence[str]) -> int:
        return sum(1 for t in texts if len(t.split()) > self.max_length)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer
        from sklearn.random_projection import SparseRandomProjection

        vectorizer = HashingVectorizer(
            n_features=2**18, ngram_range=(1, 2), alternate_sign=False, norm="l2"
        )
        counts = vectorizer.transform([" ".join(t.split()[: self.max_length]) for t in texts])
        projection = SparseRandomProjection(n_components=self._dim, random_state=0)
        projection.fit(counts[:1])
        dense = projection.transform(counts)
        dense = np.asarray(dense.todense() if hasattr(dense, "todense") else dense)
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        return (dense / np.maximum(norms, 1e-12)).astype(np.float32)

    def encode_tokens(
        self, texts: Sequence[str], *, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        import zlib

        states = np.zeros((len(texts), self.max_length, self._dim), dtype=np.float16)
        mask = np.zeros((len(texts), self.max_length), dtype=np.uint8)
        vectors: dict[str, np.ndarray] = {}
        for i, text in enumerate(texts):
            for t, token in enumerate(text.lower().split()[: self.max_length]):
                if token not in vectors:
                    rng = np.random.default_rng(zlib.crc32(token.encode()))
                    v = rng.standard_normal(self._dim)
                    vectors[token] = v / np.linalg.norm(v)
                states[i, t] = vectors[token]
                mask[i, t] = 1
        return states, mask
