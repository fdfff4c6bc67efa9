"""Deterministic stratified splits and subsets.

Split seeds are fixed per dataset and never follow a trial's training seed, so every trial and
every replay sees the same documents in the same splits.
"""

from __future__ import annotations

import numpy as np

from losstune.objectives.data.base import Split


def _strata(labels: np.ndarray) -> np.ndarray:
    """One stratum id per document: the class, or for multi-hot rows the rarest positive class."""
    if labels.ndim == 1:
        return labels
    counts = labels.sum(axis=0)
    rarity = np.where(labels > 0, counts[None, :], np.iinfo(np.int64).max)
    strata = np.argmin(rarity, axis=1)
    strata[labels.sum(axis=1) == 0] = -1
    return strata


def stratified_indices(
    labels: np.ndarray, n_take: int, seed: int, *, leave_one: bool = False
) -> np.ndarray:
    """Pick ``n_take`` row indices, class proportions kept, at least one per class when possible.

    With ``leave_one`` (held-out splits), at least one document of every stratum stays unpicked:
    a class with a single document never leaves the training split, and a class with two gives
    one to each side (so fewer than ``n_take`` may come back on tiny inputs).

    The result is sorted, so the order of documents inside a split never depends on the seed.
    """
    n = len(labels)
    if n_take >= n and not leave_one:
        return np.arange(n)
    if n_take <= 0:
        return np.arange(0)
    rng = np.random.default_rng(seed)
    strata = _strata(labels)
    classes, inverse = np.unique(strata, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(classes))]
    for m in members:
        rng.shuffle(m)
    sizes = np.array([len(m) for m in members])
    cap = sizes - 1 if leave_one else sizes
    n_take = min(n_take, int(cap.sum()))  # leave_one: never empty a stratum
    quota = sizes.astype(np.float64) * n_take / n
    take = np.minimum(np.maximum(np.floor(quota), 1), cap).astype(int)
    # Largest remainders first, then trim the largest strata if the floor of 1 overshot.
    while take.sum() < n_take:
        room = cap - take
        order = np.argsort(-(quota - take) + (room <= 0) * 1e9, kind="stable")
        take[order[0]] += 1
    while take.sum() > n_take:
        take[np.argmax(take)] -= 1
    chosen = np.concatenate([m[:t] for m, t in zip(members, take, strict=True)])
    return np.sort(chosen)


def split_off_indices(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices (rest, held_out) of a stratified hold-out of ``fraction``.

    Every stratum keeps at least one document in ``rest`` (see :func:`stratified_indices`).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`0 < fraction < 1` must hold, but got fraction={fraction}.")
    held = stratified_indices(labels, int(round(len(labels) * fraction)), seed, leave_one=True)
    mask = np.ones(len(labels), dtype=bool)
    mask[held] = False
    if labels.ndim == 2 and len(held):
        # Strata use each document's rarest label only, so a label can still end up with all
        # its documents held out; give one of them back (rare; keeps "every class trains").
        for c in np.flatnonzero((labels[mask].sum(axis=0) == 0) & (labels.sum(axis=0) > 0)):
            if not labels[mask, c].any():
                mask[np.flatnonzero(~mask & (labels[:, c] > 0))[0]] = True
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def split_off(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split ``split`` into (rest, held_out) with ``fraction`` of the documents held out."""
    rest, held = split_off_indices(split.labels, fraction, seed)
    return split.take(rest), split.take(held)


def subset(split: Split, n_max: int | None, seed: int) -> Split:
    """A stratified subset of at most ``n_max`` documents (the whole split when ``None``)."""
    if n_max is None or n_max >= len(split):
        return split
    return split.take(stratified_indices(split.labels, n_max, seed))


def train_val_test(
    split: Split, *, test_fraction: float, val_fraction: float, seed: int
) -> tuple[Split, Split, Split]:
    """A fixed stratified three-way split for sources without official splits.

    ``test_fraction`` of all documents go to test (seed ``seed``), then ``val_fraction`` of the
    rest to validation (seed ``seed + 1``); every class keeps at least one training document.
    """
    rest, test = split_off(split, test_fraction, seed)
    train, val = split_off(rest, val_fraction, seed + 1)
    return train, val, test
