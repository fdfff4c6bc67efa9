"""The search-space compiler: conditional parameters, overrides, fixed values, round trips."""

from __future__ import annotations

import optuna
import pytest

from losstune.search_spaces import FixedDist, FloatDist, SearchSpace, SpaceError, diff_spaces

TEMPLATE = {"data": {"name": "synthetic"}, "encoder": {"name": "hashing"},
            "train": {"seed": 3, "threads": 1}}


def build(**kw: object) -> SearchSpace:
    return SearchSpace.build(losses=["ce", "bce", "focal"], **kw)  # type: ignore[arg-type]


def test_parameter_names_are_a_stable_schema() -> None:
    # Renaming any of these breaks every stored study that resumes: change on purpose only.
    assert build().names() == [
        "loss.name",
        "loss.ce.label_smoothing",
        "loss.focal.gamma",
        "model.dropout",
        "train.lr",
        "train.weight_decay",
        "train.epochs",
        "train.batch_size",
    ]


def test_conditional_parameters_exist_only_with_their_loss() -> None:
    space = build()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict[str, set[str]] = {}
    for _ in range(30):
        trial = study.ask()
        values = space.sample(trial)
        seen.setdefault(values["loss.name"], set()).update(trial.params)
        study.tell(trial, 0.0)
    assert "loss.focal.gamma" in seen["focal"] and "loss.ce.label_smoothing" not in seen["focal"]
    assert "loss.ce.label_smoothing" in seen["ce"] and "loss.focal.gamma" not in seen["ce"]
    assert not any(p.startswith("loss.") and p != "loss.name" for p in seen["bce"])


def test_overrides_range_fixed_and_restricted_choice() -> None:
    space = build(overrides={
        "loss.focal.gamma": {"low": 0.5, "high": 3.0},
        "train.batch_size": 64,
        "loss.name": ["focal", "bce"],
        "train.epochs": {"low": 2, "high": 4},
    })
    assert space.get("loss.focal.gamma").dist == FloatDist(0.5, 3.0)
    assert space.get("train.batch_size").dist == FixedDist(64)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        values = space.sample(trial)
        assert values["loss.name"] in ("focal", "bce")
        assert values["train.batch_size"] == 64 and "train.batch_size" not in trial.params
        assert 2 <= values["train.epochs"] <= 4
        if values["loss.name"] == "focal":
            assert 0.5 <= values["loss.focal.gamma"] <= 3.0
        study.tell(trial, 0.0)


def test_fixed_trial_round_trip_gives_the_same_config() -> None:
    space = build(overrides={"train.batch_size": 32})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(10):
        trial = study.ask()
        config = space.to_config(space.sample(trial), TEMPLATE)
        study.tell(trial, 0.0)
        frozen = study.trials[-1]
        replay = space.to_config(space.sample(optuna.trial.FixedTrial(frozen.params)), TEMPLATE)
        assert replay == config
        assert replay.train.batch_size == 32 and replay.train.seed == 3


def test_to_config_places_every_value() -> None:
    space = build()
    values = {"loss.name": "focal", "loss.focal.gamma": 1.5, "model.dropout": 0.2,
              "train.lr": 0.01, "train.weight_decay": 1e-4, "train.epochs": 7,
              "train.batch_size": 32}
    config = space.to_config(values, TEMPLATE)
    assert config.loss.terms[0].name == "focal"
    assert config.loss.terms[0].params == {"gamma": 1.5}
    assert config.model.params == {"dropout": 0.2}
    assert (config.train.lr, config.train.epochs, config.train.batch_size) == (0.01, 7, 32)


def test_baseline_uses_constructor_defaults() -> None:
    base = build().baseline("focal")
    assert base["loss.name"] == "focal" and base["loss.focal.gamma"] == 2.0
    assert "loss.ce.label_smoothing" not in base
    # a default outside an overridden range is clipped into it
    assert build(overrides={"loss.focal.gamma": {"low": 2.5, "high": 3}}).baseline("focal")[
        "loss.focal.gamma"] == 2.5


