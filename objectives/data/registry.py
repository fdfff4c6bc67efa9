"""The dataset registry: names, loaders, fixed split seeds and the options every loader takes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from losstune.objectives.data.base import SPLITS, Split, TextDataset
from losstune.objectives.data.splits import split_off, subset
from losstune.objectives.errors import LosstuneError
from losstune.objectives.registry import Registry
from losstune.objectives.registry import unknown_name_message as unknown_name_message


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
COMMON_OPTIONS = ("limit", "val_fraction")


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
    frac = options.get("val_fraction", info.val_fraction)
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
        raise DatasetError(f"data.options.val_fraction must lie in (0, 1), got {frac!r}")
    if info.check is not None:
        info.check({k: v for k, v in options.items() if k in info.loader_options})


def load_dataset(name: str, options: Mapping[str, Any] | None = None) -> TextDataset:
    """Load a registered dataset with fixed splits; memoised per process.

    Options:
        limit: an int or ``{train: n, val: n, test: n}``; a stratified subset per split, drawn
            with the dataset's fixed split seed.
        val_fraction: share of the training split held out for validation (sources without a
            validation split only).
        anything the loader itself takes (file paths for user data).
    """
    options = dict(options or {})
    check_dataset_options(name, options)
    key = json.dumps([name, options], sort_keys=True, default=str)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    info = get_dataset_info(name)
    loader_kwargs = {k: v for k, v in options.items() if k in info.loader_options}
    raw = info.loader(**loader_kwargs)
    val_fraction = float(options.get("val_fraction", info.val_fraction))
    train, val = raw.train, raw.val
    if val is None:
        train, val = split_off(train, val_fraction, info.split_seed)
    limits = _limits(options.get("limit"))
    for split_name, part in zip(SPLITS, (train, val, raw.test), strict=True):
        if len(part) == 0:
            raise DatasetError(f"dataset {name!r}: the {split_name} split has no documents")
    dataset = TextDataset(
        name=name,
        class_names=raw.class_names,
        multilabel=raw.multilabel,
        train=subset(train, limits["train"], info.split_seed),
        val=subset(val, limits["val"], info.split_seed + 1),
        test=subset(raw.test, limits["test"], info.split_seed + 2),
        description=info.description,
        derived=info.derived,
        notes=raw.notes,
    )
    with _cache_lock:
        _cache[key] = dataset
    return dataset
