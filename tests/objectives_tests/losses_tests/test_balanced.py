"""The balanced BCE family (bce, focal, cb, r_focal, ntr_focal, db_no_focal, cb_ntr, db).

Each loss is recomputed entry by entry with Python floats (float64) from the formulas in
Huang et al. (2021), compared with the reference values of docs/references.md (the balanced-loss
toy problem), and checked on degenerate settings and edge cases.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from losstune.objectives.losses import (
    Batch,
    BCELoss,
    CBNTRLoss,
    ClassBalancedLoss,
    DBNoFocalLoss,
    DistributionBalancedLoss,
    FocalLoss,
    NTRFocalLoss,
    RebalancedFocalLoss,
    WeightedSum,
)
from losstune.objectives.models.outputs import ModelOutputs

# ---------------------------------------------------------------- reference loop (float64)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _bce(z: float, y: float) -> float:
    # numerically stable -[y log s(z) + (1-y) log(1-s(z))]
    return max(z, 0.0) - z * y + math.log1p(math.exp(-abs(z)))


def loop_loss(
    z: list[list[float]],
    y: list[list[float]],
    *,
    counts: list[float] | None = None,
    n_train: int | None = None,
    weighting: str | None = None,
    cb_beta: float = 0.9,
    map_abm: tuple[float, float, float] = (0.1, 10.0, 0.9),
    ntr: tuple[float, float] | None = None,
    gamma: float | None = None,
    focal_alpha: float | None = 0.5,
    loss_weight: float = 1.0,
) -> float:
    """The family's loss, one entry at a time."""
    total, n = 0.0, 0
    for b, row in enumerate(z):
        rho = sum(1.0 / counts[j] for j, t in enumerate(y[b]) if t > 0.5) if counts else 0.0
        for c, logit in enumerate(row):
            t = y[b][c]
            w = None
            if weighting == "cb":
                w = (1.0 - cb_beta) / (1.0 - cb_beta ** counts[c])
            elif weighting == "rebalance":
                a, be, mu = map_abm
                r = (1.0 / counts[c]) / rho if rho > 0 else math.inf
                w = a + (1.0 if math.isinf(r) else _sigmoid(be * (r - mu)))
            zz = logit
            if ntr is not None:
                kappa, lam = ntr
                zz = zz - kappa * math.log(n_train / counts[c] - 1.0)
                if t < 0.5:
                    zz = lam * zz
                    if w is not None:
                        w = w / lam
            ell = _bce(zz, t)
            value = ell if w is None else w * ell
            if gamma is not None:
                p_t = math.exp(-ell)
                factor = (1.0 - p_t) ** gamma
                if focal_alpha is not None:
                    factor *= focal_alpha if t > 0.5 else 1.0 - focal_alpha
                value *= factor
            total += value
            n += 1
    return loss_weight * total / n


# The balanced-loss toy problem of docs/references.md, Reuters parameters.
Z = [[1.0, -0.5, 0.2], [-1.0, 0.3, 2.0]]
Y = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
COUNTS = [100.0, 10.0, 2.0]
N_TRAIN = 200

# name -> (constructor, loop settings, reference value from docs/references.md)
FAMILY = {
    "bce": (lambda: BCELoss(), {}, 0.730004),
    "focal": (lambda: FocalLoss(), {"gamma": 2.0}, 0.165381),
    "cb": (lambda: ClassBalancedLoss(class_counts=COUNTS),
           {"weighting": "cb", "gamma": 2.0, "loss_weight": 10.0}, 0.802149),
    "r_focal": (lambda: RebalancedFocalLoss(class_counts=COUNTS),
                {"weighting": "rebalance", "gamma": 2.0}, 0.167145),
    "ntr_focal": (lambda: NTRFocalLoss(class_counts=COUNTS, num_train=N_TRAIN),
                  {"ntr": (0.05, 2.0), "gamma": 2.0}, 0.310079),
    "db_no_focal": (lambda: DBNoFocalLoss(class_counts=COUNTS, num_train=N_TRAIN),
                    {"weighting": "rebalance", "ntr": (0.05, 2.0), "loss_weight": 0.5}, 0.257328),
    "cb_ntr": (lambda: CBNTRLoss(class_counts=COUNTS, num_train=N_TRAIN),
               {"weighting": "cb", "ntr": (0.05, 2.0), "gamma": 2.0, "loss_weight": 10.0},
               0.838766),
    "db": (lambda: DistributionBalancedLoss(class_counts=COUNTS, num_train=N_TRAIN),
           {"weighting": "rebalance", "ntr": (0.05, 2.0), "gamma": 2.0}, 0.175908),
}


