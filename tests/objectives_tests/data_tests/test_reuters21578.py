"""The Reuters-21578 SGML ModApte loader, on a fixture written for these tests.

fixtures/reuters21578/ holds two small files in the corpus's SGML layout (invented texts):
reut2-000.sgm has 10 documents (7 ModApte train documents with topics, one TRAIN document with
an empty topic list, one TOPICS="NO" and one NOT-USED), reut2-001.sgm has 6 (5 ModApte test
documents, one TOPICS="BYPASS").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from losstune.objectives.data import load_dataset
from losstune.objectives.data.registry import DatasetError
from losstune.objectives.data.reuters21578 import modapte_docs, parse_sgml

FIXTURE = Path(__file__).parent / "fixtures" / "reuters21578"
OPTS = {"path": str(FIXTURE), "val_fraction": 0.3}


def _labels(ds, split: str) -> list[set[str]]:  # noqa: ANN001
    return [{ds.class_names[j] for j in np.flatnonzero(row)} for row in ds.split(split).labels]


def test_parse_sgml_reads_attributes_topics_and_text() -> None:
    docs = parse_sgml((FIXTURE / "reut2-000.sgm").read_text(encoding="latin-1"))
    assert [d.newid for d in docs] == list(range(1, 11))
    first = docs[0]
    assert (first.lewissplit, first.topics_attr, first.topics) == ("TRAIN", "YES", ("cocoa",))
    assert first.text.startswith("COCOA HARVEST REVIEW\nFixture text written")
    assert "cocoa harvest & prices <steady>." in first.text  # entities decoded
    assert "SALVADOR" not in first.text  # the dateline is not part of the text
    assert "\x03" not in first.text and "&#3;" not in first.text
    assert docs[1].topics == ("grain", "wheat")
    assert docs[3].topics == ()
    assert docs[6].text == "ACME INC QTLY DIV 10 CTS"  # TYPE="BRIEF": title only


def test_modapte_split_drops_unused_and_topicless_documents() -> None:
    docs = modapte_docs(sorted(FIXTURE.glob("reut2-*.sgm")))
    assert [d.newid for d in docs["train"]] == [1, 2, 3, 7, 8, 9, 10]
    assert [d.newid for d in docs["test"]] == [11, 12, 13, 14, 15]
    assert docs["test"][-1].text == "FIXTURE UNPROC TEXT ABOUT AN ACQUISITION"


def test_loader_gives_multilabel_topics_with_a_held_out_validation_split() -> None:
    ds = load_dataset("reuters21578", OPTS)
    assert ds.multilabel and ds.class_names == (
        "acq", "cocoa", "corn", "earn", "grain", "testonly", "trainonly", "wheat")
    assert (len(ds.train) + len(ds.val), len(ds.test)) == (7, 5)
    assert len(ds.val) == 1
    assert _labels(ds, "test") == [{"earn"}, {"corn", "grain", "wheat"}, {"cocoa", "testonly"},
                                   {"testonly"}, {"acq"}]
    train_val = _labels(ds, "train") + _labels(ds, "val")
    assert sorted(map(sorted, train_val)) == sorted(map(sorted, [
        {"cocoa"}, {"grain", "wheat"}, {"corn", "grain"}, {"earn"}, {"acq", "earn"}, {"earn"},
        {"trainonly"}]))
    # the only label that can be held out without emptying a class is a second "earn" doc
    assert _labels(ds, "val") == [{"earn"}]


def test_modapte90_keeps_topics_with_train_and_test_documents() -> None:
    ds = load_dataset("reuters21578", {**OPTS, "modapte90": True})
    assert ds.class_names == ("acq", "cocoa", "corn", "earn", "grain", "wheat")
    assert len(ds.train) + len(ds.val) == 6 and len(ds.test) == 4  # NEWID 10 and 14 dropped
    assert _labels(ds, "test")[2] == {"cocoa"}
    assert any("modapte90" in note for note in ds.notes)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset("reuters21578", {"path": str(tmp_path / "absent")})
    with pytest.raises(DatasetError, match=r"no files match 'reut2-\*.sgm'"):
        load_dataset("reuters21578", {"path": str(tmp_path)})
    with pytest.raises(DatasetError, match="needs data.options.path"):
        load_dataset("reuters21578", {})
    with pytest.raises(DatasetError, match="modapte90 must be true or false"):
        load_dataset("reuters21578", {**OPTS, "modapte90": "yes"})
    (tmp_path / "reut2-000.sgm").write_text("<REUTERS NEWID=\"1\"></REUTERS>", encoding="latin-1")
    with pytest.raises(DatasetError, match="found 0 ModApte training and 0 test"):
        load_dataset("reuters21578", {"path": str(tmp_path)})
