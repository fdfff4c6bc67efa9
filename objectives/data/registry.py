"""The dataset registry: names, loaders, fixed split seeds and the options every loader takes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losstune.objectives.data.base import SPLITS, Split, TextDataset
from losstune.objectives.data.splits import split_off, subset
from losstune.objectives.errors import LosstuneError
from losstune.objectives.registry import Registry
from losstune.objectives.registry import unknown_name_message as unknown_name_message

logger = logging.getLogger(__name__)


class DatasetError(LosstuneError, ValueError):
    """A dataset cannot be loaded as configured (bad option, missing file, bad value...)."""


class UnknownDatasetError(DatasetError, KeyError):
    """No dataset of that name is registered."""

    def __str__(self) -> str:
        return str(self.args[0])


#: The split seed of datasets that do not set their own.
DEFAULT_SPLIT_SEED = 20211125


@dataclass(frozen=True)
class RawDataset:
    """What a loader returns before validation splitting and subsetting."""

    class_names: tuple[str, ...]
    multilabel: bool
    train: Split
    test: Split
    val: Split | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    Attributes:
        name: registry name used in study files (``data.name``).
        loader: ``loader(**loader_options) -> RawDataset``.
        description: one line for ``losstune data list``.
        source: where the files come from (package and version).
        split_seed: fixed seed of the validation split and of subsets; never a trial seed.
        val_fraction: share of the official training split held out for validation when the
            source has no validation split.
        derived: True for tasks built by us from real labels (named as derived everywhere).
        loader_options: option names the loader itself accepts (e.g. a file path).
        check: ``check(loader_options)`` validates those options cheaply (types, files exist)
            when a study file is loaded, before any trial runs; raises :class:`DatasetError`.
        tags: free-form markers: ``task-from-data`` (single- or multi-label decided by the
            labels), ``user-data`` (the user's own files: :func:`load_dataset` warns when its
            splits share documents).
    """

    name: str
    loader: Callable[..., RawDataset]
    description: str
    source: str
    multilabel: bool = False
    split_seed: int = DEFAULT_SPLIT_SEED
    val_fraction: float = 0.1
    derived: bool = False
    loader_options: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)
    check: Callable[[Mapping[str, Any]], None] | None = None


#: Every dataset by name (a read-only mapping; add one with :func:`register_dataset`).
DATASETS: Registry[DatasetInfo] = Registry(
    kind="dataset",
    key="dataset",
    base=DatasetInfo,
    base_path="losstune.objectives.data.DatasetInfo",
    group="losstune.datasets",
    instances=True,
    unknown_error=UnknownDatasetError,
)

#: Options every dataset accepts besides its loader's own.
COMMON_OPTIONS = ("limit", "val_fraction", "split_seed")


def register_dataset(info: DatasetInfo, *, overwrite: bool = False) -> None:
    """Add a dataset to the registry (plugins call this too)."""
    DATASETS.register(info, overwrite=overwrite)


def get_dataset_info(name: str) -> DatasetInfo:
    """The registered dataset (installed plugins included); an unknown name raises
    :class:`UnknownDatasetError` listing the valid names."""
    return DATASETS.lookup(name)


def _limits(value: Any) -> dict[str, int | None]:
    if value is None:
        return {"train": None, "val": None, "test": None}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"train": value, "val": value, "test": value}
    if isinstance(value, Mapping):
        bad = set(value) - {"train", "val", "test"}
        if bad:
            raise DatasetError(
                f"data.options.limit has unknown split(s) {sorted(bad)}; "
                "expected some of ['train', 'val', 'test']"
            )
        out: dict[str, int | None] = {"train": None, "val": None, "test": None}
        for key, n in value.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise DatasetError(
                    f"data.options.limit.{key} must be a positive integer, got {n!r}"
                )
            out[key] = n
        return out
    raise DatasetError(
        f"data.options.limit must be an integer or a mapping of split to integer, got {value!r}"
    )


_cache: dict[str, TextDataset] = {}
_cache_lock = threading.Lock()


def check_dataset_options(name: str, options: Mapping[str, Any]) -> None:
    """Reject option names the dataset does not take, listing those it does."""
    info = get_dataset_info(name)
    valid = set(COMMON_OPTIONS) | set(info.loader_options)
    bad = sorted(set(options) - valid)
    if bad:
        raise DatasetError(
            f"dataset {name!r} does not take option(s) {bad}; valid options: {sorted(valid)}"
        )
    _limits(options.get("limit"))
    seed = options.get("split_seed", info.split_seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"data.options.split_seed must be an integer, got {seed!r}")
    frac = options.get("val_fraction", info.val_fraction)
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
        raise DatasetError(f"data.options.val_fraction must lie in (0, 1), got {frac!r}")
    if info.check is not None:
        info.check({k: v for k, v in options.items() if k in info.loader_options})


