"""A lean Adam/AdamW for the small CPU models of a study.

``torch.optim.AdamW`` costs more per step than the arithmetic of a linear head: every
``step()`` and ``zero_grad()`` goes through a profiler scope, hook lists and a graph-break
wrapper, and the first ``step()`` imports ``torch._dynamo`` (over a second of a study's
start-up). :class:`LeanAdam` does exactly the arithmetic of torch's single-tensor Adam/AdamW,
the implementation torch itself picks for CPU tensors, operation for operation, so a trial
trains to the same numbers, bit for bit (``tests/objectives_tests/test_optim.py`` checks this
against ``torch.optim``), at a lower cost per step.

It covers what a study can configure: Adam or AdamW (decoupled weight decay), several
parameter groups with their own learning rate, betas ``(0.9, 0.999)`` and ``eps=1e-8``
(torch's defaults), dense real tensors on the CPU. :func:`lean_adam_supports` says when it
applies; anything else (CUDA, sparse or complex parameters) uses ``torch.optim``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["LeanAdam", "lean_adam_supports"]


def lean_adam_supports(params: Iterable[torch.Tensor]) -> bool:
    """Whether :class:`LeanAdam` matches torch's optimiser on these parameters: dense, real,
    floating-point CPU tensors (torch runs its single-tensor loop there)."""
    return all(p.device.type == "cpu" and p.layout == torch.strided and p.is_floating_point()
               and not p.is_complex() for p in params)


class LeanAdam:
    """Adam (``decoupled=False``) or AdamW (``decoupled=True``) with torch's defaults.

    Args:
        params: tensors, or groups ``{"params": [...], "lr": ...}`` as ``torch.optim`` takes.
        lr: learning rate of groups that do not set their own.
        weight_decay: L2 penalty (Adam) or decoupled decay (AdamW).
        decoupled: AdamW when true.
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params: Iterable[Any], *, lr: float, weight_decay: float,
                 decoupled: bool) -> None:
        items = list(params)
        groups = items if items and isinstance(items[0], dict) else [{"params": items}]
        self.param_groups: list[dict[str, Any]] = [
            {"params": list(g["params"]), "lr": float(g.get("lr", lr)),
             "weight_decay": float(g.get("weight_decay", weight_decay))} for g in groups]
        self.decoupled = decoupled
        #: per parameter: step count, first and second moment (created at its first step)
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        eps = self.eps
        for group in self.param_groups:
            lr, weight_decay = group["lr"], group["weight_decay"]
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                state = self.state.get(param)
                if state is None:
                    state = self.state[param] = {
                        "step": 0,
                        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(param,
                                                       memory_format=torch.preserve_format),
                    }
                state["step"] += 1
                step = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                if weight_decay != 0:
                    if self.decoupled:
                        param.mul_(1 - lr * weight_decay)
                    else:
                        grad = grad.add(param, alpha=weight_decay)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                # torch keeps the step as a float tensor and reads it back as a Python float
                step_value = float(step)
                bias_correction1 = 1 - beta1**step_value
                bias_correction2 = 1 - beta2**step_value
                step_size = lr / bias_correction1
                bias_correction2_sqrt = bias_correction2**0.5
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)
