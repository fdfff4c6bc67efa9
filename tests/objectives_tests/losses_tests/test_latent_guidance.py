"""LatentG ("latent_guidance", fixed) and the repository's "tversky" and "dice" losses.

The LatentG checks adapt the reference code's property tests (docs/references.md) to the fixed
version: the distance term is no longer a zero sum of z-scores, the guidance term now has a
gradient, and epoch 0 is still CE + gamma * MSE exactly.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from losstune.objectives.losses import LOSSES, Batch, DiceLoss, LatentGuidanceLoss, TverskyLoss
from losstune.objectives.losses.latent_guidance import guidance_terms
from losstune.objectives.models.outputs import ModelOutputs


def _tensors(b: int = 5, seed: int = 0, grad: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, leaf: bool = True) -> torch.Tensor:
        t = torch.randn(*shape, generator=g, dtype=torch.float64)
        return t.requires_grad_() if (grad and leaf) else t

    return {
        "logits": r(b, 3),
        "labels": torch.arange(b) % 3,
        "latents": r(b, 4),
        "reconstruction": r(b, 6),
        "inputs": r(b, 6, leaf=False),
        "teacher_latents": r(b, 4, leaf=False),
        "teacher_logits": r(b, 3, leaf=False),
    }


def _compute(loss: LatentGuidanceLoss, t: dict, **kw: float) -> dict[str, torch.Tensor]:
    return loss.compute(t["logits"], t["labels"], t["latents"], t["reconstruction"],
                        t["inputs"], t["teacher_latents"], t["teacher_logits"], **kw)


def loop_loss(t: dict, *, alpha: float, beta: float, gamma: float, sigma: float,
              r: float) -> float:
    """The fixed LatentG loss with explicit loops."""
    z, o = t["latents"].tolist(), t["logits"].tolist()
    zt, ot = t["teacher_latents"].tolist(), t["teacher_logits"].tolist()
    y = t["labels"].tolist()
    b = len(o)
    ce = 0.0
    for i in range(b):
        top = max(o[i])
        ce += top + math.log(sum(math.exp(v - top) for v in o[i])) - o[i][y[i]]
    ce /= b
    latent = distance = 0.0
    for i in range(b):
        s, tt = z[i] + o[i], zt[i] + ot[i]
        msd = sum((u - v) ** 2 for u, v in zip(s, tt, strict=True)) / len(s)
        latent += 1.0 - math.exp(-msd / (2 * sigma**2))
        distance += math.sqrt(sum((u - v) ** 2 for u, v in zip(o[i], ot[i], strict=True)))
    g = alpha * latent / b + beta * distance / b
    rec, x = t["reconstruction"].tolist(), t["inputs"].tolist()
    mse = sum((u - v) ** 2 for i in range(b) for u, v in zip(rec[i], x[i], strict=True)) / (
        b * len(x[0]))
    return ce * (1 + r * g) + gamma * mse


@pytest.mark.parametrize("progress", [0.0, 0.4, 1.0])
def test_matches_explicit_loop(progress: float) -> None:
    t = _tensors()
    loss = LatentGuidanceLoss(alpha=0.7, beta=0.3, gamma=10.0, sigma=0.8)
    total = sum(_compute(loss, t, progress=progress).values())
    expected = loop_loss(t, alpha=0.7, beta=0.3, gamma=10.0, sigma=0.8, r=progress)
    assert float(total.detach()) == pytest.approx(expected, abs=1e-9)


def test_epoch_zero_is_ce_plus_reconstruction_exactly() -> None:
    """At epoch 0 the loss is CE + gamma * MSE exactly, unchanged by the fix."""
    t = _tensors()
    loss = LatentGuidanceLoss()
    loss.on_epoch_start(0, 10)
    terms = _compute(loss, t)
    expected = F.cross_entropy(t["logits"], t["labels"]) + 75.0 * F.mse_loss(
        t["reconstruction"], t["inputs"])
    torch.testing.assert_close(sum(terms.values()), expected, rtol=0, atol=0)
    assert float(terms["guidance"].detach()) == 0.0


def test_epoch_ramp_follows_on_epoch_start() -> None:
    t = _tensors()
    loss = LatentGuidanceLoss()
    values = []
    for epoch in range(4):
        loss.on_epoch_start(epoch, 4)
        values.append(float(_compute(loss, t)["guidance"].detach()))
    assert values[0] == 0.0
    assert values[2] == pytest.approx(2 * values[1]) and values[3] == pytest.approx(3 * values[1])
    flat = LatentGuidanceLoss(ramp=False)
    flat.on_epoch_start(0, 4)
    assert float(_compute(flat, t)["guidance"].detach()) == pytest.approx(4 * values[1])


def test_distance_term_is_not_a_zero_sum() -> None:
    """The reference's distance term was the bug: a sum of z-scores is ~0. The fixed term is
    the mean Euclidean distance, non-zero and finite even for a batch of one."""
    t = _tensors(b=6, grad=False)
    d = torch.linalg.vector_norm(t["logits"] - t["teacher_logits"], dim=1)
    upstream = ((d - d.mean()) / d.std()).sum()
    assert abs(float(upstream)) < 1e-5 * 6  # the reference's term: identically zero
    _, distance = guidance_terms(t["latents"], t["logits"], t["teacher_latents"],
                                 t["teacher_logits"], sigma=1.0)
    assert float(distance) == pytest.approx(float(d.mean()), abs=1e-9)
    assert float(distance) > 0.1
    one = _tensors(b=1)
    total = sum(_compute(LatentGuidanceLoss(), one, progress=0.5).values())
    assert math.isfinite(float(total.detach()))


def test_guidance_gradient_flows_into_the_latent() -> None:
    """The reference's guidance term carried no gradient: the latent never moved. Here it
    does, and autograd matches finite differences."""
    t = _tensors()
    loss = LatentGuidanceLoss(alpha=0.5, beta=0.5, gamma=75.0)
    total = sum(_compute(loss, t, progress=0.5).values())
    g_latent, g_logits = torch.autograd.grad(total, [t["latents"], t["logits"]])
    assert g_latent.abs().sum() > 0 and torch.isfinite(g_latent).all()
    # d total / d latents = r * CE * alpha * d latent_term / d latents
    t2 = {k: (v.detach().requires_grad_() if v.requires_grad else v) for k, v in t.items()}
    ce = F.cross_entropy(t2["logits"], t2["labels"]).detach()
    latent, _ = guidance_terms(t2["latents"], t2["logits"], t2["teacher_latents"],
                               t2["teacher_logits"], sigma=1.0)
    (manual,) = torch.autograd.grad(0.5 * ce * 0.5 * latent, t2["latents"])
    torch.testing.assert_close(g_latent, manual)

    def f(lat: torch.Tensor, logits: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
        parts = loss.compute(logits, t["labels"], lat, rec, t["inputs"], t["teacher_latents"],
                             t["teacher_logits"], progress=0.5)
        return sum(parts.values())

    assert torch.autograd.gradcheck(f, (t["latents"], t["logits"], t["reconstruction"]))


def test_no_clamp_so_large_losses_still_have_gradients() -> None:
    """The reference clamped the guidance to [0, 3]: above 3 every gradient was
    zero. Without the clamp a large loss keeps its gradient."""
    t = _tensors()
    t["teacher_logits"] = t["teacher_logits"] + 20.0
    total = sum(_compute(LatentGuidanceLoss(), t, progress=1.0).values())
    assert float(total.detach()) > 3.0
    grads = torch.autograd.grad(total, [t["logits"], t["latents"], t["reconstruction"]])
    assert all(g.abs().sum() > 0 for g in grads)


def test_matching_teacher_has_finite_gradient() -> None:
    t = _tensors()
    t["teacher_logits"] = t["logits"].detach().clone()
    t["teacher_latents"] = t["latents"].detach().clone()
    total = sum(_compute(LatentGuidanceLoss(), t, progress=1.0).values())
    grads = torch.autograd.grad(total, [t["logits"], t["latents"]])
    assert all(torch.isfinite(g).all() for g in grads)


def test_forward_reads_the_declared_outputs() -> None:
    t = _tensors()
    loss = LOSSES["latent_guidance"]()
    assert loss.requires == {"logits", "latents", "reconstruction", "inputs", "teacher_latents",
                             "teacher_logits"}
    outputs = ModelOutputs(logits=t["logits"], extras={
        k: t[k] for k in ("latents", "reconstruction", "inputs", "teacher_latents",
                          "teacher_logits")})
    batch = Batch(index=torch.arange(5), y=t["labels"], y_multi=F.one_hot(t["labels"]).double())
    loss.on_epoch_start(2, 4)
    terms = loss(outputs, batch)
    assert set(terms) == {"ce", "guidance", "reconstruction"}
    expected = loop_loss(t, alpha=0.5, beta=0.5, gamma=75.0, sigma=1.0, r=0.5)
    assert float(sum(terms.values()).detach()) == pytest.approx(expected, abs=1e-9)


def test_latent_guidance_argument_errors() -> None:
    with pytest.raises(ValueError, match=re.escape("`alpha >= 0` must hold, but got alpha=-1.0.")):
        LatentGuidanceLoss(alpha=-1.0)
    with pytest.raises(ValueError, match=re.escape("`sigma > 0` must hold")):
        LatentGuidanceLoss(sigma=0.0)
    with pytest.raises(ValueError, match=re.escape("`gamma >= 0` must hold")):
        LatentGuidanceLoss(gamma=-5.0)


# ---------------------------------------------------------------- Tversky and Dice


def loop_overlap(logits: list, labels: list, alpha: float, beta: float, eps: float,
                 dice: bool = False) -> float:
    c = len(logits[0])
    probs = []
    for row in logits:
        top = max(row)
        e = [math.exp(v - top) for v in row]
        probs.append([v / sum(e) for v in e])
    scores = []
    for k in range(c):
        tp = sum(p[k] for p, y in zip(probs, labels, strict=True) if y == k)
        fp = sum(p[k] for p, y in zip(probs, labels, strict=True) if y != k)
        fn = sum(1 - p[k] for p, y in zip(probs, labels, strict=True) if y == k)
        if dice:
            scores.append((2 * tp + eps) / (2 * tp + fp + fn + eps))
        else:
            scores.append((tp + eps) / (tp + alpha * fp + beta * fn + eps))
    return 1.0 - sum(scores) / c


CASES = {
    "random": (torch.arange(6) % 3, None),
    "no_positives": (torch.tensor([0, 1, 0, 1, 0, 1]), None),  # class 2 absent
    "batch_of_one": (torch.tensor([2]), 1),
    "one_class": (torch.zeros(6, dtype=torch.long), "one"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("which", ["tversky", "dice"])
def test_overlap_losses_match_loops(case: str, which: str) -> None:
    labels, special = CASES[case]
    g = torch.Generator().manual_seed(1)
    c = 1 if special == "one" else 3
    logits = torch.randn(len(labels), c, generator=g, dtype=torch.float64, requires_grad=True)
    if which == "tversky":
        loss = TverskyLoss(alpha=0.3, beta=0.7)
        expected = loop_overlap(logits.tolist(), labels.tolist(), 0.3, 0.7, 1e-7)
    else:
        loss = DiceLoss()
        expected = loop_overlap(logits.tolist(), labels.tolist(), 0, 0, 1e-6, dice=True)
    value = loss.compute(logits, labels)
    assert float(value.detach()) == pytest.approx(expected, abs=1e-9)
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.isfinite(grad).all()


def test_tversky_half_half_is_dice() -> None:
    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    labels = torch.arange(8) % 4
    t = TverskyLoss(alpha=0.5, beta=0.5, eps=1e-12).compute(logits, labels)
    d = DiceLoss(eps=1e-12).compute(logits, labels)
    torch.testing.assert_close(t, d, rtol=0, atol=1e-9)
    perfect = torch.nn.functional.one_hot(labels, 4).double() * 50.0
    assert float(DiceLoss().compute(perfect, labels)) == pytest.approx(0.0, abs=1e-9)


def test_overlap_argument_errors() -> None:
    with pytest.raises(ValueError, match=re.escape("`alpha >= 0` must hold, but got alpha=-0.5.")):
        TverskyLoss(alpha=-0.5)
    with pytest.raises(ValueError, match=re.escape("`eps > 0` must hold")):
        DiceLoss(eps=0.0)
    assert LOSSES["tversky"] is TverskyLoss and LOSSES["dice"] is DiceLoss