def _t(rows: list[list[float]], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(rows, dtype=dtype)


@pytest.mark.parametrize("name", list(FAMILY))
def test_reference_vector(name: str) -> None:
    make, _, expected = FAMILY[name]
    loss = make()
    assert loss.name == name
    value = float(loss.compute(_t(Z, torch.float32), _t(Y, torch.float32)))
    assert value == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", list(FAMILY))
def test_loop_recomputation_toy(name: str) -> None:
    make, settings, expected = FAMILY[name]
    looped = loop_loss(Z, Y, counts=COUNTS, n_train=N_TRAIN, **settings)
    assert looped == pytest.approx(expected, abs=1e-6)  # the loop reproduces the reference too
    assert float(make().compute(_t(Z), _t(Y))) == pytest.approx(looped, abs=1e-6)


@pytest.mark.parametrize("name", list(FAMILY))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loop_recomputation_random(name: str, dtype: torch.dtype) -> None:
    """A random 4x5 multi-label batch with non-default knobs, against the loop."""
    g = torch.Generator().manual_seed(7)
    z = (torch.randn(4, 5, generator=g, dtype=torch.float64) * 2).tolist()
    y = (torch.rand(4, 5, generator=g, dtype=torch.float64) < 0.4).double()
    y[0, 0] = 1.0
    y = y.tolist()
    counts = [300.0, 40.0, 12.0, 5.0, 1.0]
    n_train = 500
    cls = type(FAMILY[name][0]())
    knobs = {"gamma": 1.5, "focal_alpha": 0.3, "beta": 0.99, "alpha": 0.2, "mu": 0.5,
             "kappa": 0.1, "lam": 3.0, "loss_weight": 2.0}
    valid = set(cls.hyperparameters())
    kw = {k: v for k, v in knobs.items() if k in valid}
    if name in ("r_focal", "db_no_focal", "db"):
        kw["beta"] = 5.0  # the rebalancing steepness
    ctx = {"class_counts": counts, "num_train": n_train}
    loss = cls(**kw, **{k: v for k, v in ctx.items() if k in cls.context_arguments()})
    _, settings, _ = FAMILY[name]
    loop_kw: dict = {"weighting": settings.get("weighting"), "loss_weight": 2.0}
    if "gamma" in kw:
        loop_kw.update(gamma=1.5, focal_alpha=0.3)
    if settings.get("weighting") == "cb":
        loop_kw["cb_beta"] = 0.99
    if settings.get("weighting") == "rebalance":
        loop_kw["map_abm"] = (0.2, 5.0, 0.5)
    if "ntr" in settings:
        loop_kw["ntr"] = (0.1, 3.0)
    expected = loop_loss(z, y, counts=counts, n_train=n_train, **loop_kw)
    got = loss.compute(_t(z, dtype), _t(y, dtype))
    assert got.dtype == dtype
    tol = 1e-6 if dtype == torch.float64 else 1e-5
    assert float(got) == pytest.approx(expected, abs=tol, rel=tol)


# ---------------------------------------------------------------- degenerate equivalences


def test_focal_gamma0_without_alpha_is_bce() -> None:
    z, y = _t(Z), _t(Y)
    a = FocalLoss(gamma=0.0, focal_alpha=None).compute(z, y)
    torch.testing.assert_close(a, BCELoss().compute(z, y), rtol=0, atol=1e-12)


def test_focal_gamma0_reference_alpha_halves_bce() -> None:
    """The reference's alpha 0.5 is a constant halving, not a class balance."""
    z, y = _t(Z), _t(Y)
    a = FocalLoss(gamma=0.0, focal_alpha=0.5).compute(z, y)
    torch.testing.assert_close(a, 0.5 * BCELoss().compute(z, y), rtol=0, atol=1e-12)


def test_cb_beta0_is_focal_with_unit_weights() -> None:
    z, y = _t(Z), _t(Y)
    cb = ClassBalancedLoss(beta=0.0, loss_weight=1.0, class_counts=COUNTS).compute(z, y)
    torch.testing.assert_close(cb, FocalLoss().compute(z, y), rtol=0, atol=1e-12)
    cb0 = ClassBalancedLoss(beta=0.0, gamma=0.0, focal_alpha=None, loss_weight=1.0,
                            class_counts=COUNTS)
    torch.testing.assert_close(cb0.compute(z, y), BCELoss().compute(z, y), rtol=0, atol=1e-12)


def test_ntr_identity_settings_give_focal() -> None:
    z, y = _t(Z), _t(Y)
    ntr = NTRFocalLoss(kappa=0.0, lam=1.0, class_counts=COUNTS, num_train=N_TRAIN)
    torch.testing.assert_close(ntr.compute(z, y), FocalLoss().compute(z, y), rtol=0, atol=1e-12)


def test_db_without_focal_is_db_no_focal() -> None:
    z, y = _t(Z), _t(Y)
    db = DistributionBalancedLoss(gamma=0.0, focal_alpha=None, loss_weight=0.5,
                                  class_counts=COUNTS, num_train=N_TRAIN)
    ref = DBNoFocalLoss(class_counts=COUNTS, num_train=N_TRAIN)
    torch.testing.assert_close(db.compute(z, y), ref.compute(z, y), rtol=0, atol=1e-12)


def _outputs_batch(z: torch.Tensor, y: torch.Tensor) -> tuple[ModelOutputs, Batch]:
    return ModelOutputs(logits=z), Batch(index=torch.arange(len(z)), y=None, y_multi=y)


def test_zero_weight_leaves_weighted_sum_unchanged() -> None:
    z, y = _t(Z).requires_grad_(), _t(Y)
    outputs, batch = _outputs_batch(z, y)
    alone = WeightedSum([FocalLoss()], {})
    both = WeightedSum([FocalLoss(), BCELoss()], {"bce": 0.0})
    total_a, _ = alone(outputs, batch)
    total_b, terms = both(outputs, batch)
    torch.testing.assert_close(total_a, total_b, rtol=0, atol=0)
    assert float(terms["bce"].detach()) == pytest.approx(0.730004, abs=1e-6)  # still logged
    grad_a = torch.autograd.grad(total_a, z)[0]
    grad_b = torch.autograd.grad(both(outputs, batch)[0], z)[0]
    torch.testing.assert_close(grad_a, grad_b, rtol=0, atol=0)
    weighted = WeightedSum([FocalLoss(), BCELoss()], {"bce": 0.25})(outputs, batch)[0]
    assert float(weighted.detach()) == pytest.approx(0.165381 + 0.25 * 0.730004, abs=1e-6)


# ---------------------------------------------------------------- edge cases


def _loss(name: str, counts: list[float], n_train: int):  # noqa: ANN202
    cls = type(FAMILY[name][0]())
    ctx = {"class_counts": counts, "num_train": n_train}
    return cls(**{k: v for k, v in ctx.items() if k in cls.context_arguments()})


def _settings(name: str) -> dict:
    return dict(FAMILY[name][1])


@pytest.mark.parametrize("name", list(FAMILY))
@pytest.mark.parametrize(
    "case",
    ["no_positives", "all_positive", "batch_of_one", "one_class", "absent_class"],
)
def test_edge_cases_match_loop_and_have_finite_gradients(name: str, case: str) -> None:
    g = torch.Generator().manual_seed(3)
    counts, n_train = [50.0, 20.0, 5.0, 1.0], 120
    z = torch.randn(3, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.float64)
    if case == "no_positives":
        y = torch.zeros_like(y)
    elif case == "all_positive":
        y = torch.ones_like(y)
    elif case == "batch_of_one":
        z, y = z[:1], y[:1]
    elif case == "one_class":
        z, y, counts = z[:, :1], y[:, :1], [50.0]
    loop_counts = list(counts)
    if case == "absent_class":
        counts = [50.0, 20.0, 5.0, 0.0]  # a class with no training document counts as 1
        y[:, 3] = 0.0
    loss = _loss(name, counts, n_train)
    z = z.clone().requires_grad_()
    value = loss.compute(z, y)
    assert torch.isfinite(value)
    expected = loop_loss(z.detach().tolist(), y.tolist(), counts=loop_counts, n_train=n_train,
                         **_settings(name))
    assert float(value.detach()) == pytest.approx(expected, abs=1e-6)
    (grad,) = torch.autograd.grad(value, z)
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["r_focal", "db_no_focal", "db"])
def test_rebalance_beta0_with_empty_document_is_finite(name: str) -> None:
    loss = type(FAMILY[name][0]())(beta=0.0, **{
        k: v for k, v in {"class_counts": COUNTS, "num_train": N_TRAIN}.items()
        if k in type(FAMILY[name][0]()).context_arguments()})
    y = _t([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert torch.isfinite(loss.compute(_t(Z), y))
    # with beta = 0 every weight is alpha + sigmoid(0), the empty document's included
    from losstune.objectives.losses.parts import rebalanced_weight

    w = rebalanced_weight(y, torch.as_tensor(COUNTS, dtype=y.dtype), alpha=0.1, beta=0.0, mu=0.9)
    torch.testing.assert_close(w, torch.full_like(w, 0.6))
    # with beta > 0 the empty document (infinite ratio) gets alpha + 1
    w = rebalanced_weight(y, torch.as_tensor(COUNTS, dtype=y.dtype), alpha=0.1, beta=10.0, mu=0.9)
    torch.testing.assert_close(w[0], torch.full_like(w[0], 1.1))


def test_forward_reads_logits_and_multi_hot() -> None:
    z, y = _t(Z), _t(Y)
    outputs, batch = _outputs_batch(z, y)
    db = DistributionBalancedLoss(class_counts=COUNTS, num_train=N_TRAIN)
    assert float(db(outputs, batch)) == pytest.approx(0.175908, abs=1e-6)


def test_logits_are_not_modified_in_place() -> None:
    z = _t(Z)
    before = z.clone()
    NTRFocalLoss(class_counts=COUNTS, num_train=N_TRAIN).compute(z, _t(Y))
    torch.testing.assert_close(z, before, rtol=0, atol=0)


# ---------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FocalLoss(gamma=-1.0), "`gamma >= 0` must hold, but got gamma=-1.0."),
        (lambda: FocalLoss(focal_alpha=1.5), "`0 <= focal_alpha <= 1` must hold"),
        (lambda: BCELoss(loss_weight=0.0), "`loss_weight > 0` must hold, but got loss_weight=0.0"),
        (lambda: ClassBalancedLoss(beta=1.0, class_counts=COUNTS), "`0 <= beta < 1` must hold"),
        (lambda: RebalancedFocalLoss(alpha=-0.1, class_counts=COUNTS), "`alpha >= 0` must hold"),
        (lambda: RebalancedFocalLoss(mu=-1.0, class_counts=COUNTS), "`mu >= 0` must hold"),
        (lambda: NTRFocalLoss(lam=0.0, class_counts=COUNTS, num_train=10), "`lam > 0` must hold"),
        (lambda: NTRFocalLoss(kappa=-1.0, class_counts=COUNTS, num_train=10),
         "`kappa >= 0` must hold"),
        (lambda: DistributionBalancedLoss(class_counts=[-1.0, 2.0], num_train=10),
         "`every class_count >= 0` must hold"),
    ],
)
def test_argument_errors(make, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_missing_context_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs class_counts"):
        ClassBalancedLoss()
    with pytest.raises(ValueError, match="needs num_train"):
        DistributionBalancedLoss(class_counts=COUNTS)


@pytest.mark.parametrize("name", ["focal", "ntr_focal", "db"])
@pytest.mark.parametrize("gamma", [0.3, 0.5])
def test_focal_exponent_below_one_keeps_gradients_finite_on_saturated_logits(
        name: str, gamma: float) -> None:
    # (1 - p_t) underflows to exactly 0 in float32 for confident entries; its power below one
    # must not turn the gradient into inf * 0 = NaN.
    cls = type(FAMILY[name][0]())
    context = {k: v for k, v in {"class_counts": COUNTS, "num_train": N_TRAIN}.items()
               if k in cls.context_arguments()}
    loss = cls(gamma=gamma, **context)
    z = torch.tensor([[25.0, -25.0, -17.0], [-30.0, 20.0, -3.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    value = loss.compute(z, y)
    (grad,) = torch.autograd.grad(value, z)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
