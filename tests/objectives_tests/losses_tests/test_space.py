"""The space-model head and the "space" loss (inter / intra sub-terms), masked over padding."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from losstune.objectives.config import TrialConfig
from losstune.objectives.losses import LOSSES, Batch, SpaceLoss, WeightedSum
from losstune.objectives.losses.space import inter_space, intra_space
from losstune.objectives.models import MODELS, build_model
from losstune.objectives.models.outputs import ModelOutputs
from losstune.objectives.models.space import SpaceHead, masked_token_mean
from losstune.objectives.training import prepare_data, run_trial

# The space-model toy problem of docs/references.md: K = 2 spaces, B = 2, L = 3, n = 2,
# pre-tanh activations, labels [0, 1]
PRE = [
    [[[0.5, -0.2], [1.0, 0.3], [0.0, 0.0]], [[-0.4, 0.9], [0.2, 0.1], [0.0, 0.0]]],
    [[[-0.3, 0.4], [0.6, -0.8], [0.0, 0.0]], [[0.7, 0.2], [-0.1, 0.5], [0.0, 0.0]]],
]
ONE_HOT = [[1.0, 0.0], [0.0, 1.0]]


def _ref() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tanh(torch.tensor(PRE, dtype=torch.float64)), torch.tensor(ONE_HOT,
                                                                            dtype=torch.float64)


def loop_terms(c: list, y: list, mask: list, m1: float, m2: float, eps: float) -> tuple:
    """inter and intra with explicit loops over spaces, documents, tokens and latent dims."""
    k_n, b_n = len(c), len(c[0])
    pos_sum = pos_n = neg_sum = neg_n = 0.0
    for k in range(k_n):
        for b in range(b_n):
            for t, row in enumerate(c[k][b]):
                if not mask[b][t]:
                    continue
                for v in row:
                    if y[b][k] > 0:
                        pos_sum, pos_n = pos_sum + (1 - v), pos_n + 1
                    else:
                        neg_sum, neg_n = neg_sum + (1 + v), neg_n + 1
    inter = (m1 * pos_sum / pos_n if pos_n else 0.0) + (m2 * neg_sum / neg_n if neg_n else 0.0)
    per_doc = []
    for b in range(b_n):
        real = [t for t in range(len(mask[b])) if mask[b][t]]
        if len(real) < 2:
            continue
        total = 0.0
        for k in range(k_n):
            for j in range(len(c[k][b][0])):
                vals = [c[k][b][t][j] for t in real]
                mean = sum(vals) / len(vals)
                var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
                total += 1.0 / (var + eps)
        per_doc.append(total)
    intra = sum(per_doc) / len(per_doc) if per_doc else 0.0
    return inter, intra


def test_reference_vectors_unmasked() -> None:
    """The reference values were computed over all tokens: a mask of ones reproduces them."""
    c, y = _ref()
    terms = SpaceLoss().compute(c, y, torch.ones(2, 3))
    assert float(terms["inter"]) == pytest.approx(0.921383, abs=1e-6)
    assert float(terms["intra"]) == pytest.approx(38.164360, abs=1e-5)
    no_mask = SpaceLoss().compute(c, y)
    torch.testing.assert_close(no_mask["inter"], terms["inter"])


def test_pooled_features_reference_vector() -> None:
    c, _ = _ref()
    u = masked_token_mean(c, torch.ones(2, 3)).permute(1, 0, 2).reshape(2, 4)
    expected = torch.tensor([[0.407904, 0.031312, 0.081912, -0.094696],
                             [-0.060858, 0.271989, 0.168233, 0.219831]], dtype=torch.float64)
    torch.testing.assert_close(u, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_terms_match_loops(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    k, b, length, n = 3, 4, 6, 2
    c = torch.tanh(torch.randn(k, b, length, n, generator=g, dtype=torch.float64))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0],
                         [1, 0, 0, 0, 0, 0]], dtype=torch.float64)  # last doc: one token
    y = F.one_hot(torch.tensor([0, 2, 1, 2]), 3).double()
    loss = SpaceLoss(m1=0.3, m2=0.8, eps=1e-4)
    terms = loss.compute(c, y, mask)
    inter, intra = loop_terms(c.tolist(), y.tolist(), mask.tolist(), 0.3, 0.8, 1e-4)
    assert float(terms["inter"]) == pytest.approx(inter, abs=1e-9)
    assert float(terms["intra"]) == pytest.approx(intra, rel=1e-9)


def test_padding_no_longer_counts() -> None:
    """Changing padded positions changes nothing; the unmasked reference would change."""
    c, y = _ref()
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    garbage = c.clone()
    garbage[:, :, 2, :] = 0.9
    a = SpaceLoss().compute(c, y, mask)
    b = SpaceLoss().compute(garbage, y, mask)
    for name in ("inter", "intra"):
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    unmasked = SpaceLoss().compute(garbage, y)
    assert float(unmasked["inter"]) != pytest.approx(float(a["inter"]))


def test_multilabel_and_edge_cases() -> None:
    c, _ = _ref()
    both = torch.ones(2, 2, dtype=torch.float64)  # every space is an own space: no negatives
    value = inter_space(c, both, m1=0.5, m2=0.5)
    assert float(value) == pytest.approx(0.5 * float((1 - c).mean()), abs=1e-12)
    none = torch.zeros(2, 2, dtype=torch.float64)  # no positive label in the batch
    assert float(inter_space(c, none)) == pytest.approx(0.5 * float((1 + c).mean()), abs=1e-12)
    one = SpaceLoss().compute(c[:, :1], torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    assert all(math.isfinite(float(v)) for v in one.values())  # batch of one
    single = torch.ones(1, 3)
    single[0, 1:] = 0  # one real token: no variance, left out of intra
    assert float(intra_space(c[:, :1], single)) == 0.0


def test_gradients_finite_and_flow_to_activations() -> None:
    pre = torch.tensor(PRE, dtype=torch.float64, requires_grad=True)
    _, y = _ref()
    terms = SpaceLoss().compute(torch.tanh(pre), y, torch.tensor([[1, 1, 0], [1, 1, 1]]))
    for name in ("inter", "intra"):
        (grad,) = torch.autograd.grad(terms[name], pre, retain_graph=True)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
        assert grad[:, 0, 2].abs().sum() == 0, f"{name}: padding received a gradient"


def test_argument_and_shape_errors() -> None:
    with pytest.raises(ValueError, match=re.escape("`m1 >= 0` must hold, but got m1=-1.0.")):
        SpaceLoss(m1=-1.0)
    with pytest.raises(ValueError, match=re.escape("`eps > 0` must hold")):
        SpaceLoss(eps=0.0)
    c, _ = _ref()
    with pytest.raises(ValueError, match="number of spaces must equal the classes"):
        SpaceLoss().compute(c, torch.ones(2, 3))


def test_weighted_sum_ce_inter_intra() -> None:
    """CE + w_inter * inter + w_intra * intra with per-sub-term weights and logged terms."""
    c, y = _ref()
    logits = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    outputs = ModelOutputs(logits=logits, extras={"space_activations": c,
                                                  "token_mask": torch.ones(2, 3)})
    batch = Batch(index=torch.arange(2), y=torch.tensor([0, 1]), y_multi=y)
    total, terms = WeightedSum([LOSSES["ce"](), SpaceLoss()],
                               {"space.inter": 0.2, "space.intra": 0.001})(outputs, batch)
    assert set(terms) == {"ce", "space.inter", "space.intra"}
    expected = terms["ce"] + 0.2 * 0.921383 + 0.001 * 38.164360
    assert float(total.detach()) == pytest.approx(float(expected.detach()), abs=1e-5)


# ---------------------------------------------------------------- the head


def test_head_parameter_count_matches_reference() -> None:
    assert MODELS["space"] is SpaceHead and SpaceHead.input == "token_states"
    head = SpaceHead(in_dim=768, num_classes=2, n_latent=3)
    assert sum(p.numel() for p in head.parameters()) == 4622
    head = SpaceHead(in_dim=768, num_classes=2, n_latent=128)
    assert sum(p.numel() for p in head.parameters()) == 197122


def test_head_masks_padding_and_exposes_extras() -> None:
    head = build_model("space", {"n_latent": 4}, {"in_dim": 10, "num_classes": 3})
    g = torch.Generator().manual_seed(0)
    states = torch.randn(2, 5, 10, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.uint8)
    out = head({"token_states": states, "token_mask": mask})
    assert out.logits.shape == (2, 3) and out.embeddings.shape == (2, 12)
    assert out.get("space_activations").shape == (3, 2, 5, 4)
    changed = states.clone()
    changed[0, 3:] = 100.0  # padding of document 0
    out2 = head({"token_states": changed, "token_mask": mask})
    torch.testing.assert_close(out.logits, out2.logits, rtol=0, atol=0)
    # pooled features are the masked mean of each space's activations
    c = torch.tanh(head.projections(states[0, :3])).view(3, 3, 4).mean(0)  # (K, n)
    torch.testing.assert_close(out.embeddings[0], c.reshape(-1))


def test_space_head_trains_end_to_end_on_token_states() -> None:
    """prepare_data caches token states for a head with ``input = "token_states"``; CE + inter
    + intra trains and every term is logged."""
    config = TrialConfig(
        data={"name": "synthetic"},
        encoder={"name": "hashing"},
        model={"head": "space", "params": {"n_latent": 8}},
        loss={"terms": [{"name": "ce"},
                        {"name": "space", "sub_weights": {"inter": 0.2, "intra": 1e-4}}]},
        train={"epochs": 8, "lr": 0.02, "threads": 1},
    )
    data = prepare_data(config, head_input="token_states")
    states = data.inputs["train"]["token_states"]
    assert states.dtype == torch.float16 and states.ndim == 3
    assert data.in_dim == states.shape[-1] == 256
    assert set(np.unique(data.inputs["train"]["token_mask"].numpy())) <= {0, 1}
    result = run_trial(config)
    assert set(result.terms) == {"ce", "space.inter", "space.intra"}
    assert all(math.isfinite(v) for v in result.terms.values())
    assert result.value > 0.5  # the keyword classes are learnable from token states


def test_minilm_token_states_pool_to_its_sentence_embeddings() -> None:
    """Real MiniLM token states (float16, cached) and mask: their masked mean, normalised, is
    the encoder's own sentence embedding, so the space head sees the same model."""
    from losstune.objectives.encoders.minilm import MiniLMEncoder

    texts = ["oil prices rose sharply", "the bank cut its lending rate by half a point today",
             "grain", "shares of the company fell after the quarterly report"]
    enc = MiniLMEncoder(max_length=32)
    states, mask = enc.encode_tokens(texts, batch_size=2)
    assert states.dtype == np.float16 and states.shape == (4, 32, 384)
    assert mask.dtype == np.uint8 and mask.sum(1).min() >= 3  # [CLS] word [SEP]
    pooled = (states.astype(np.float32) * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(pooled, enc.encode(texts), atol=2e-3)
