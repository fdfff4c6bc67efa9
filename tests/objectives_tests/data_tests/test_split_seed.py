"""``data.options.split_seed``: another train/validation holdout; the default changes nothing
and the test split never moves."""

from __future__ import annotations

import pytest

from losstune.objectives.config import EncoderConfig, TrialConfig
from losstune.objectives.data import get_dataset_info, load_dataset
from losstune.objectives.data.registry import DEFAULT_SPLIT_SEED, DatasetError, holdout_options
from losstune.objectives.features import feature_key
from losstune.studies.spec import StudyFileError, parse_study
from tests.conftest import tiny_study


def _texts(split) -> set[str]:  # noqa: ANN001
    return set(split.texts)


def test_the_default_split_seed_is_the_dataset_as_before() -> None:
    plain = load_dataset("synthetic")
    same = load_dataset("synthetic", {"split_seed": DEFAULT_SPLIT_SEED})
    assert same is plain  # the same memoised dataset: the option is dropped, not keyed
    identity = {"encoder": "hashing"}
    for split in ("train", "val", "test"):
        assert feature_key(same, split, EncoderConfig(name="hashing"), identity) == \
            feature_key(plain, split, EncoderConfig(name="hashing"), identity)
    # holdout 0 leaves a config's options untouched (its digest and the study's keys too)
    assert holdout_options("synthetic", {"limit": 50}, 0) == {"limit": 50}
    assert holdout_options("synthetic", {}, 2) == {"split_seed": DEFAULT_SPLIT_SEED + 2}
    assert holdout_options("mr", {}, 1) == {"split_seed": get_dataset_info("mr").split_seed + 1}


def test_another_split_seed_draws_another_holdout_of_the_same_documents() -> None:
    plain = load_dataset("synthetic")
    other = load_dataset("synthetic", {"split_seed": DEFAULT_SPLIT_SEED + 1})
    assert other.test.texts == plain.test.texts  # test never moves
    assert (other.test.labels == plain.test.labels).all()
    assert len(other.val) == len(plain.val) and len(other.train) == len(plain.train)
    assert _texts(other.val) != _texts(plain.val)
    assert _texts(other.train) | _texts(other.val) == _texts(plain.train) | _texts(plain.val)
    assert not _texts(other.train) & _texts(other.val)
    # stratified: every class keeps training documents
    assert (other.class_counts("train") > 0).all()
    again = load_dataset("synthetic", {"split_seed": DEFAULT_SPLIT_SEED + 1})
    assert again.val.texts == other.val.texts  # deterministic


def test_limit_subsets_of_train_and_val_follow_the_split_seed_test_does_not() -> None:
    limit = {"limit": {"train": 60, "val": 12, "test": 30}}
    plain = load_dataset("synthetic", limit)
    other = load_dataset("synthetic", {**limit, "split_seed": 7})
    assert other.test.texts == plain.test.texts
    assert (len(other.train), len(other.val)) == (60, 12)
    assert _texts(other.train) != _texts(plain.train)
    assert _texts(other.val) != _texts(plain.val)


def test_a_source_with_its_own_validation_split_pools_and_redraws_it() -> None:
    plain = load_dataset("mr")
    seed = get_dataset_info("mr").split_seed
    other = load_dataset("mr", {"split_seed": seed + 1})
    assert other.test.texts == plain.test.texts
    assert len(other.val) == len(plain.val)
    assert _texts(other.train) | _texts(other.val) == _texts(plain.train) | _texts(plain.val)
    assert _texts(other.val) != _texts(plain.val)
    # its default is its own seed: the source's split as before
    assert load_dataset("mr", {"split_seed": seed}) is plain


def test_split_seed_is_checked_and_study_files_accept_it() -> None:
    with pytest.raises(DatasetError, match="split_seed must be an integer"):
        load_dataset("synthetic", {"split_seed": "one"})
    with pytest.raises(StudyFileError, match="split_seed must be an integer"):
        parse_study(tiny_study(data={"name": "synthetic", "options": {"split_seed": True}}))
    spec = parse_study(tiny_study(data={"name": "synthetic", "options": {"split_seed": 3}}))
    assert spec.data.options == {"split_seed": 3}
    config = TrialConfig.model_validate({"data": {"name": "synthetic"},
                                         "loss": {"terms": [{"name": "ce"}]}})
    assert "split_seed" not in config.model_dump()["data"]["options"]
