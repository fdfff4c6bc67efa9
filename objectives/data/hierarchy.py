"""Derived multi-label tasks from hierarchical class names.

20 Newsgroups names are dotted paths, so each newsgroup implies its ancestors: a post of
``comp.sys.mac.hardware`` carries ``comp``, ``comp.sys``, ``comp.sys.mac`` and
``comp.sys.mac.hardware``. This is a *derived* task (the labels are real, the multi-label
structure is ours), not a benchmark from the literature. Ancestors with a single child are kept
(``alt`` always co-occurs with ``alt.atheism``; ``comp.sys.ibm`` and ``comp.sys.ibm.pc`` with
``comp.sys.ibm.pc.hardware``): every dotted prefix is a label, as the name says.

The documents and splits are exactly those of ``20ng``: the validation split is held out from
the official training split by *newsgroup* with ``20ng``'s fixed seed, before the labels are
expanded.
"""

from __future__ import annotations

import numpy as np

from losstune.objectives.data.base import Split
from losstune.objectives.data.registry import DEFAULT_SPLIT_SEED, RawDataset
from losstune.objectives.data.splits import split_off


def prefix_closure(class_names: tuple[str, ...], sep: str = ".") -> tuple[str, ...]:
    """Every dotted prefix of every name, sorted (``a.b.c`` gives ``a``, ``a.b``, ``a.b.c``)."""
    out: set[str] = set()
    for name in class_names:
        parts = name.split(sep)
        out.update(sep.join(parts[: i + 1]) for i in range(len(parts)))
    return tuple(sorted(out))


def ancestor_matrix(class_names: tuple[str, ...], nodes: tuple[str, ...],
                    sep: str = ".") -> np.ndarray:
    """``(len(class_names), len(nodes))`` uint8: row c marks class c and all its ancestors."""
    index = {n: i for i, n in enumerate(nodes)}
    out = np.zeros((len(class_names), len(nodes)), dtype=np.uint8)
    for c, name in enumerate(class_names):
        parts = name.split(sep)
        for i in range(len(parts)):
            out[c, index[sep.join(parts[: i + 1])]] = 1
    return out


def expand(split: Split, matrix: np.ndarray) -> Split:
    """Single-label ``split`` -> multi-hot over the hierarchy's nodes."""
    return Split(split.texts, matrix[split.labels])


def load_20ng_hierarchical(val_fraction: float = 0.1) -> RawDataset:
    from losstune.objectives.data.orange import load_orange_pair

    leaves, train, test = load_orange_pair("20newsgroups")
    train, val = split_off(train, val_fraction, DEFAULT_SPLIT_SEED)
    nodes = prefix_closure(leaves)
    matrix = ancestor_matrix(leaves, nodes)
    return RawDataset(
        class_names=nodes,
        multilabel=True,
        train=expand(train, matrix),
        val=expand(val, matrix),
        test=expand(test, matrix),
        notes=(f"derived: {len(leaves)} newsgroups expanded to {len(nodes)} hierarchy nodes "
               "(every dotted prefix); same documents per split as 20ng",),
    )
