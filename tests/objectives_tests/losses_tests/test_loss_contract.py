"""The loss contract over the whole registry, and proof that each check catches its step.

Adding a loss without its search space, docstring, argument checks, finite backward pass, config
round trip or test module makes ``test_registered_loss_meets_contract`` fail with the missing
step in its message (the checks live in objectives/losses/contract.py and
search_spaces/contract.py, which ``losstune check-loss`` will call as well).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from losstune.objectives._checks import check
from losstune.objectives.losses import LOSSES, BaseLoss, Batch
from losstune.objectives.losses.contract import Shapes, check_loss_class, random_outputs
from losstune.objectives.models.outputs import OUTPUT_FIELDS, ModelOutputs
from losstune.search_spaces.contract import (
    check_loss_contract,
    check_loss_space,
    sample_loss_knobs,
)
from losstune.search_spaces.losses import LOSS_SPACES
from losstune.search_spaces.params import FloatDist

TESTS_DIR = Path(__file__).parent
BUILT_IN = sorted(n for n, c in LOSSES.items()
                  if c.__module__.startswith("losstune.objectives."))
REQUIRED = {"ce", "bce", "focal", "cb", "r_focal", "ntr_focal", "db_no_focal", "cb_ntr", "db",
            "triplet", "arcface", "space", "g_loss", "latent_guidance", "tversky", "dice"}


def test_registry_holds_every_seed_loss() -> None:
    assert REQUIRED <= set(BUILT_IN), f"missing: {sorted(REQUIRED - set(BUILT_IN))}"


@pytest.mark.parametrize("name", BUILT_IN)
def test_registered_loss_meets_contract(name: str) -> None:
    problems = check_loss_contract(LOSSES[name], tests_dir=TESTS_DIR)
    assert not problems, "\n".join(str(p) for p in problems)


def test_sampled_knobs_come_from_the_search_space() -> None:
    samples = sample_loss_knobs("db", n=4, seed=1)
    assert len(samples) == 4 and all(set(s) == set(LOSS_SPACES["db"]) for s in samples)
    assert len({s["gamma"] for s in samples}) == 4  # a real sampler, not the defaults


def test_random_outputs_cover_every_output_field() -> None:
    outputs, leaves = random_outputs(OUTPUT_FIELDS, 3, Shapes(), torch.Generator())
    assert outputs.available() == frozenset(OUTPUT_FIELDS)
    assert outputs.get("space_activations").shape == (4, 3, 5, 3)
    assert set(leaves) == {"logits", "embeddings", "space_activations", "latents",
                           "reconstruction"}


# ------------------------------------------------------------- each check catches its step


class GoodLoss(BaseLoss):
    """A scaled cross-entropy used to prove the checks (never registered).

    ``L = scale * CE(z, y)``

    Args:
        scale: positive factor.

    References:
        none (a test fixture).

    Inputs:
        ``outputs.logits``; class indices.
    """

    name = "contract_probe"
    display_name = "Probe"
    targets = "index"
    single_label_only = True

    def __init__(self, *, scale: float = 1.0) -> None:
        super().__init__()
        check(scale > 0, "scale > 0", scale=scale)
        self.scale = scale

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.scale * F.cross_entropy(logits, labels)

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        assert batch.y is not None
        return self.compute(outputs.logits, batch.y)


def _steps(problems: list) -> set[str]:
    return {p.step for p in problems}


def test_good_probe_passes_class_checks() -> None:
    assert check_loss_class(GoodLoss) == []


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    names: list[str] = []

    def register(cls: type[BaseLoss], space: dict | None) -> None:
        LOSSES.register(cls)
        names.append(cls.name)
        if space is not None:
            monkeypatch.setitem(LOSS_SPACES, cls.name, space)
    yield register
    for name in names:
        LOSSES.unregister(name)


def test_missing_search_space_is_reported(registered) -> None:  # noqa: ANN001
    registered(GoodLoss, None)
    problems = check_loss_contract(GoodLoss)
    assert any(p.step == "search space" and "LOSS_SPACES" in p.message for p in problems)


def test_space_key_that_is_not_a_knob_is_reported(registered) -> None:  # noqa: ANN001
    registered(GoodLoss, {"scale": FloatDist(0.5, 2.0), "gamma": FloatDist(0.0, 1.0)})
    problems = check_loss_space(GoodLoss)
    assert any("['gamma']" in p.message and "not constructor knobs" in p.message
               for p in problems)


def test_default_outside_range_is_reported(registered) -> None:  # noqa: ANN001
    registered(GoodLoss, {"scale": FloatDist(2.0, 3.0)})
    assert any("outside its range" in p.message for p in check_loss_space(GoodLoss))


def test_unregistered_loss_is_reported() -> None:
    problems = check_loss_contract(GoodLoss)
    assert any(p.step == "registry" and "LOSSES" in p.message for p in problems)


def test_full_contract_passes_for_a_registered_probe(registered) -> None:  # noqa: ANN001
    registered(GoodLoss, {"scale": FloatDist(0.5, 2.0)})
    assert check_loss_contract(GoodLoss) == []


def test_missing_docstring_sections_are_reported() -> None:
    class NoDocs(GoodLoss):
        """Scaled CE without a formula or sections."""

    problems = check_loss_class(NoDocs)
    messages = " ".join(p.message for p in problems if p.step == "docstring")
    assert "no formula" in messages and "`References:`" in messages and "`Args:`" in messages


def test_undocumented_knob_is_reported() -> None:
    class Undocumented(GoodLoss):
        """``L = scale * CE``

        Args:
            other: not the knob.

        References:
            none.

        Inputs:
            logits.
        """

    problems = check_loss_class(Undocumented)
    assert any("does not describe knob(s) ['scale']" in p.message for p in problems)


def test_unchecked_argument_is_reported() -> None:
    class Unchecked(GoodLoss):
        __doc__ = GoodLoss.__doc__

        def __init__(self, *, scale: float = 1.0) -> None:
            BaseLoss.__init__(self)
            self.scale = scale

    problems = check_loss_class(Unchecked)
    assert any(p.step == "argument checks" and "scale=nan was accepted" in p.message
               for p in problems)


def test_positional_or_untyped_knob_is_reported() -> None:
    class Positional(GoodLoss):
        __doc__ = GoodLoss.__doc__

        def __init__(self, scale=1.0) -> None:  # noqa: ANN001
            super().__init__(scale=scale)

    messages = [p.message for p in check_loss_class(Positional)]
    assert any("must be keyword-only" in m for m in messages)
    assert any("needs a type annotation" in m for m in messages)


def test_non_finite_loss_and_gradient_are_reported() -> None:
    class NaNLoss(GoodLoss):
        __doc__ = GoodLoss.__doc__

        def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return super().compute(logits, labels) * float("nan")

    class InfGrad(GoodLoss):
        __doc__ = GoodLoss.__doc__

        def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return torch.sqrt(logits.abs() * 0.0).sum() + super().compute(logits, labels)

    assert "forward" in _steps(check_loss_class(NaNLoss))
    assert any(p.step == "backward" and "non-finite gradient" in p.message
               for p in check_loss_class(InfGrad))


def test_batch_of_one_and_absent_class_failures_are_reported() -> None:
    class NeedsTwo(GoodLoss):
        __doc__ = GoodLoss.__doc__

        def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return super().compute(logits, labels) / (len(labels) - 1)  # inf for one

    class NeedsEveryClass(GoodLoss):
        __doc__ = GoodLoss.__doc__

        def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            counts = torch.bincount(labels, minlength=logits.shape[1]).float()
            return super().compute(logits, labels) + (1.0 / counts).sum()

    assert "batch of one" in _steps(check_loss_class(NeedsTwo))
    assert "class without positives" in _steps(check_loss_class(NeedsEveryClass))


def test_detached_loss_is_reported() -> None:
    class Detached(GoodLoss):
        __doc__ = GoodLoss.__doc__

        def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return super().compute(logits.detach(), labels)

    assert any(p.step == "backward" and "does not depend" in p.message
               for p in check_loss_class(Detached))


def test_broken_config_round_trip_is_reported() -> None:
    class Renamed(GoodLoss):
        __doc__ = GoodLoss.__doc__

        def __init__(self, *, scale: float = 1.0) -> None:
            super().__init__(scale=scale)
            self.scale = 2.0 * scale  # stored under the knob's name, but changed

    problems = check_loss_class(Renamed)
    assert {"constructor", "config round-trip"} <= _steps(problems)


def test_missing_test_module_is_reported(tmp_path: Path) -> None:
    (tmp_path / "test_other.py").write_text("LOSS = 'ce'\n")
    problems = check_loss_class(GoodLoss, tests_dir=tmp_path)
    assert any(p.step == "tests" and "contract_probe" in p.message for p in problems)
    (tmp_path / "test_probe.py").write_text("NAME = 'contract_probe'\n")
    assert check_loss_class(GoodLoss, tests_dir=tmp_path) == []


def test_undeclared_output_is_reported() -> None:
    class WrongRequires(GoodLoss):
        __doc__ = GoodLoss.__doc__
        requires = frozenset({"logits", "attention_maps"})

    assert any("unknown output(s) ['attention_maps']" in p.message
               for p in check_loss_class(WrongRequires))


def test_not_a_loss_class() -> None:
    problems = check_loss_contract(torch.nn.MSELoss)  # type: ignore[arg-type]
    assert problems and problems[0].step == "registry"
