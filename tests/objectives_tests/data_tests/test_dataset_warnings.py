"""`losstune run` on user data says what it would otherwise hide: splits that share documents
(with the count) and texts that ``max_length`` cuts (per dataset split, once)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from losstune.objectives.config import EncoderConfig
from losstune.objectives.data import load_dataset
from losstune.objectives.data.registry import shared_documents
from losstune.objectives.encoders.hashing import HashingEncoder
from losstune.objectives.features import encoder_outputs
from losstune.studies.cli import cli
from tests.conftest import tiny_study

TOPICS = ("sports", "politics", "science")


def _write(path: Path, rows: list[tuple[str, str]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return str(path)


def _doc(i: int) -> tuple[str, str]:
    topic = TOPICS[i % 3]
    return f"document number {i} talks about {topic} at some length", topic


def overlapping_files(tmp_path: Path) -> dict[str, str]:
    train = [_doc(i) for i in range(60)]
    val = [_doc(i) for i in range(60, 72)] + train[:3]     # 3 shared with train
    test = [_doc(i) for i in range(72, 84)] + train[3:5]   # 2 shared with train
    return {"train": _write(tmp_path / "train.csv", train),
            "val": _write(tmp_path / "val.csv", val),
            "test": _write(tmp_path / "test.csv", test)}


def test_run_warns_about_shared_documents_and_cut_texts(
        tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSSTUNE_CACHE", str(tmp_path / "cache"))  # texts get encoded here
    study = tiny_study(n_trials=1, data={"name": "files", "options": overlapping_files(tmp_path)},
                       encoder={"name": "hashing", "max_length": 8})
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(study))
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(cli, ["run", str(path), "--storage", sqlite_url,
                                          "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    shared = [r.getMessage() for r in caplog.records if "also appear in another split" in
              r.getMessage()]
    assert shared == ["dataset 'files': 5 document(s) of its splits also appear in another "
                      "split (val/train 3, test/train 2); validation and test scores count "
                      "them as unseen; make the splits disjoint"]
    cut = sorted(r.getMessage().split(" are longer")[0] for r in caplog.records
                 if "longer than max_length" in r.getMessage())
    # every text is counted once, when it is encoded: the shared ones with train
    assert cut == ["files/test: 12 of 12 texts", "files/train: 60 of 60 texts",
                   "files/val: 12 of 12 texts"]
    assert all("max_length 8 (hashing tokens)" in r.getMessage() for r in caplog.records
               if "longer than max_length" in r.getMessage())


def test_no_warnings_for_disjoint_splits_and_short_texts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSSTUNE_CACHE", str(tmp_path / "cache"))
    files = overlapping_files(tmp_path)
    rows = [_doc(i) for i in range(100, 130)]
    files["val"] = _write(tmp_path / "val2.csv", rows[:15])
    files["test"] = _write(tmp_path / "test2.csv", rows[15:])
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset("files", files)
        encoder_outputs(dataset, "train", EncoderConfig(name="hashing", max_length=64))
    assert shared_documents(dataset) == {}
    assert not [r for r in caplog.records if "another split" in r.getMessage()
                or "longer than max_length" in r.getMessage()]


def test_encoders_count_the_texts_max_length_cuts() -> None:
    from losstune.objectives.encoders.minilm import MiniLMEncoder

    texts = ["short text", "one two three four five six seven eight nine ten eleven twelve"]
    assert HashingEncoder(max_length=5).count_truncated(texts) == 1
    assert HashingEncoder(max_length=50).count_truncated(texts) == 0
    # word pieces plus [CLS] and [SEP]: "short text" is 4, the other 14
    assert MiniLMEncoder(max_length=4).count_truncated(texts) == 1
    assert MiniLMEncoder(max_length=3).count_truncated(texts) == 2
    assert MiniLMEncoder(max_length=14).count_truncated(texts) == 0
