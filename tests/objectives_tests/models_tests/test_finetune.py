"""Fine-tuning all-MiniLM-L6-v2 end to end on CPU (tiny subset), device choice, replay."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from losstune.objectives.config import EncoderConfig, TrialConfig
from losstune.objectives.data import load_dataset
from losstune.objectives.encoders.minilm import MiniLMEncoder, load_trainable_minilm
from losstune.objectives.features import encoder_outputs
from losstune.objectives.models import LinearHead
from losstune.objectives.models.finetune import FineTunedEncoder
from losstune.objectives.training import resolve_device, run_trial
from losstune.search_spaces import SearchSpace

TINY = {"name": "synthetic", "options": {"limit": {"train": 24, "val": 12, "test": 12}}}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """The machine is shared: one torch thread keeps these tests' timing predictable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def transformer() -> torch.nn.Module:
    return load_trainable_minilm()


def _config(**train: object) -> TrialConfig:
    return TrialConfig(
        data=TINY,
        encoder={"name": "minilm", "max_length": 32, "fine_tune": True},
        model={"head": "linear"},
        loss={"terms": [{"name": "ce"}]},
        train={"epochs": 1, "lr": 0.01, "batch_size": 8, "threads": 1, "encoder_lr": 1e-4,
               **train},
    )


def test_device_auto_resolves_to_cpu_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present here")
    assert resolve_device("auto") == torch.device("cpu")
    assert _config(device="auto").train.device == "auto"


def test_word_piece_ids_are_cached_with_a_mask() -> None:
    dataset = load_dataset(TINY["name"], TINY["options"])
    arrays = encoder_outputs(dataset, "val", EncoderConfig(name="minilm", max_length=32),
                             kind="token_ids")
    ids, mask = np.asarray(arrays["token_ids"]), np.asarray(arrays["token_mask"])
    assert ids.shape == (12, 32) and ids.dtype == np.int32
    assert (ids[:, 0] == 101).all()  # [CLS]
    lengths = mask.sum(axis=1)
    assert (ids[np.arange(12), lengths - 1] == 102).all()  # [SEP] ends each text
    assert (ids[mask == 0] == 0).all()


def test_pooling_matches_the_frozen_encoder(transformer: torch.nn.Module) -> None:
    texts = ["The movie was wonderful.", "Oil prices fell sharply on Monday."]
    frozen = MiniLMEncoder(max_length=32).encode(texts)
    ids, mask = MiniLMEncoder(max_length=32).encode_ids(texts)
    model = FineTunedEncoder(LinearHead(in_dim=384, num_classes=2), transformer).eval()
    with torch.no_grad():
        out = model({"token_ids": torch.from_numpy(ids).long(),
                     "token_mask": torch.from_numpy(mask)})
    assert out.embeddings is not None
    np.testing.assert_allclose(out.embeddings.numpy(), frozen, atol=2e-5)


def test_gradients_reach_the_encoder_and_the_loss_decreases(
    transformer: torch.nn.Module,
) -> None:
    torch.manual_seed(0)
    model = FineTunedEncoder(LinearHead(in_dim=384, num_classes=2), copy.deepcopy(transformer))
    texts = ["great fun film", "awful boring film", "a great story", "boring and awful"] * 2
    ids, mask = MiniLMEncoder(max_length=16).encode_ids(texts)
    batch = {"token_ids": torch.from_numpy(ids).long(), "token_mask": torch.from_numpy(mask)}
    y = torch.tensor([1, 0, 1, 0] * 2)
    optimizer = torch.optim.AdamW([
        {"params": model.encoder_parameters(), "lr": 1e-4},
        {"params": model.head.parameters(), "lr": 1e-2},
    ])
    losses = []
    model.train()
    for step in range(4):
        loss = torch.nn.functional.cross_entropy(model(batch).logits, y)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            word = model.transformer.embeddings.word_embeddings.weight.grad
            last = list(model.transformer.encoder.layer[-1].parameters())[0].grad
            assert word is not None and word.abs().sum() > 0
            assert last is not None and last.abs().sum() > 0
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_fine_tuning_trial_trains_the_encoder_and_replays_bit_exactly(
    transformer: torch.nn.Module,
) -> None:
    config = _config()
    first = run_trial(config, keep_state=True)
    second = run_trial(config, keep_state=True)
    assert first.value == second.value and first.val == second.val
    assert first.curves["train_loss"] == second.curves["train_loss"]
    assert first.state_dict is not None
    key = "transformer.encoder.layer.5.output.dense.weight"
    assert key in first.state_dict
    original = dict(transformer.named_parameters())["encoder.layer.5.output.dense.weight"]
    assert not torch.equal(first.state_dict[key], original.detach())  # the encoder was trained
    torch.testing.assert_close(first.state_dict[key], second.state_dict[key], rtol=0, atol=0)


def test_token_state_heads_get_the_fine_tuned_states() -> None:
    config = TrialConfig.model_validate({
        **_config().model_dump(),
        "model": {"head": "space"},
        "loss": {"terms": [{"name": "ce"}, {"name": "space", "weight": 0.5}]},
    })
    result = run_trial(config)
    assert np.isfinite(result.value)
    assert {"ce", "space.inter", "space.intra"} <= set(result.terms)


def test_encoder_lr_is_searched_only_when_fine_tuning() -> None:
    plain = SearchSpace.build(losses=["ce"]).names()
    tuned = SearchSpace.build(losses=["ce"], fine_tune=True)
    assert "train.encoder_lr" not in plain and "train.encoder_lr" in tuned.names()
    values = tuned.baseline()
    assert values["train.encoder_lr"] == pytest.approx(2e-5)
    template = {"data": TINY, "encoder": {"name": "minilm", "fine_tune": True}}
    config = tuned.to_config({**values, "train.encoder_lr": 3e-5}, template)
    assert config.train.encoder_lr == pytest.approx(3e-5)


@pytest.mark.gpu
def test_fine_tuning_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    result = run_trial(_config(device="auto", epochs=2, threads=None))
    assert result.device.startswith("cuda")
    assert np.isfinite(result.value)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
