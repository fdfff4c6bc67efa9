"""Deep-metric-learning terms ("triplet", "arcface"), the projection head and prediction rules.

The adapters are compared with pytorch-metric-learning called directly and with explicit loops
over triplets / examples in float64.
"""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, losses, miners

from losstune.objectives.config import TrialConfig
from losstune.objectives.losses import LOSSES, ArcFaceLoss, Batch, TripletLoss, WeightedSum
from losstune.objectives.models import MODELS, build_model
from losstune.objectives.models.outputs import ModelOutputs
from losstune.objectives.models.projection import ProjectionHead
from losstune.objectives.training import run_trial


def _data(seed: int = 0, b: int = 10, e: int = 5, c: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, e, generator=g, dtype=torch.float64)
    labels = torch.arange(b) % c
    return emb, labels


# ---------------------------------------------------------------- triplet


def loop_triplet(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> float:
    """All valid (a, p, n) triplets, squared L2 on normalised embeddings, mean of the positive
    losses (PML's AvgNonZeroReducer)."""
    x = [[t / math.sqrt(sum(u * u for u in v)) for t in v] for v in emb.tolist()]
    y = labels.tolist()

    def d2(i: int, j: int) -> float:
        return sum((a - b) ** 2 for a, b in zip(x[i], x[j], strict=True))

    values = []
    for a, p, n in itertools.product(range(len(x)), repeat=3):
        if a != p and y[a] == y[p] and y[n] != y[a]:
            values.append(max(d2(a, p) - d2(a, n) + margin, 0.0))
    positive = [v for v in values if v > 0]
    return sum(positive) / len(positive) if positive else 0.0


@pytest.mark.parametrize("margin", [0.1, 0.3, 1.0])
def test_triplet_all_matches_explicit_loop(margin: float) -> None:
    emb, labels = _data()
    got = TripletLoss(margin=margin, miner="all").compute(emb, labels)
    assert float(got) == pytest.approx(loop_triplet(emb, labels, margin), abs=1e-6)


@pytest.mark.parametrize("miner", ["all", "semi_hard", "batch_hard"])
@pytest.mark.parametrize("distance", ["squared_l2", "l2", "cosine"])
def test_triplet_matches_pml_directly(miner: str, distance: str) -> None:
    emb, labels = _data(1)
    dist = {
        "squared_l2": lambda: distances.LpDistance(power=2),
        "l2": lambda: distances.LpDistance(),
        "cosine": lambda: distances.CosineSimilarity(),
    }[distance]
    pml_loss = losses.TripletMarginLoss(margin=0.3, distance=dist())
    tuples = None
    if miner == "semi_hard":
        tuples = miners.TripletMarginMiner(margin=0.3, type_of_triplets="semihard",
                                           distance=dist())(emb, labels)
    elif miner == "batch_hard":
        tuples = miners.BatchHardMiner(distance=dist())(emb, labels)
    expected = pml_loss(emb, labels, tuples)
    got = TripletLoss(margin=0.3, miner=miner, distance=distance).compute(emb, labels)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_triplet_miners_differ_and_batch_hard_is_hardest() -> None:
    emb, labels = _data(2)
    values = {m: float(TripletLoss(margin=0.3, miner=m).compute(emb, labels))
              for m in ("all", "semi_hard", "batch_hard")}
    assert len(set(values.values())) == 3
    # batch-hard takes, per anchor, the hardest positive and negative: its triplets' mean loss
    # is at least the mean over all triplets with a positive loss
    assert values["batch_hard"] >= values["all"] - 1e-9


def test_triplet_edge_cases() -> None:
    emb, _ = _data(3, b=4)
    distinct = torch.tensor([0, 1, 2, 3])  # no positive pair: no triplet
    e = emb.clone().requires_grad_()
    value = TripletLoss().compute(e, distinct)
    assert float(value.detach()) == 0.0
    (grad,) = torch.autograd.grad(value, e)
    assert torch.isfinite(grad).all()
    one = TripletLoss().compute(emb[:1].clone().requires_grad_(), torch.tensor([0]))
    assert float(one.detach()) == 0.0
    same = torch.zeros(4, dtype=torch.long)  # one class: no negative
    assert float(TripletLoss().compute(emb, same)) == 0.0
    e = emb.clone().requires_grad_()
    value = TripletLoss(margin=1.0).compute(e, torch.tensor([0, 0, 1, 1]))
    (grad,) = torch.autograd.grad(value, e)
    assert float(value.detach()) > 0 and torch.isfinite(grad).all() and grad.abs().sum() > 0


# ---------------------------------------------------------------- ArcFace


def loop_arcface(emb: torch.Tensor, labels: torch.Tensor, w: torch.Tensor, margin_deg: float,
                 scale: float) -> float:
    m = math.radians(margin_deg)
    total = 0.0
    for b, row in enumerate(emb.tolist()):
        norm_e = math.sqrt(sum(v * v for v in row))
        logits = []
        for j in range(w.shape[1]):
            col = w[:, j].tolist()
            cos = sum(a * c for a, c in zip(row, col, strict=True)) / (
                norm_e * math.sqrt(sum(c * c for c in col)))
            if j == int(labels[b]):
                theta = math.acos(max(-1.0, min(1.0, cos)))
                cos = math.cos(theta + m) if theta <= math.pi - m else cos - m * math.sin(m)
            logits.append(scale * cos)
        top = max(logits)
        log_z = top + math.log(sum(math.exp(v - top) for v in logits))
        total += log_z - logits[int(labels[b])]
    return total / len(emb)


def test_arcface_margin_is_in_degrees_as_the_installed_pml() -> None:
    emb, labels = _data(4)
    loss = ArcFaceLoss(margin=28.6, scale=16.0, num_classes=3, embedding_dim=5).double()
    w = loss.proxies.detach().clone()
    expected = loop_arcface(emb, labels, w, 28.6, 16.0)
    assert float(loss.compute(emb, labels).detach()) == pytest.approx(expected, abs=1e-6)
    # the same number in radians would be a much larger margin
    assert loop_arcface(emb, labels, w, math.degrees(28.6), 16.0) != pytest.approx(expected)
    pml = losses.ArcFaceLoss(num_classes=3, embedding_size=5, margin=28.6, scale=16.0).double()
    pml.W.data.copy_(w)
    torch.testing.assert_close(loss.compute(emb, labels), pml(emb, labels), rtol=0, atol=1e-12)


def test_arcface_default_margin_is_point_three_radians() -> None:
    loss = ArcFaceLoss(num_classes=3, embedding_dim=5)
    assert loss.margin == pytest.approx(math.degrees(0.3))
    assert loss._loss.margin == pytest.approx(0.3)  # PML stores it in radians after init
    assert loss.scale == 8.0


def test_arcface_margin_zero_is_normalised_softmax_with_scale() -> None:
    emb, labels = _data(5)
    loss = ArcFaceLoss(margin=0.0, scale=8.0, num_classes=3, embedding_dim=5).double()
    w = loss.proxies.detach()
    cos = F.normalize(emb, dim=1) @ F.normalize(w, dim=0)
    expected = F.cross_entropy(8.0 * cos, labels)
    torch.testing.assert_close(loss.compute(emb, labels), expected, rtol=0, atol=1e-12)


def test_arcface_proxies_are_trained_parameters() -> None:
    loss = ArcFaceLoss(num_classes=3, embedding_dim=5)
    assert any(p is loss.proxies for p in loss.parameters())
    emb, labels = _data(6)
    value = loss.compute(emb.float(), labels)
    (grad,) = torch.autograd.grad(value, loss.proxies)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_trainer_optimises_arcface_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_trial puts the loss's parameters in the optimiser, so the proxies move."""
    import losstune.objectives.training as tr

    config = _synthetic_config(["ce", "arcface"], epochs=1)
    captured: dict = {}
    original = tr._make_optimizer

    def spy(cfg, groups):  # noqa: ANN001, ANN202
        params = [q for g in groups for q in (g["params"] if isinstance(g, dict) else [g])]
        captured["pairs"] = [(q, q.detach().clone()) for q in params]
        return original(cfg, groups)

    monkeypatch.setattr(tr, "_make_optimizer", spy)
    run_trial(config)
    proxies = [(q, q0) for q, q0 in captured["pairs"] if tuple(q.shape) == (32, 4)]
    assert len(proxies) == 1, "the ArcFace proxies (E=32, C=4) must be optimised"
    assert not torch.allclose(proxies[0][0].detach(), proxies[0][1]), "the proxies did not move"


def test_arcface_argument_errors() -> None:
    with pytest.raises(ValueError, match=re.escape("`scale > 0` must hold, but got scale=0.0.")):
        ArcFaceLoss(scale=0.0, num_classes=3, embedding_dim=4)
    with pytest.raises(ValueError, match=re.escape("`0 <= margin < 90` must hold")):
        ArcFaceLoss(margin=-1.0, num_classes=3, embedding_dim=4)
    with pytest.raises(ValueError, match="needs num_classes and embedding_dim"):
        ArcFaceLoss()
    with pytest.raises(ValueError, match=re.escape("`margin >= 0` must hold")):
        TripletLoss(margin=-0.1)
    with pytest.raises(ValueError, match="miner must be one of"):
        TripletLoss(miner="hard")  # type: ignore[arg-type]


def test_weighted_sum_ce_triplet_arcface() -> None:
    """The seed's combination: CE + w_t triplet + w_a ArcFace, each term logged."""
    emb, labels = _data(7)
    emb = emb.float().requires_grad_()
    logits = torch.randn(10, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    outputs = ModelOutputs(logits=logits, embeddings=emb)
    batch = Batch(index=torch.arange(10), y=labels, y_multi=F.one_hot(labels, 3).float())
    ce, tri = LOSSES["ce"](), TripletLoss()
    arc = ArcFaceLoss(num_classes=3, embedding_dim=5)
    total, terms = WeightedSum([ce, tri, arc], {"triplet": 0.4 / 0.15, "arcface": 3.0})(
        outputs, batch)
    expected = terms["ce"] + 0.4 / 0.15 * terms["triplet"] + 3.0 * terms["arcface"]
    torch.testing.assert_close(total, expected)
    assert set(terms) == {"ce", "triplet", "arcface"}
    zero, _ = WeightedSum([ce, tri, arc], {"triplet": 0.0, "arcface": 0.0})(outputs, batch)
    torch.testing.assert_close(zero, terms["ce"])


# ---------------------------------------------------------------- projection head and rules


def test_projection_head_shapes_and_normalisation() -> None:
    assert MODELS["projection"] is ProjectionHead
    head = build_model("projection", {"embedding_dim": 16, "normalize": True},
                       {"in_dim": 32, "num_classes": 5})
    assert head.embedding_dim == 16
    out = head({"embeddings": torch.randn(4, 32)})
    assert out.logits.shape == (4, 5) and out.embeddings.shape == (4, 16)
    torch.testing.assert_close(out.embeddings.norm(dim=1), torch.ones(4))
    raw = build_model("projection", {"activation": "none"}, {"in_dim": 8, "num_classes": 2})
    x = torch.randn(3, 8)
    e = raw({"embeddings": x}).embeddings
    torch.testing.assert_close(e, raw.project[0](x))
    with pytest.raises(ValueError, match="activation must be one of"):
        ProjectionHead(in_dim=4, num_classes=2, activation="gelu")  # type: ignore[arg-type]


def _synthetic_config(terms: list[str], *, epochs: int = 4, rule: str = "auto",
                      **params: dict) -> TrialConfig:
    return TrialConfig(
        data={"name": "synthetic"},
        encoder={"name": "hashing"},
        model={"head": "projection", "params": {"embedding_dim": 32}},
        loss={"terms": [{"name": t, "weight": 0.5 if i else 1.0, "params": params.get(t, {})}
                        for i, t in enumerate(terms)]},
        train={"epochs": epochs, "lr": 0.02, "threads": 1},
        eval={"rule": rule},
    )


@pytest.mark.parametrize("rule", ["argmax", "centroid"])
def test_ce_triplet_arcface_trains_with_either_prediction_rule(rule: str) -> None:
    config = _synthetic_config(["ce", "triplet", "arcface"], rule=rule,
                               triplet={"miner": "semi_hard"})
    result = run_trial(config)
    assert result.prediction_rule == rule
    assert result.value > 0.5  # synthetic keyword classes are easy
    assert set(result.terms) == {"ce", "triplet", "arcface"}
    assert all(math.isfinite(v) for v in result.terms.values())
    assert len(result.curves["term_arcface"]) == result.epochs_run


def test_centroid_rule_predicts_nearest_class_mean() -> None:
    from losstune.objectives.training import _centroid_scores

    train = torch.tensor([[0.0, 0.0], [0.0, 2.0], [4.0, 0.0], [4.0, 2.0]]).numpy()
    multi = F.one_hot(torch.tensor([0, 0, 1, 1]), 2).float().numpy()
    scores = _centroid_scores(train, multi, torch.tensor([[1.0, 1.0], [3.5, 0.0]]).numpy())
    assert scores.argmax(axis=1).tolist() == [0, 1]
    assert scores[0, 0] == pytest.approx(-1.0)  # squared distance to centroid (0, 1)
