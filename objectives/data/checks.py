"""Checks a loaded dataset must pass before a study trains on it.

A study file is refused when its data cannot train a classifier, before the study is created:
``losstune run``, ``losstune space`` and ``losstune check-dataset`` report the same problems.
"""

from __future__ import annotations

import numpy as np

from losstune.objectives.data.base import TextDataset
from losstune.objectives.errors import short_repr


def class_problems(dataset: TextDataset) -> list[str]:
    """Why ``dataset`` cannot train a classifier (empty when it can).

    A classifier needs at least two classes, and its training split needs documents of at
    least two of them: with one class every prediction is right (accuracy 1.0) and no score
    says anything.
    """
    names = list(dataset.class_names)
    if len(names) < 2:
        return [f"dataset {dataset.name!r} has {len(names)} class(es) {short_repr(names)}; a "
                "classifier needs at least two classes (check the label column or "
                "data.options.classes)"]
    counts = dataset.class_counts("train")
    present = [names[i] for i in np.flatnonzero(counts > 0)]
    if len(present) < 2:
        return [f"the train split of dataset {dataset.name!r} has documents of "
                f"{len(present)} class(es) {short_repr(present)} out of {len(names)}; training "
                "needs documents of at least two classes (give more rows, or raise "
                "data.options.limit.train)"]
    return []


__all__ = ["class_problems"]
