"""LeanAdam trains exactly as torch's Adam/AdamW: the same parameters after every step, to the
bit, for one and several parameter groups, with and without weight decay, and the trainer uses
it for Adam/AdamW on CPU parameters (torch.optim otherwise)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from losstune.objectives.config import TrialConfig
from losstune.objectives.optim import LeanAdam, lean_adam_supports
from losstune.objectives.training import _make_optimizer


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(12, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def _train(model: torch.nn.Module, optimizer: object, steps: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 12, generator=g)
        y = torch.randint(0, 3, (16,), generator=g)
        optimizer.zero_grad(set_to_none=True)  # type: ignore[attr-defined]
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()  # type: ignore[attr-defined]
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("decoupled", [True, False], ids=["adamw", "adam"])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("groups", [False, True], ids=["one_group", "two_groups"])
def test_lean_adam_matches_torch_to_the_bit(decoupled: bool, weight_decay: float,
                                            groups: bool) -> None:
    def params(model: torch.nn.Module) -> list:
        if not groups:
            return list(model.parameters())
        first, _, last = model  # type: ignore[misc]
        return [{"params": list(first.parameters()), "lr": 3e-3},
                {"params": list(last.parameters())}]

    ref_model, lean_model = _model(0), _model(0)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    reference = cls(params(ref_model), lr=0.05, weight_decay=weight_decay)
    lean = LeanAdam(params(lean_model), lr=0.05, weight_decay=weight_decay, decoupled=decoupled)
    for step_block in range(3):  # compare after 1, 26 and 51 steps
        steps = 1 if step_block == 0 else 25
        want = _train(ref_model, reference, steps, seed=step_block)
        got = _train(lean_model, lean, steps, seed=step_block)
        for w, g in zip(want, got, strict=True):
            assert torch.equal(w, g), f"parameters differ after block {step_block}"


def test_parameters_without_gradient_are_left_alone() -> None:
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = LeanAdam([used, unused], lr=0.1, weight_decay=0.1, decoupled=True)
    (used * torch.arange(3.0)).sum().backward()
    opt.step()
    assert torch.equal(unused.detach(), torch.ones(3)) and unused not in opt.state
    assert not torch.equal(used.detach(), torch.ones(3))
    opt.zero_grad(set_to_none=False)
    assert used.grad is not None and torch.count_nonzero(used.grad) == 0
    opt.zero_grad()
    assert used.grad is None


def _config(optimizer: str) -> TrialConfig:
    return TrialConfig.model_validate({
        "data": {"name": "synthetic"}, "encoder": {"name": "hashing"},
        "loss": {"terms": [{"name": "ce"}]}, "train": {"optimizer": optimizer}})


def test_trainer_uses_lean_adam_on_cpu_and_torch_elsewhere() -> None:
    params = list(_model(0).parameters())
    assert isinstance(_make_optimizer(_config("adamw"), params), LeanAdam)
    assert isinstance(_make_optimizer(_config("adam"), params), LeanAdam)
    assert isinstance(_make_optimizer(_config("sgd"), params), torch.optim.SGD)
    meta = [torch.nn.Parameter(torch.zeros(2, device="meta"))]
    assert not lean_adam_supports(meta)
    assert isinstance(_make_optimizer(_config("adamw"), meta), torch.optim.AdamW)
    assert not lean_adam_supports([torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))])


def test_a_trial_does_not_import_the_torch_compiler() -> None:
    """torch.optim's first step imports torch._dynamo (over a second); a trial must not."""
    code = (
        "import sys\n"
        "from losstune.objectives.config import TrialConfig\n"
        "from losstune.objectives.training import run_trial\n"
        "config = TrialConfig.model_validate({'data': {'name': 'synthetic'},"
        " 'encoder': {'name': 'hashing'}, 'loss': {'terms': [{'name': 'ce'}]},"
        " 'train': {'epochs': 2, 'threads': 1}})\n"
        "run_trial(config)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
