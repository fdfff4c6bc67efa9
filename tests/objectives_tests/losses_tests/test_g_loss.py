"""G-Loss ("g_loss"): graph construction, closed-form label propagation, both variants."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from losstune.objectives.config import TrialConfig
from losstune.objectives.losses import LOSSES, GLoss
from losstune.objectives.losses.g_loss import label_mask, propagate_labels, propagation_matrix
from losstune.objectives.training import run_trial

# The G-Loss toy problem of docs/references.md: four labelled and two unlabelled embeddings, C = 2
EMB = torch.tensor([[1, 0.1], [0.9, 0.3], [0.1, 1], [-0.2, 0.9], [0.8, 0.2], [0, 1]],
                   dtype=torch.float64)
LABELS = torch.tensor([0, 0, 1, 1, 0, 1])
LABELLED = torch.tensor([True, True, True, True, False, False])
REFERENCE = {
    0.5: ([[0.935274, 0.064726], [0.063461, 0.936539]], 0.066240, 0.349383, 0.174692),
    1.0: ([[0.643654, 0.356346], [0.357086, 0.642914]], 0.441169, 0.560093, 0.280047),
}


def loop_transition(emb: list[list[float]], sigma: float) -> list[list[float]]:
    """The reference's operator with explicit loops (numpy only for nothing)."""
    h = [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in emb]
    n = len(h)
    w = [[0.0 if i == j else math.exp(-sum((a - b) ** 2 for a, b in zip(h[i], h[j],
                                                                        strict=True))
                                       / (2 * sigma**2)) for j in range(n)] for i in range(n)]
    a = [[w[i][j] + w[j][i] for j in range(n)] for i in range(n)]
    d = [sum(row) ** -0.5 for row in a]
    s = [[d[i] * a[i][j] * d[j] for j in range(n)] for i in range(n)]
    col = [sum(s[i][j] for i in range(n)) for j in range(n)]
    s = [[s[i][j] / col[j] for j in range(n)] for i in range(n)]
    return [[v / sum(row) for v in row] for row in s]


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_reference_vectors(sigma: float) -> None:
    f_ref, nll, ce_logits, ce_div = REFERENCE[sigma]
    f_u = propagate_labels(propagation_matrix(EMB, sigma), LABELS, LABELLED, 2)
    torch.testing.assert_close(f_u, torch.tensor(f_ref, dtype=torch.float64), rtol=0, atol=1e-6)
    paper = GLoss(sigma=sigma, variant="paper").graph_term(EMB, LABELS, LABELLED, 2)
    faithful = GLoss(sigma=sigma, variant="faithful").graph_term(EMB, LABELS, LABELLED, 2)
    assert float(paper) == pytest.approx(nll, abs=1e-6)
    assert float(faithful) == pytest.approx(ce_div, abs=1e-6)
    # the code's CE on probabilities before its extra division by |U| = 2
    assert float(F.cross_entropy(f_u, LABELS[4:])) == pytest.approx(ce_logits, abs=1e-6)


