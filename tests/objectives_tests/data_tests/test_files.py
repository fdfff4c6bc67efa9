"""The ``files`` dataset: users' CSV / JSONL / Parquet files, splits, labels and errors."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from losstune.objectives.data import load_dataset
from losstune.objectives.data.files import DataFileError
from losstune.objectives.data.registry import DatasetError

TOPICS = ("sports", "politics", "science")


def _rows(n: int = 60) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        topic = TOPICS[i % 3]
        tags = [topic] + (["economy"] if i % 4 == 0 else [])
        rows.append({"id": i, "body": f"document {i} about {topic}", "topic": topic,
                     "tags": tags, "part": ["train", "train", "train", "dev", "test"][i % 5]})
    return rows


def _csv(path: Path, rows: list[dict[str, Any]], *, delimiter: str = ",",
         encode: Any = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (encode(v) if encode and isinstance(v, list) else v)
                             for k, v in row.items()})
    return path


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_csv_single_label_with_an_automatic_stratified_split(tmp_path: Path) -> None:
    path = _csv(tmp_path / "news.csv", _rows())
    opts = {"path": str(path), "text_column": "body", "label_column": "topic"}
    ds = load_dataset("files", opts)
    assert ds.class_names == ("politics", "science", "sports")  # sorted
    assert not ds.multilabel
    # 20% test (12), then 10% of the remaining 48 for validation (5)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (43, 5, 12)
    assert ds.class_counts("test").tolist() == [4, 4, 4]
    all_texts = ds.train.texts + ds.val.texts + ds.test.texts
    assert sorted(all_texts) == sorted(r["body"] for r in _rows())
    for split in ("train", "val", "test"):
        part = ds.split(split)
        for text, label in zip(part.texts, part.labels, strict=True):
            assert text.endswith(ds.class_names[label])
    again = load_dataset("files", {**opts, "split_seed": 20211125})
    assert again.test.texts == ds.test.texts, "the default split seed is the registry's"
    other = load_dataset("files", {**opts, "split_seed": 1})
    assert other.test.texts != ds.test.texts


def test_csv_multilabel_delimited_and_given_class_order(tmp_path: Path) -> None:
    path = _csv(tmp_path / "tags.tsv", _rows(), delimiter="\t", encode="|".join)
    ds = load_dataset("files", {
        "path": str(path), "text_column": "body", "label_column": "tags",
        "label_delimiter": "|", "classes": ["sports", "politics", "science", "economy", "art"],
        "test_fraction": 0.25, "val_fraction": 0.2})
    assert ds.multilabel and ds.class_names == ("sports", "politics", "science", "economy",
                                                "art")
    assert ds.train.labels.dtype == np.uint8
    total = sum(ds.class_counts(s) for s in ("train", "val", "test"))
    assert total.tolist() == [20, 20, 20, 15, 0]
    found = [ds.split(s).labels[ds.split(s).texts.index("document 4 about politics")]
             for s in ("train", "val", "test") if "document 4 about politics" in ds.split(s).texts]
    assert [f.tolist() for f in found] == [[0, 1, 0, 1, 0]]  # politics + economy


def test_csv_json_list_cells_are_multilabel(tmp_path: Path) -> None:
    path = _csv(tmp_path / "tags.csv", _rows(), encode=json.dumps)
    ds = load_dataset("files", {"path": str(path), "text_column": "body",
                                "label_column": "tags"})
    assert ds.multilabel and ds.class_names == ("economy", "politics", "science", "sports")


def test_jsonl_lists_with_given_splits_per_file(tmp_path: Path) -> None:
    rows = _rows()
    train = _jsonl(tmp_path / "train.jsonl", rows[:40])
    val = _jsonl(tmp_path / "val.jsonl", rows[40:50])
    test = _jsonl(tmp_path / "test.jsonl", rows[50:])
    ds = load_dataset("files", {"train": str(train), "val": str(val), "test": str(test),
                                "text_column": "body", "label_column": "tags"})
    assert ds.multilabel
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 10, 10)
    assert ds.train.texts == tuple(r["body"] for r in rows[:40]), "file order is kept"
    assert ds.class_names == ("economy", "politics", "science", "sports")
    assert ds.test.labels[0].tolist() == [0, 0, 1, 0]  # doc 50: science
    assert ds.test.labels[2].tolist() == [1, 1, 0, 0]  # doc 52: politics, economy


def test_jsonl_train_and_test_only_holds_out_validation(tmp_path: Path) -> None:
    rows = _rows()
    ds = load_dataset("files", {"train": str(_jsonl(tmp_path / "a.jsonl", rows[:50])),
                                "test": str(_jsonl(tmp_path / "b.jsonl", rows[50:])),
                                "text_column": "body", "label_column": "topic"})
    assert (len(ds.train), len(ds.val), len(ds.test)) == (45, 5, 10)
    assert not set(ds.val.texts) & set(ds.train.texts)


def test_parquet_with_a_split_column_and_list_labels(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "data.parquet", _rows())
    ds = load_dataset("files", {"path": str(path), "text_column": "body",
                                "label_column": "tags", "split_column": "part"})
    assert ds.multilabel
    assert (len(ds.train), len(ds.val), len(ds.test)) == (36, 12, 12)  # train/dev/test rows
    assert ds.val.texts[0] == "document 3 about sports"
    single = load_dataset("files", {"path": str(path), "text_column": "body",
                                    "label_column": "id", "split_column": "part"})
    assert not single.multilabel and len(single.class_names) == 60  # integer labels


def test_parquet_integer_labels_and_limit(tmp_path: Path) -> None:
    rows = [{"text": f"t {i}", "label": i % 2} for i in range(80)]
    ds = load_dataset("files", {"path": str(_parquet(tmp_path / "x.parquet", rows)),
                                "limit": {"train": 10}})
    assert ds.class_names == ("0", "1") and len(ds.train) == 10
    assert ds.class_counts("train").tolist() == [5, 5]


# ---------------------------------------------------------------------- errors
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"data.options.path: no such file .*nope.csv"):
        load_dataset("files", {"path": str(tmp_path / "nope.csv")})


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path / "a.csv", _rows())
    with pytest.raises(DataFileError, match=r"no column\(s\) \['text'\]; the columns are "
                                            r"\['id', 'body', 'topic', 'tags', 'part'\]"):
        load_dataset("files", {"path": str(path), "label_column": "topic"})
    jl = _jsonl(tmp_path / "a.jsonl", [{"text": "x", "label": "a"}, {"text": "y"}])
    with pytest.raises(DataFileError, match=r"line 2 has no key\(s\) \['label'\]"):
        load_dataset("files", {"path": str(jl)})


def test_empty_text(tmp_path: Path) -> None:
    rows = _rows()
    rows[7]["body"] = "   "
    path = _csv(tmp_path / "a.csv", rows)
    with pytest.raises(DataFileError, match=r"row 8: the text column 'body' is empty"):
        load_dataset("files", {"path": str(path), "text_column": "body",
                               "label_column": "topic"})


@pytest.mark.parametrize(("value", "extra"), [
    ("", {}),  # single-label: an empty label
    ("[sports,", {}),  # multi-label JSON list that does not parse
])
def test_unparsable_label(tmp_path: Path, value: str, extra: dict[str, Any]) -> None:
    rows = _rows()
    rows[3]["tags"] = json.dumps(["a"])
    rows[5]["tags"] = value
    if value == "":
        rows = [{k: v for k, v in r.items() if k != "tags"} for r in rows]
        rows[5]["topic"] = ""
        column = "topic"
    else:
        column = "tags"
    path = _csv(tmp_path / "a.csv", rows, encode=json.dumps)
    with pytest.raises(DataFileError, match=re.escape(
            f"row 6: cannot read {value!r} in label column {column!r}")):
        load_dataset("files", {"path": str(path), "text_column": "body",
                               "label_column": column, **extra})


def test_unparsable_label_in_jsonl(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "a.jsonl", [{"text": "x", "label": {"a": 1}}])
    with pytest.raises(DataFileError, match=r"line 1: cannot read \{'a': 1\}"):
        load_dataset("files", {"path": str(path)})


def test_split_with_no_rows(tmp_path: Path) -> None:
    rows = [r for r in _rows() if r["part"] != "test"]
    path = _csv(tmp_path / "a.csv", rows)
    with pytest.raises(DataFileError, match="the test split has no rows"):
        load_dataset("files", {"path": str(path), "text_column": "body",
                               "label_column": "topic", "split_column": "part"})
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="empty.jsonl: the test split has no rows"):
        load_dataset("files", {"train": str(_jsonl(tmp_path / "t.jsonl", _rows())),
                               "test": str(empty), "text_column": "body",
                               "label_column": "topic"})


def test_unknown_split_value_and_option_conflicts(tmp_path: Path) -> None:
    rows = _rows()
    rows[2]["part"] = "holdout"
    path = _csv(tmp_path / "a.csv", rows)
    with pytest.raises(DataFileError, match=r"row 3: split column 'part' has 'holdout'"):
        load_dataset("files", {"path": str(path), "text_column": "body",
                               "label_column": "topic", "split_column": "part"})
    with pytest.raises(DataFileError, match="either `path`"):
        load_dataset("files", {"path": str(path), "train": str(path)})
    with pytest.raises(DataFileError, match="needs data.options.path"):
        load_dataset("files", {})
    with pytest.raises(DataFileError, match="multilabel is false"):
        load_dataset("files", {"path": str(path), "multilabel": False,
                               "label_delimiter": "|"})
    with pytest.raises(DataFileError, match=r"not in data.options.classes"):
        load_dataset("files", {"path": str(path), "text_column": "body",
                               "label_column": "topic", "classes": ["sports"]})
    with pytest.raises(DataFileError, match="cannot tell the format"):
        load_dataset("files", {"path": str(_csv(tmp_path / "a.dat", rows))})


def test_unknown_option_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"does not take option\(s\) \['text_col'\]; valid "
                                           r"options: \[.*'label_column'.*'text_column'"):
        load_dataset("files", {"path": "x.csv", "text_col": "body"})


def test_study_file_rejects_a_missing_file_before_any_trial(tmp_path: Path) -> None:
    from losstune.studies import api
    from losstune.studies.spec import StudyFileError
    from tests.conftest import tiny_study

    study = tiny_study(data={"name": "files", "options": {"path": str(tmp_path / "no.csv")}})
    with pytest.raises(StudyFileError, match=r"data.options.path: no such file"):
        api.study_from_dict(study)
    path = _csv(tmp_path / "a.csv", _rows())
    study = tiny_study(data={"name": "files", "options": {"path": str(path)}})
    with pytest.raises(StudyFileError, match=r"no column\(s\) \['text', 'label'\]"):
        api.study_from_dict(study)
