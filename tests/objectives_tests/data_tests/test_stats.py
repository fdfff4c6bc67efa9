"""Label statistics (losstune.objectives.data.stats) and the `losstune data` commands that wrap
them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from losstune.objectives.data import load_dataset
from losstune.objectives.data.base import Split, TextDataset
from losstune.objectives.data.stats import label_statistics, rebalancing_ratios
from losstune.studies import api
from losstune.studies.cli import cli


def _toy() -> TextDataset:
    # train: {A}, {A, B}, {B, C}, {A}  -> n_A = 3, n_B = 2, n_C = 1
    train = Split(("a", "ab", "bc", "a2"), np.array(
        [[1, 0, 0], [1, 1, 0], [0, 1, 1], [1, 0, 0]], dtype=np.uint8))
    val = Split(("v1", "v2"), np.array([[0, 0, 0], [1, 0, 1]], dtype=np.uint8))
    test = Split(("t1",), np.array([[0, 1, 0]], dtype=np.uint8))
    return TextDataset(name="toy", class_names=("A", "B", "C"), multilabel=True, train=train,
                       val=val, test=test, description="toy", derived=True)


def test_rebalancing_ratio_by_hand() -> None:
    r = rebalancing_ratios(_toy().train.labels)
    # doc0: 1; doc1: (1/3)/(1/3+1/2)=0.4, 0.6; doc2: (1/2)/(1/2+1)=1/3, 2/3; doc3: 1
    np.testing.assert_allclose(r, [1.0, 0.4, 0.6, 1 / 3, 2 / 3, 1.0])


def test_label_statistics_by_hand() -> None:
    s = label_statistics(_toy(), head_min=3, tail_max=1, top=2)
    assert s.splits["train"].docs == 4 and s.splits["val"].docs == 2
    assert s.splits["train"].labels_per_doc_mean == pytest.approx(1.5)
    assert s.splits["train"].labels_per_doc_max == 2
    assert s.splits["val"].docs_without_label == 1 and s.splits["val"].classes_present == 2
    assert {g: [r.name for r in rows] for g, rows in s.groups.items()} == {
        "head": ["A"], "medium": ["B"], "tail": ["C"]}
    assert [(r.name, r.train, r.val, r.test) for r in s.top] == [("A", 3, 1, 0), ("B", 2, 0, 1)]
    assert [r.name for r in s.bottom] == ["C", "B"]
    assert s.imbalance_ratio == pytest.approx(3.0)
    assert s.r_pairs == 6
    assert s.r_mean == pytest.approx(4 / 6)  # = documents / positive pairs
    assert s.r_median == pytest.approx((0.6 + 2 / 3) / 2)
    m = (4 / 6 + (0.6 + 2 / 3) / 2) / 2
    assert s.suggested_mu == pytest.approx((0.5 * m, 2 * m), abs=1e-4)
    assert s.derived is True
    json.dumps(s.to_dict())


def test_single_label_statistics_have_no_ratio_and_flag_empty_classes() -> None:
    s = label_statistics(load_dataset("r52"))
    assert s.r_mean is None and s.suggested_mu is None
    assert sum(len(v) for v in s.groups.values()) == 52
    assert s.splits["train"].labels_per_doc_max == 1
    assert s.top[0].name == "earn" and s.top[0].train + s.top[0].val == 2840
    assert s.splits["val"].classes_present == 51  # the class with one training doc keeps it
    with pytest.raises(ValueError, match="head_min > tail_max"):
        label_statistics(load_dataset("r8"), head_min=8, tail_max=8)


# ---------------------------------------------------------------------- CLI
def test_data_list_shows_every_dataset_and_the_derived_flag() -> None:
    result = CliRunner().invoke(cli, ["data", "list"])
    assert result.exit_code == 0, result.output
    for name in ("r8", "r52", "20ng", "mr", "trec_coarse", "trec_fine", "trec_hierarchical",
                 "20ng_hierarchical", "files", "reuters21578"):
        assert name in result.output
    rows = {r["name"]: r for r in api.list_datasets()}
    assert rows["20ng_hierarchical"]["derived"] and not rows["20ng"]["derived"]
    assert rows["files"]["task"] == "from the data"
    assert "path" in rows["files"]["options"] and "limit" in rows["files"]["options"]


def test_data_info_prints_the_statistics() -> None:
    result = CliRunner().invoke(cli, ["data", "info", "trec_hierarchical"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "56 classes, multi-label, DERIVED" in out
    expected = label_statistics(load_dataset("trec_hierarchical"))
    sizes = ", ".join(f"{g} {len(v)}" for g, v in expected.groups.items())
    assert sizes in out
    assert "mean 0.5000, median 0.5000" in out  # two labels per question: r = 0.5 on average
    assert "4907" in out and "545" in out


def test_data_info_thresholds_and_options_reach_the_statistics(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["data", "info", "r52", "--head-min", "100",
                                      "--tail-max", "20", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    counts = load_dataset("r52").class_counts("train")
    assert (got["head_min"], got["tail_max"]) == (100, 20)
    assert len(got["groups"]["head"]) == int((counts >= 100).sum())
    assert len(got["groups"]["tail"]) == int((counts <= 20).sum())
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("body,y\n" + "".join(f"doc {i},{'ab'[i % 2]}\n" for i in range(30)),
                        encoding="utf-8")
    result = CliRunner().invoke(cli, ["data", "info", "files", "-o", f"path={csv_path}",
                                      "-o", "text_column=body", "-o", "label_column=y",
                                      "-o", "limit.train=10", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["splits"]["train"]["docs"] == 10 and got["num_classes"] == 2


@pytest.mark.parametrize(("args", "message"), [
    (["data", "info", "r9"], "Unknown dataset 'r9'"),
    (["data", "info", "mr", "-o", "path=x"], "does not take option(s) ['path']; valid options:"),
    (["data", "info", "r8", "--head-min", "5", "--tail-max", "8"], "head_min > tail_max"),
    (["data", "info", "files", "-o", "path=/nonexistent/x.csv"], "no such file"),
    (["data", "info", "mr", "-o", "limit"], "--option expects KEY=VALUE"),
])
def test_data_info_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.strip().count("\n") == 0 and result.output.startswith("error: ")


def test_parse_data_options_reads_yaml_values() -> None:
    assert api.parse_data_options(["limit.train=10", "limit.test=5", "multilabel=true",
                                   "classes=[a, b]", "path=x.csv"]) == {
        "limit": {"train": 10, "test": 5}, "multilabel": True, "classes": ["a", "b"],
        "path": "x.csv"}
