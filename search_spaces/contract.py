"""The full contract of a loss: its class (torch-level checks) plus its search space.

``check_loss_contract(cls)`` is what the contract test runs over the whole registry and what
``losstune check-loss`` will run on a plugin's loss. It adds, to
:func:`losstune.objectives.losses.contract.check_loss_class`, the checks that need the search
spaces:
a ``LOSS_SPACES`` entry whose keys are constructor knobs and whose ranges hold the defaults,
and knobs sampled from a real Optuna trial (``RandomSampler``) through :class:`SearchSpace`,
which the class checks then evaluate on random batches.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from losstune.objectives.losses import LOSSES, BaseLoss
from losstune.objectives.losses.contract import Problem, Shapes, check_loss_class
from losstune.search_spaces.losses import LOSS_SPACES
from losstune.search_spaces.params import FixedDist

__all__ = ["Problem", "check_loss_contract", "check_loss_space", "sample_loss_knobs"]


def check_loss_space(cls: type[BaseLoss]) -> list[Problem]:
    """The loss's default search space: present, made of knobs, holding the defaults."""
    name = cls.name
    problems: list[Problem] = []
    if LOSSES.get(name) is not cls:
        problems.append(Problem(name, "registry", (
            f"not registered under {name!r}: add it to losstune.objectives.losses.LOSSES "
            "(or call register_loss for a plugin)")))
    if name not in LOSS_SPACES:
        problems.append(Problem(name, "search space", (
            "no default search space: add an entry to search_spaces/losses.py:LOSS_SPACES "
            "(or call register_loss_space for a plugin; `{}` if nothing is searched)")))
        return problems
    knobs = cls.hyperparameters()
    extra = sorted(set(LOSS_SPACES[name]) - set(knobs))
    if extra:
        problems.append(Problem(name, "search space", (
            f"LOSS_SPACES[{name!r}] has key(s) {extra} that are not constructor knobs "
            f"{sorted(knobs)}")))
    for arg, dist in LOSS_SPACES[name].items():
        if arg not in knobs or isinstance(dist, FixedDist):
            continue
        default = knobs[arg].default
        if default is not inspect.Parameter.empty and not dist.contains(default):
            problems.append(Problem(name, "search space", (
                f"default {arg}={default!r} lies outside its range ({dist.describe()}); the "
                "baseline trial would not run the paper's value")))
    return problems


def sample_loss_knobs(name: str, *, n: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Knob dicts of ``name`` drawn by Optuna's ``RandomSampler`` through the compiled space."""
    import optuna

    from losstune.search_spaces.space import SearchSpace

    space = SearchSpace.build(losses=[name])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    prefix = f"loss.{name}."
    out = []
    for _ in range(n):
        trial = study.ask()
        values = space.sample(trial)
        out.append({k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)})
        study.tell(trial, 0.0)
    return out


def check_loss_contract(
    cls: type[BaseLoss],
    *,
    tests_dir: Path | None = None,
    n_samples: int = 3,
    seed: int = 0,
    shapes: Shapes | None = None,
) -> list[Problem]:
    """All checks of a loss class; an empty list means it can be used in studies."""
    if not (isinstance(cls, type) and issubclass(cls, BaseLoss)):
        return check_loss_class(cls)
    problems = check_loss_space(cls)
    samples: list[dict[str, Any]] = []
    if not problems:
        try:
            samples = sample_loss_knobs(cls.name, n=n_samples, seed=seed)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems.append(Problem(cls.name, "optuna trial", (
                f"sampling its space from an Optuna trial failed: {type(exc).__name__}: {exc}")))
    return problems + check_loss_class(
        cls, knob_samples=samples, tests_dir=tests_dir, shapes=shapes, seed=seed
    )
