"""A tiny generated corpus for tests that need exact control over the data.

Each class owns a few keywords; a document is a handful of shared filler words plus keywords of
its class(es), so any bag-of-words encoder can separate the classes. Deterministic given a seed.
"""

from __future__ import annotations

import numpy as np

from losstune.objectives.data.base import Split

_FILLER = (
    "the a of report said market company share year new group price rate plan deal quarter "
    "week board talks government bank trade month official"
).split()


def make_split(
    *, n_docs: int, num_classes: int, multilabel: bool, seed: int, words_per_doc: int = 12
) -> Split:
    rng = np.random.default_rng(seed)
    vocab = [[f"kw{c}x{j}" for j in range(4)] for c in range(num_classes)]
    # Long-tailed class prior: class c has weight 1/(c+1).
    prior = 1.0 / np.arange(1, num_classes + 1)
    prior /= prior.sum()
    texts: list[str] = []
    if multilabel:
        labels = np.zeros((n_docs, num_classes), dtype=np.uint8)
    else:
        labels = np.zeros(n_docs, dtype=np.int64)
    for i in range(n_docs):
        first = int(rng.choice(num_classes, p=prior))
        classes = [first]
        if multilabel and rng.random() < 0.4:
            classes.append(int(rng.choice(num_classes, p=prior)))
        words = list(rng.choice(_FILLER, size=words_per_doc))
        for c in set(classes):
            words += list(rng.choice(vocab[c], size=3))
        rng.shuffle(words)
        texts.append(" ".join(words))
        if multilabel:
            labels[i, classes] = 1
        else:
            labels[i] = first
    return Split(tuple(texts), labels)
