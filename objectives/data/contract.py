"""What every dataset (built-in or plugin) must satisfy: ``losstune check-dataset`` runs this,
and so do the project's own tests on the built-in datasets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from losstune.objectives.data.base import SPLITS, TextDataset
from losstune.objectives.types import Problem

#: Largest share of a held-out split whose exact text also appears in train. Real corpora have
#: a few duplicates (R8 val 2.2%, TREC test 1.8%); much more means the splits leak.
MAX_OVERLAP = 0.05


def check_dataset(name: str, options: Mapping[str, Any] | None = None) -> list[Problem]:
    """Load dataset ``name`` with ``options`` and check its splits, labels and texts."""
    from losstune.objectives.data.registry import get_dataset_info, load_dataset

    problems: list[Problem] = []
    try:
        get_dataset_info(name)
    except KeyError as exc:
        return [Problem(name, "registry", str(exc.args[0]))]
    try:
        dataset = load_dataset(name, options or {})
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [Problem(name, "load", f"loading failed: {type(exc).__name__}: {exc}")]
    problems += check_dataset_object(dataset)
    return problems


def check_dataset_object(dataset: TextDataset) -> list[Problem]:
    """The checks on a loaded :class:`TextDataset`."""
    name = dataset.name
    problems: list[Problem] = []

    def add(step: str, message: str) -> None:
        problems.append(Problem(name, step, message))

    names = list(dataset.class_names)
    if not names:
        add("classes", "no class names")
        return problems
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        add("classes", f"class names repeat: {dupes}")
    if any(not isinstance(n, str) or not n.strip() for n in names):
        add("classes", "every class needs a non-empty name")
    c = len(names)
    train_texts = set(dataset.train.texts)
    seen = np.zeros(c, dtype=bool)
    for split in SPLITS:
        part = dataset.split(split)
        if len(part) == 0:
            add("splits", f"split {split!r} is empty")
            continue
        empty = sum(1 for t in part.texts if not isinstance(t, str) or not t.strip())
        if empty:
            add("texts", f"{empty} document(s) of split {split!r} have empty text")
        labels = np.asarray(part.labels)
        if dataset.multilabel:
            if labels.ndim != 2 or labels.shape[1] != c:
                add("labels", f"split {split!r}: multi-label labels must be (n, {c}), got "
                              f"{labels.shape}")
                continue
            if not np.isin(labels, (0, 1)).all():
                add("labels", f"split {split!r}: multi-hot labels must be 0 or 1")
            seen |= labels.sum(axis=0) > 0
        else:
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                add("labels", f"split {split!r}: single-label labels must be an integer vector, "
                              f"got shape {labels.shape} dtype {labels.dtype}")
                continue
            bad = labels[(labels < 0) | (labels >= c)]
            if len(bad):
                add("labels", f"split {split!r}: label id(s) {sorted(set(bad.tolist()))[:5]} "
                              f"have no class name (there are {c} classes)")
                continue
            seen[np.unique(labels)] = True
        if split != "train":
            overlap = sum(1 for t in part.texts if t in train_texts)
            if overlap > MAX_OVERLAP * len(part):
                add("splits", f"{overlap} of {len(part)} documents of split {split!r} also appear "
                              f"in train (more than {MAX_OVERLAP:.0%}): the splits are not "
                              "disjoint")
    unused = [names[i] for i in np.flatnonzero(~seen)]
    if unused:
        add("classes", f"class(es) {unused[:5]} never occur in any split")
    if dataset.num_classes and len(dataset.train) and dataset.class_counts("train").sum() == 0:
        add("labels", "no training document has a label")
    elif len(dataset.train):
        from losstune.objectives.data.checks import class_problems

        for message in class_problems(dataset):
            add("classes", message)
    return problems
