"""Label statistics of a dataset: what ``losstune data info NAME`` prints.

:func:`label_statistics` reports, from the labels only (no encoding):

* documents per split, classes present per split, labels per document (mean, max) and documents
  with no label;
* head / medium / tail classes by *training* frequency (``>= head_min``, between, ``<=
  tail_max``; Huang et al. 2021 used 35 and 8 on Reuters-21578), the same grouping that the
  ``head_*`` / ``medium_*`` / ``tail_*`` metrics use;
* the most and least frequent classes, classes with no training document, the imbalance ratio;
* for multi-label data, the rebalancing ratio ``r`` of the distribution-balanced losses over all
  positive (document, label) pairs of the training split, ``r = (1/n_label) / sum over the
  document's labels j of 1/n_j`` (``n`` = training positives per class), with its mean and
  median. Huang et al. chose the DB losses' ``mu`` (``map_gamma``) near these (Reuters: mean
  0.812, median 1.0, mu 0.9); ``suggested_mu`` is ``[0.5 m, 2 m]`` with ``m`` = (mean +
  median) / 2, a starting range for ``loss.db.mu`` / ``loss.r_focal.mu`` in a study file.
  For single-label data every ``r`` is 1, so it is not reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from losstune.objectives.data.base import SPLITS, TextDataset
from losstune.objectives.metrics import GROUPS, ClassGroups


@dataclass(frozen=True)
class SplitStats:
    docs: int
    classes_present: int
    labels_per_doc_mean: float
    labels_per_doc_max: int
    docs_without_label: int


@dataclass(frozen=True)
class ClassRow:
    name: str
    train: int
    val: int
    test: int


@dataclass(frozen=True)
class LabelStatistics:
    """Everything ``data info`` shows; :meth:`to_dict` gives plain JSON-able values."""

    name: str
    description: str
    derived: bool
    multilabel: bool
    num_classes: int
    splits: dict[str, SplitStats]
    head_min: int
    tail_max: int
    groups: dict[str, list[ClassRow]]
    top: list[ClassRow]
    bottom: list[ClassRow]
    without_train_docs: list[str]
    imbalance_ratio: float | None
    r_mean: float | None = None
    r_median: float | None = None
    r_pairs: int = 0
    suggested_mu: tuple[float, float] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rebalancing_ratios(train_multi_hot: np.ndarray) -> np.ndarray:
    """``r`` of every positive (document, label) pair of the training split (row order)."""
    y = np.asarray(train_multi_hot, dtype=np.float64)
    counts = y.sum(axis=0)
    inv = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    rho = y @ inv
    rows, cols = np.nonzero(y)
    return inv[cols] / rho[rows]


def _split_stats(dataset: TextDataset, split: str) -> SplitStats:
    hot = dataset.multi_hot(split)
    per_doc = hot.sum(axis=1)
    return SplitStats(
        docs=len(hot),
        classes_present=int((hot.sum(axis=0) > 0).sum()),
        labels_per_doc_mean=float(per_doc.mean()) if len(hot) else 0.0,
        labels_per_doc_max=int(per_doc.max()) if len(hot) else 0,
        docs_without_label=int((per_doc == 0).sum()),
    )


def label_statistics(dataset: TextDataset, *, head_min: int = 35, tail_max: int = 8,
                     top: int = 5) -> LabelStatistics:
    """Label statistics of ``dataset`` (see the module docstring)."""
    groups_def = ClassGroups(head_min=head_min, tail_max=tail_max)
    if top < 0:
        raise ValueError(f"`top >= 0` must hold, but got top={top}")
    counts = {s: dataset.class_counts(s) for s in SPLITS}
    rows = [ClassRow(name, int(counts["train"][c]), int(counts["val"][c]),
                     int(counts["test"][c])) for c, name in enumerate(dataset.class_names)]
    order = sorted(range(len(rows)), key=lambda c: (-rows[c].train, rows[c].name))
    assigned = groups_def.assign(counts["train"])
    groups = {g: [rows[c] for c in order if c in set(assigned[g].tolist())] for g in GROUPS}
    trained = counts["train"][counts["train"] > 0]
    out: dict[str, Any] = {}
    if dataset.multilabel:
        r = rebalancing_ratios(dataset.split("train").labels)
        if len(r):
            mean, median = float(r.mean()), float(np.median(r))
            m = (mean + median) / 2
            out = {"r_mean": mean, "r_median": median, "r_pairs": int(len(r)),
                   "suggested_mu": (round(0.5 * m, 4), round(2 * m, 4))}
    return LabelStatistics(
        name=dataset.name,
        description=dataset.description,
        derived=dataset.derived,
        multilabel=dataset.multilabel,
        num_classes=dataset.num_classes,
        splits={s: _split_stats(dataset, s) for s in SPLITS},
        head_min=head_min,
        tail_max=tail_max,
        groups=groups,
        top=[rows[c] for c in order[:top]],
        bottom=[rows[c] for c in order[::-1][:top]] if top else [],
        without_train_docs=[rows[c].name for c in order if rows[c].train == 0],
        imbalance_ratio=float(trained.max() / trained.min()) if len(trained) else None,
        notes=dataset.notes,
        **out,
    )
