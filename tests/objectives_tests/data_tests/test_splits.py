"""Stratified hold-outs and subsets, single- and multi-label."""

from __future__ import annotations

import numpy as np

from losstune.objectives.data.base import Split
from losstune.objectives.data.splits import (
    split_off,
    split_off_indices,
    stratified_indices,
    subset,
    train_val_test,
)


def _split(labels: np.ndarray) -> Split:
    return Split(tuple(f"doc {i}" for i in range(len(labels))), labels)


def test_hold_out_never_takes_the_last_document_of_a_class() -> None:
    labels = np.array([0] * 20 + [1] * 2 + [2])  # class 2 has a single document
    rest, held = split_off_indices(labels, 0.2, seed=0)
    assert len(held) == 5 and len(rest) == 18  # round(23 * 0.2)
    assert 22 in rest, "a singleton class stays in training"
    assert (labels[held] == 1).sum() == 1 and (labels[rest] == 1).sum() == 1
    # a plain subset (limit) may take a class's only document: it keeps classes present
    assert 22 in stratified_indices(labels, 4, seed=0)


def test_hold_out_is_disjoint_complete_sorted_and_seeded() -> None:
    labels = np.random.default_rng(3).integers(0, 5, size=200)
    rest, held = split_off_indices(labels, 0.25, seed=7)
    assert len(held) == 50
    assert not set(rest) & set(held) and len(rest) + len(held) == 200
    assert (np.diff(held) > 0).all()
    again_rest, again_held = split_off_indices(labels, 0.25, seed=7)
    assert np.array_equal(held, again_held) and np.array_equal(rest, again_rest)
    other = split_off_indices(labels, 0.25, seed=8)[1]
    assert not np.array_equal(held, other)
    for c in range(5):  # proportions kept to within one document per class
        share = (labels[held] == c).sum() / (labels == c).sum()
        assert abs(share - 0.25) <= 1 / (labels == c).sum() + 1e-9


def _long_tailed_multilabel(n: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    prior = 1 / np.arange(1, c + 1) ** 1.3
    prior /= prior.sum()
    y = np.zeros((n, c), dtype=np.uint8)
    for i in range(n):
        k = 1 + rng.poisson(0.25)
        y[i, rng.choice(c, size=k, replace=False, p=prior)] = 1
    return y


def test_multilabel_hold_out_by_rarest_label_keeps_label_shares() -> None:
    y = _long_tailed_multilabel(3000, 60, seed=0)
    counts = y.sum(axis=0)
    rest, held = split_off_indices(y, 0.1, seed=0)
    assert len(held) == 300
    assert (y[rest].sum(axis=0) >= 1).all(), "every label keeps a training document"
    assert ((y[held].sum(axis=0) >= 1) | (counts < 2)).all(), "labels with 2+ docs validate"
    share = y[held].sum(axis=0) / counts
    frequent = counts >= 30
    # a random 10% hold-out deviates ~0.03 on average here; stratification about 0.01
    assert np.abs(share[frequent] - 0.1).mean() < 0.015
    assert np.abs(share[frequent] - 0.1).max() < 0.06


def test_multilabel_hold_out_gives_back_a_label_it_would_empty() -> None:
    # Label 2 occurs twice, each time with a rarer label whose stratum gives one document to
    # the hold-out: rarest-label strata alone could hold out both documents of label 2.
    y = np.array([
        [1, 0, 1, 0], [1, 0, 0, 0],  # stratum of label 0 (count 2): one held out
        [0, 1, 1, 0], [0, 1, 0, 0],  # stratum of label 1 (count 2): one held out
        [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1],
    ], dtype=np.uint8)
    for seed in range(40):
        rest, held = split_off_indices(y, 0.5, seed)
        assert (y[rest].sum(axis=0) >= 1).all(), seed
        assert not set(rest) & set(held) and len(rest) + len(held) == len(y)


def test_docs_without_labels_form_their_own_stratum() -> None:
    y = np.zeros((40, 3), dtype=np.uint8)
    y[:30, 0] = 1
    y[30:35, 1] = 1  # 35..39 have no label
    held = split_off_indices(y, 0.2, seed=1)[1]
    assert (y[held].sum(axis=1) == 0).sum() == 1


def test_subset_and_three_way_split() -> None:
    split = _split(np.array([0] * 30 + [1] * 10))
    small = subset(split, 8, seed=0)
    assert len(small) == 8 and set(small.labels.tolist()) == {0, 1}
    assert subset(split, None, seed=0) is split
    train, val, test = train_val_test(split, test_fraction=0.25, val_fraction=0.2, seed=5)
    assert (len(train), len(val), len(test)) == (24, 6, 10)
    texts = [set(s.texts) for s in (train, val, test)]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    rest, held = split_off(split, 0.25, seed=5)
    assert held.texts == test.texts