def holdout_options(
    name: str, options: Mapping[str, Any] | None, index: int
) -> dict[str, Any]:
    """``options`` of holdout ``index`` (0, 1, ...): holdout 0 is the dataset's own split (the
    options unchanged); holdout ``r`` sets ``split_seed`` to the dataset's split seed + ``r``."""
    out = dict(options or {})
    if index < 0:
        raise ValueError(f"`index >= 0` must hold, but got index={index}")
    if index:
        out["split_seed"] = int(out.get("split_seed", get_dataset_info(name).split_seed)) + index
    return out


def _redraw_holdout(train: Split, val: Split, seed: int) -> tuple[Split, Split]:
    """Pool a source's own train and validation splits and hold out as many documents again,
    stratified, with ``seed``."""
    pooled = Split(train.texts + val.texts, np.concatenate([train.labels, val.labels]))
    return split_off(pooled, len(val) / len(pooled), seed)


def load_dataset(name: str, options: Mapping[str, Any] | None = None) -> TextDataset:
    """Load a registered dataset with fixed splits; memoised per process.

    Options:
        limit: an int or ``{train: n, val: n, test: n}``; a stratified subset per split. The
            train and validation subsets follow ``split_seed``; the test subset never moves.
        val_fraction: share of the training split held out for validation (sources without a
            validation split only).
        split_seed: seed of the train/validation holdout (default: the dataset's own fixed
            seed, which gives exactly the splits of a study without the option). Another value
            draws another stratified holdout of the same size; sources with their own
            validation split pool train and validation first. The test split never changes.
            A loader that takes ``split_seed`` itself (``files``) keeps its own meaning.
        anything the loader itself takes (file paths for user data).
    """
    options = dict(options or {})
    check_dataset_options(name, options)
    info = get_dataset_info(name)
    own_seed = "split_seed" in info.loader_options  # the loader draws its splits with it
    if not own_seed and options.get("split_seed") == info.split_seed:
        del options["split_seed"]  # the default: the same dataset (and memo key) as without it
    key = json.dumps([name, options], sort_keys=True, default=str)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    seed = info.split_seed if own_seed else int(options.get("split_seed", info.split_seed))
    loader_kwargs = {k: v for k, v in options.items() if k in info.loader_options}
    raw = info.loader(**loader_kwargs)
    val_fraction = float(options.get("val_fraction", info.val_fraction))
    train, val = raw.train, raw.val
    if val is None:
        train, val = split_off(train, val_fraction, seed)
    elif seed != info.split_seed:
        train, val = _redraw_holdout(train, val, seed)
    limits = _limits(options.get("limit"))
    for split_name, part in zip(SPLITS, (train, val, raw.test), strict=True):
        if len(part) == 0:
            raise DatasetError(f"dataset {name!r}: the {split_name} split has no documents")
    dataset = TextDataset(
        name=name,
        class_names=raw.class_names,
        multilabel=raw.multilabel,
        train=subset(train, limits["train"], seed),
        val=subset(val, limits["val"], seed + 1),
        test=subset(raw.test, limits["test"], info.split_seed + 2),
        description=info.description,
        derived=info.derived,
        notes=raw.notes,
        source_options=options,
    )
    if "user-data" in info.tags:
        _warn_shared_documents(dataset)
    with _cache_lock:
        _cache[key] = dataset
    return dataset


def shared_documents(dataset: TextDataset) -> dict[str, int]:
    """Documents of a later split whose exact text is in an earlier one: ``{"val/train": n,
    "test/train": n, "test/val": n}`` (pairs with none left out)."""
    train, val = set(dataset.train.texts), set(dataset.val.texts)
    counts = {
        "val/train": sum(1 for t in dataset.val.texts if t in train),
        "test/train": sum(1 for t in dataset.test.texts if t in train),
        "test/val": sum(1 for t in dataset.test.texts if t in val and t not in train),
    }
    return {k: v for k, v in counts.items() if v}


def _warn_shared_documents(dataset: TextDataset) -> None:
    """User data whose splits share documents: say how many (once per loaded dataset), since
    validation and test scores of such splits are inflated."""
    shared = shared_documents(dataset)
    if shared:
        logger.warning(
            "dataset %r: %d document(s) of its splits also appear in another split (%s); "
            "validation and test scores count them as unseen; make the splits disjoint",
            dataset.name, sum(shared.values()),
            ", ".join(f"{k} {v}" for k, v in shared.items()),
        )