@pytest.mark.parametrize("sigma", [0.3, 0.5, 2.0])
def test_operator_and_propagation_match_loops(sigma: float) -> None:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(7, 4, generator=g, dtype=torch.float64)
    t = propagation_matrix(emb, sigma)
    torch.testing.assert_close(t, torch.tensor(loop_transition(emb.tolist(), sigma),
                                               dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(t.sum(1), torch.ones(7, dtype=torch.float64))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    lab = torch.tensor([1, 1, 1, 0, 1, 0, 0]).bool()
    f_u = propagate_labels(t, labels, lab, 3).numpy()
    tn = t.numpy()
    u, l_ = np.where(~lab.numpy())[0], np.where(lab.numpy())[0]
    y_l = np.eye(3)[labels.numpy()[l_]]
    # the harmonic solution is the fixed point of F_U = T_UU F_U + T_UL Y_L
    f = np.zeros((len(u), 3))
    for _ in range(5000):
        f = tn[np.ix_(u, u)] @ f + tn[np.ix_(u, l_)] @ y_l
    np.testing.assert_allclose(f_u, f, atol=1e-9)
    np.testing.assert_allclose(f_u.sum(1), 1.0, atol=1e-12)


def test_paper_variant_is_nll_and_mixes_with_ce() -> None:
    logits = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = GLoss(sigma=0.5, lam=0.8)
    terms = loss.compute(logits, EMB, LABELS, LABELLED)
    assert set(terms) == {"ce", "graph"}
    assert float(terms["ce"]) == pytest.approx(0.2 * float(F.cross_entropy(logits, LABELS)))
    assert float(terms["graph"]) == pytest.approx(0.8 * 0.066240, abs=1e-6)
    ce_only = GLoss(lam=0.0).compute(logits, EMB, LABELS, LABELLED)
    assert float(ce_only["graph"]) == 0.0
    assert float(ce_only["ce"]) == pytest.approx(float(F.cross_entropy(logits, LABELS)))
    standalone = GLoss(sigma=0.5, lam=1.0).compute(logits, EMB, LABELS, LABELLED)
    assert float(standalone["ce"]) == 0.0


def test_faithful_uses_balanced_class_weights() -> None:
    counts = [30, 10]  # sklearn "balanced": N / (C n_c) = [0.667, 2.0]
    logits = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    loss = GLoss(sigma=0.5, lam=0.5, variant="faithful", class_counts=counts)
    w = torch.tensor([40 / 60, 40 / 20], dtype=torch.float64)
    terms = loss.compute(logits, EMB, LABELS, LABELLED)
    ce_w = F.cross_entropy(logits, LABELS, weight=w)
    assert float(terms["ce"]) == pytest.approx(0.5 * float(ce_w))
    f_u = propagate_labels(propagation_matrix(EMB, 0.5), LABELS, LABELLED, 2)
    g = F.cross_entropy(f_u, LABELS[4:], weight=w) / 2
    assert float(terms["graph"]) == pytest.approx(0.5 * float(g))
    # the paper variant ignores class weights
    paper = GLoss(sigma=0.5, lam=0.5, class_counts=counts).compute(logits, EMB, LABELS, LABELLED)
    assert float(paper["ce"]) == pytest.approx(0.5 * float(F.cross_entropy(logits, LABELS)))


def test_unreachable_class_is_left_out_of_the_paper_nll() -> None:
    """A class in U with no labelled example gets no mass whatever the embeddings."""
    labels = torch.tensor([0, 0, 0, 0, 0, 1])  # class 1 only in U
    f_u = propagate_labels(propagation_matrix(EMB, 0.5), labels, LABELLED, 2)
    assert float(f_u[1, 1]) == 0.0
    value = GLoss(sigma=0.5).graph_term(EMB, labels, LABELLED, 2)
    expected = -math.log(float(f_u[0, 0]))  # only the reachable U example counts
    assert float(value) == pytest.approx(expected, abs=1e-12)
    faithful = GLoss(sigma=0.5, variant="faithful").graph_term(EMB, labels, LABELLED, 2)
    assert math.isfinite(float(faithful))


def test_small_sigma_is_finite_in_float64() -> None:
    """The reference builds the kernel in float32, where sigma 0.1 underflows."""
    emb = EMB.float().requires_grad_()
    value = GLoss(sigma=0.1).graph_term(emb, LABELS, LABELLED, 2)
    (grad,) = torch.autograd.grad(value, emb)
    assert math.isfinite(float(value.detach())) and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def test_edge_cases() -> None:
    emb = EMB.clone().requires_grad_()
    logits = torch.zeros(6, 2, dtype=torch.float64, requires_grad=True)
    everyone = torch.ones(6, dtype=torch.bool)
    terms = GLoss().compute(logits, emb, LABELS, everyone)  # nothing hidden: no graph term
    assert float(terms["graph"].detach()) == 0.0
    one = GLoss().compute(logits[:1], emb[:1], LABELS[:1])  # batch of one
    total = one["ce"] + one["graph"]
    grads = torch.autograd.grad(total, [logits, emb], allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    single = GLoss(sigma=0.5).compute(logits, emb, torch.zeros(6, dtype=torch.long), LABELLED)
    assert float(single["graph"].detach()) == pytest.approx(0.0, abs=1e-12)  # one class: F_U=1


def test_label_mask_fraction_and_reproducibility() -> None:
    torch.manual_seed(3)
    a = label_mask(128, 0.7)
    torch.manual_seed(3)
    b = label_mask(128, 0.7)
    assert torch.equal(a, b)
    assert int(a.sum()) == 90  # ranks 0..89 are < 0.7 * 128 = 89.6
    assert int(label_mask(10, 0.5).sum()) == 5
    torch.manual_seed(4)
    assert not torch.equal(label_mask(128, 0.7), a)


def test_gradient_reaches_labelled_and_unlabelled_embeddings() -> None:
    emb = EMB.clone().requires_grad_()
    value = GLoss(sigma=0.5).graph_term(emb, LABELS, LABELLED, 2)
    (grad,) = torch.autograd.grad(value, emb)
    assert torch.isfinite(grad).all()
    assert grad[LABELLED].abs().sum() > 0 and grad[~LABELLED].abs().sum() > 0


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match=re.escape("`sigma > 0` must hold, but got sigma=0.0.")):
        GLoss(sigma=0.0)
    with pytest.raises(ValueError, match=re.escape("`0 < gamma < 1` must hold")):
        GLoss(gamma=1.0)
    with pytest.raises(ValueError, match=re.escape("`0 <= lam <= 1` must hold")):
        GLoss(lam=1.5)
    with pytest.raises(ValueError, match="variant must be one of"):
        GLoss(variant="code")  # type: ignore[arg-type]
    assert LOSSES["g_loss"] is GLoss


def _config(seed: int = 0) -> TrialConfig:
    return TrialConfig(
        data={"name": "synthetic"},
        encoder={"name": "hashing"},
        model={"head": "projection", "params": {"embedding_dim": 32}},
        loss={"terms": [{"name": "g_loss", "params": {"sigma": 0.5}}]},
        train={"epochs": 3, "lr": 0.02, "threads": 1, "seed": seed},
    )


def test_training_replays_exactly_and_logs_both_terms() -> None:
    """The label mask comes from torch's global RNG, which run_trial seeds: replays match."""
    a = run_trial(_config())
    b = run_trial(_config())
    assert a.curves == b.curves and a.value == b.value
    assert set(a.terms) == {"g_loss.ce", "g_loss.graph"}
    assert all(math.isfinite(v) for v in a.terms.values())
    c = run_trial(_config(seed=1))
    assert c.curves["term_g_loss.graph"] != a.curves["term_g_loss.graph"]


def test_small_sigma_with_isolated_unlabelled_group_does_not_crash() -> None:
    # two unlabelled rows of class 1 far from both labelled rows (class 0): with sigma 0.1 the
    # kernel gives I - T_UU no usable edge to the labelled set; the solve must stay defined.
    emb = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.01, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    labelled = torch.tensor([True, True, False, False])
    f_u = propagate_labels(propagation_matrix(emb, 0.1), labels, labelled, 2)
    assert torch.isfinite(f_u).all()
    loss = GLoss(sigma=0.1, gamma=0.5, lam=0.8)
    torch.manual_seed(0)
    z = torch.randn(4, 2, requires_grad=True)
    terms = loss.compute(z, emb.float().requires_grad_(), labels, labelled)
    assert all(torch.isfinite(t) for t in terms.values())
