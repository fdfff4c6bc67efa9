"""Deterministic stratified splits and subsets.

Split seeds are fixed per dataset and never follow a trial's training seed, so every trial and
every replay sees the same documents in the same splits.
"""

from __future__ import annotations

import numpy as np

from objectives.data.base import Split


def _strata(labels: np.ndarray) -> np.ndarray:
    """One stratum id per document: the class, or for multi-hot rows the rarest positive class."""
    if labels.ndim == 1:
        return labels
    counts = labels.sum(axis=0)
    rarity = np.where(labels > 0, counts[None, :], np.iinfo(np.int64).max)
    strata = np.argmin(rarity, axis=1)
    strata[labels.sum(axis=1) == 0] = -1
    return strata


def stratified_indices(labels: np.ndarray, n_take: int, seed: int) -> np.ndarray:
    """Pick ``n_take`` row indices, class proportions kept, at least one per class when possible.

    The result is sorted, so the order of documents inside a split never depends on the seed.
    """
    n = len(labels)
    if n_take >= n:
        return np.arange(n)
    if n_take <= 0:
        return np.arange(0)
    rng = np.random.default_rng(seed)
    strata = _strata(labels)
    classes, inverse = np.unique(strata, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(classes))]
    for m in members:
        rng.shuffle(m)
    quota = np.array([len(m) for m in members], dtype=np.float64) * n_take / n
    take = np.minimum(np.maximum(np.floor(quota), 1), [len(m) for m in members]).astype(int)
    # Largest remainders first, then trim the largest strata if the floor of 1 overshot.
    while take.sum() < n_take:
        room = np.array([len(m) for m in members]) - take
        order = np.argsort(-(quota - take) + (room <= 0) * 1e9, kind="stable")
        take[order[0]] += 1
    while take.sum() > n_take:
        take[np.argmax(take)] -= 1
    chosen = np.concatenate([m[:t] for m, t in zip(members, take, strict=True)])
    return np.sort(chosen)


def split_off(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split ``split`` into (rest, held_out) with ``fraction`` of the documents held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`0 < fraction < 1` must hold, but got fraction={fraction}.")
    held = stratified_indices(split.labels, int(round(len(split) * fraction)), seed)
    mask = np.ones(len(split), dtype=bool)
    mask[held] = False
    return split.take(np.flatnonzero(mask)), split.take(held)


def subset(split: Split, n_max: int | None, seed: int) -> Split:
    """A stratified subset of at most ``n_max`` documents (the whole split when ``None``)."""
    if n_max is None or n_max >= len(split):
        return split
    return split.take(stratified_indices(split.labels, n_max, seed))
