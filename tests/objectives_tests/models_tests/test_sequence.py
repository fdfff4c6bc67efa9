"""TextCNN and BiLSTM/GRU over token ids: shapes, padding invariance, gradients, training."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from losstune.objectives.config import TrialConfig
from losstune.objectives.models import build_model, get_model_class
from losstune.objectives.models.sequence import BiRNNHead, TextCNNHead, TokenEmbedding
from losstune.objectives.training import prepare_data, run_trial

VOCAB = 20_000
N_PRE = 12  # pretrained rows of the toy id space (ids >= 12 are "OOV buckets")
V_TOTAL = 20


def _toy_vectors() -> np.ndarray:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N_PRE, 8)).astype(np.float32)
    vectors[0] = 0.0
    return vectors


def _batch(lengths: list[int], width: int = 9) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1, V_TOTAL, (n,), generator=g)
    return {"token_ids": ids, "token_mask": (ids != 0).to(torch.uint8)}


HEADS: list[tuple[type, dict[str, Any]]] = [
    (TextCNNHead, {"embedding": "tuned", "filters": 5, "kernel_sizes": "2,3"}),
    (TextCNNHead, {"embedding": "frozen", "filters": 5}),
    (TextCNNHead, {"embedding": "learned", "embed_dim": 6, "filters": 4}),
    (BiRNNHead, {"cell": "lstm", "hidden": 7, "pooling": "max"}),
    (BiRNNHead, {"cell": "gru", "hidden": 7, "pooling": "mean", "embedding": "frozen"}),
    (BiRNNHead, {"cell": "lstm", "hidden": 7, "pooling": "last", "layers": 2,
                 "embedding": "learned", "embed_dim": 6}),
]


@pytest.mark.parametrize(("cls", "knobs"), HEADS)
def test_shapes_and_padding_invariance(cls: type, knobs: dict[str, Any]) -> None:
    torch.manual_seed(0)
    head = cls(num_classes=3, vocab_size=V_TOTAL, token_vectors=_toy_vectors(), **knobs).eval()
    batch = _batch([5, 2, 0, 9])
    out = head(batch)
    assert out.logits.shape == (4, 3)
    assert out.embeddings is not None and out.embeddings.shape == (4, head.embedding_dim)
    assert torch.isfinite(out.logits).all()
    # the same document scores the same with more padding and other batch-mates
    single = {k: v[:2, :5] for k, v in batch.items()}
    wide = {k: torch.nn.functional.pad(v[:2], (0, 6)) for k, v in batch.items()}
    torch.testing.assert_close(head(single).logits, out.logits[:2], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(head(wide).logits, out.logits[:2], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cls", [TextCNNHead, BiRNNHead])
def test_gradients_follow_the_embedding_mode(cls: type) -> None:
    batch = _batch([6, 4, 9])
    batch["token_ids"][0, 0] = N_PRE + 3  # an OOV bucket id
    for mode in ("frozen", "tuned"):
        torch.manual_seed(0)
        head = cls(num_classes=2, vocab_size=V_TOTAL, token_vectors=_toy_vectors(),
                   embedding=mode)
        head(batch).logits.sum().backward()
        pre = head.embed.pretrained.weight
        assert (pre.grad is not None) == (mode == "tuned")
        if pre.grad is not None:
            assert pre.grad[0].abs().sum() == 0  # padding never learns
            assert pre.grad.abs().sum() > 0
        assert head.embed.extra.weight.grad[3].abs().sum() > 0  # buckets always learn
        assert head.classifier.weight.grad.abs().sum() > 0
        # every parameter that is trained gets a gradient
        for name, p in head.named_parameters():
            if p.requires_grad:
                assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_embedding_errors() -> None:
    with pytest.raises(ValueError, match="needs pretrained token vectors"):
        TokenEmbedding(vocab_size=10, mode="frozen", token_vectors=None)
    with pytest.raises(ValueError, match="embedding must be one of"):
        TokenEmbedding(vocab_size=10, mode="glove")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kernel_sizes"):
        TextCNNHead(num_classes=2, vocab_size=10, embedding="learned", kernel_sizes="3,x")
    with pytest.raises(ValueError, match="cell must be one of"):
        BiRNNHead(num_classes=2, vocab_size=10, embedding="learned", cell="rnn")  # type: ignore[arg-type]


def test_registered_and_built_from_trainer_context() -> None:
    assert get_model_class("textcnn").input == "token_ids"
    assert get_model_class("birnn").input == "token_ids"
    config = _config("textcnn", {})
    data = prepare_data(config, head_input="token_ids")
    ctx = {"in_dim": data.in_dim, "num_classes": data.dataset.num_classes,
           **data.extras["head_context"]}
    head = build_model("textcnn", {"filters": 3}, ctx)
    assert data.in_dim == 50 and head.embed.dim == 50
    ids = data.inputs["train"]["token_ids"]
    assert ids.dtype == torch.int32 and int(ids.max()) < ctx["vocab_size"]
    with pytest.raises(ValueError, match="no parameter"):
        build_model("textcnn", {"hidden": 3}, ctx)


def _config(head: str, params: dict[str, Any], epochs: int = 6) -> TrialConfig:
    return TrialConfig(
        data={"name": "synthetic"},
        encoder={"name": "glove", "max_length": 32, "options": {"vocab_size": VOCAB}},
        model={"head": head, "params": params},
        loss={"terms": [{"name": "ce"}]},
        train={"epochs": epochs, "lr": 0.01, "batch_size": 32, "threads": 1, "seed": 0},
    )


def _majority_rate() -> float:
    from losstune.objectives.data import load_dataset

    labels = load_dataset("synthetic").test.labels
    return float(np.bincount(labels).max() / len(labels))


@pytest.mark.parametrize(
    ("head", "params"),
    [
        ("textcnn", {}),
        ("birnn", {"cell": "lstm", "hidden": 32}),
        ("birnn", {"cell": "gru", "hidden": 32, "pooling": "mean"}),
    ],
)
def test_trains_on_synthetic_and_beats_chance(head: str, params: dict[str, Any]) -> None:
    # The synthetic corpus's class keywords (kw0x1, ...) are not GloVe words: they reach the
    # model through the trainable hashed OOV buckets, the filler words through GloVe.
    result = run_trial(_config(head, params))
    majority = _majority_rate()
    assert result.test["accuracy"] > majority + 0.25, (result.test, majority)
    assert result.value > 0.6
    assert result.curves["train_loss"][-1] < result.curves["train_loss"][0]


def test_frozen_glove_without_buckets_cannot_see_the_keywords() -> None:
    # A control for the test above: with every keyword mapped to one unknown id and GloVe
    # frozen, the model only sees filler words and stays near chance.
    config = _config("textcnn", {"embedding": "frozen"})
    config = config.model_copy(update={"encoder": config.encoder.model_copy(
        update={"options": {"vocab_size": VOCAB, "oov_buckets": 0}})})
    result = run_trial(config)
    assert result.test["accuracy"] < _majority_rate() + 0.15