def test_fingerprint_changes_with_the_space_and_diff_is_readable() -> None:
    a, b = build(), build(overrides={"train.lr": {"low": 1e-3, "high": 1e-1, "log": True}})
    assert a.fingerprint() == build().fingerprint()
    assert a.fingerprint() != b.fingerprint()
    diff = diff_spaces(a.describe(), b.describe())
    assert len(diff) == 1 and diff[0].startswith("~ train.lr:") and "0.001" in diff[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.lr": {"low": 0.1, "high": 0.01}}, "`low <= high` must hold"),
        ({"train.lr": {"low": 0.0, "high": 0.1, "log": True}}, "`low > 0` must hold"),
        ({"train.epochs": {"low": 1.5, "high": 4}}, "integer"),
        ({"train.epochs": "ten"}, "takes an integer"),
        ({"nope.param": 1}, "no such parameter"),
        ({"train.lr": {"lo": 1, "hi": 2}}, "cannot read override"),
    ],
)
def test_bad_overrides(overrides: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        build(overrides=overrides)


def test_a_default_sets_the_baseline_without_changing_the_space() -> None:
    plain = build(overrides={"train.lr": {"low": 1e-3, "high": 1e-1, "log": True}})
    space = build(overrides={
        "train.lr": {"low": 1e-3, "high": 1e-1, "log": True, "default": 0.03},
        "train.batch_size": {"default": 512},              # the default choices kept
        "train.epochs": {"low": 5, "high": 30, "default": 15},
        "loss.focal.gamma": {"choices": [0.0, 1.0, 2.0], "default": 1},  # an int for a float
    })
    # the default is not part of the space: a study created without it resumes with it
    assert space.fingerprint() == build(overrides={
        "train.lr": {"low": 1e-3, "high": 1e-1, "log": True},
        "train.epochs": {"low": 5, "high": 30},
        "loss.focal.gamma": {"choices": [0.0, 1.0, 2.0]}}).fingerprint()
    assert space.get("train.lr").dist == plain.get("train.lr").dist
    assert space.get("train.batch_size").dist == build().get("train.batch_size").dist
    base = space.baseline("focal")
    assert base["train.lr"] == 0.03 and isinstance(base["train.lr"], float)
    assert base["train.batch_size"] == 512 and base["train.epochs"] == 15
    assert base["loss.focal.gamma"] == 1
    assert space.sample(optuna.trial.FixedTrial(base))["train.lr"] == 0.03


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"low": 1e-3, "high": 1e-2, "default": 0.5}, r"default 0.5 is not in the distribution "
                                                      r"\(float \[0.001, 0.01\] log\)"),
        ({"default": 100}, "default 100 is not in the distribution"),  # batch_size: 32 ... 512
        ({"value": 0.01, "default": 0.01}, "a fixed parameter"),
        ({"choices": [0.01], "default": "high"}, "default 'high' is not in"),
    ],
)
def test_a_default_outside_its_distribution_is_refused(override: dict, message: str) -> None:
    name = "train.batch_size" if override == {"default": 100} else "train.lr"
    with pytest.raises(SpaceError, match=f"space.{name}: {message}"):
        build(overrides={name: override})


def test_unknown_loss_in_choices() -> None:
    with pytest.raises(SpaceError, match="Unknown loss 'focl'"):
        SearchSpace.build(losses=["ce", "focl"])


def test_loss_both_primary_and_auxiliary_rejected() -> None:
    with pytest.raises(SpaceError, match="both"):
        SearchSpace.build(losses=["ce", "bce"], auxiliary=["bce"])


# ranges that the step does not divide: Optuna says it trims them, and so does the default
@pytest.mark.filterwarnings("ignore:The distribution is specified by")
def test_shown_default_is_moved_into_the_overridden_space_and_is_the_baseline(
        tmp_path) -> None:
    import yaml
    from click.testing import CliRunner

    from losstune.studies.cli import cli
    from tests.conftest import tiny_study

    overrides = {
        "train.lr": {"low": 0.05, "high": 0.09},          # default 0.01: below the range
        "train.epochs": {"low": 30, "high": 40, "step": 4},  # default 20 -> 30
        "train.weight_decay": {"low": 0.0, "high": 1e-3, "step": 3e-4, "log": False},
        "train.batch_size": [100, 150],                   # default 256: nearest choice 150
        "loss.focal.gamma": {"low": 0.0, "high": 1.0, "step": 0.3},  # default 2.0 -> 0.9
        "model.dropout": 0.25,                            # fixed: its value
    }
    space = build(overrides=overrides)
    shown = {p.name: p.effective_default() for p in space.params}
    assert shown["train.lr"] == 0.05 and shown["train.epochs"] == 30
    assert shown["train.weight_decay"] == 0.0  # 1e-4 snaps to the step grid
    assert shown["train.batch_size"] == 150 and shown["model.dropout"] == 0.25
    assert shown["loss.focal.gamma"] == pytest.approx(0.9)
    base = space.baseline("focal")
    for name, value in base.items():
        assert value == (shown[name] if name != "loss.name" else "focal"), name
        assert space.get(name).dist.contains(value), name
    # Optuna takes every baseline value as it is (on the step grid, inside the range)
    trial = optuna.trial.FixedTrial(base)
    assert space.sample(trial) == {**base, "model.dropout": 0.25}

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_study(space=overrides)))
    table = CliRunner().invoke(cli, ["space", str(path)]).output
    row = next(line for line in table.splitlines() if "train.lr " in line)
    assert "0.05" in row and "0.01" not in row
    row = next(line for line in table.splitlines() if "train.batch_size" in line)
    assert "150" in row and " 256 " not in row
