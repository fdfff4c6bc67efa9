"""LatentG: DualTextCNN shapes and gradients, the teacher trained once, cached and row-aligned."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from losstune.objectives import cache
from losstune.objectives.config import TrialConfig
from losstune.objectives.losses import LOSSES, BaseLoss, Batch
from losstune.objectives.models import ModelOutputs, get_model_class
from losstune.objectives.models import teacher as teacher_mod
from losstune.objectives.models.latentg import MIN_IN_DIM, DualTextCNN, DualTextCNNHead
from losstune.objectives.models.teacher import TeacherSettings, teacher_outputs, train_teacher
from losstune.objectives.training import ConfigurationError, prepare_data, run_trial

SMALL = {"width": 8, "latent_dim": 8, "teacher_width": 8, "teacher_epochs": 3}


def _config(head: str = "latentg_student", params: dict[str, Any] | None = None,
            loss: str = "ce", seed: int = 0, epochs: int = 3) -> TrialConfig:
    return TrialConfig(
        data={"name": "synthetic"},
        encoder={"name": "hashing", "options": {"dim": 64}},
        model={"head": head, "params": dict(SMALL if params is None else params)},
        loss={"terms": [{"name": loss}]},
        train={"epochs": epochs, "lr": 0.01, "batch_size": 32, "threads": 1, "seed": seed},
    )


def test_dual_textcnn_shapes_and_upstream_layout() -> None:
    net = DualTextCNN(in_dim=50, num_classes=7)  # GloVe-50d mean vector, 7 classes (upstream)
    logits, reconstruction, z = net(torch.randn(5, 50))
    assert logits.shape == (5, 7) and reconstruction.shape == (5, 50) and z.shape == (5, 32)
    convs = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256]
    assert all(c.kernel_size == (3,) and c.padding == (0,) for c in convs)
    with pytest.raises(ValueError, match=f"in_dim >= {MIN_IN_DIM}"):
        DualTextCNN(in_dim=MIN_IN_DIM - 1, num_classes=2)
    DualTextCNN(in_dim=MIN_IN_DIM, num_classes=2)(torch.randn(2, MIN_IN_DIM))


def test_head_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    head = DualTextCNNHead(in_dim=40, num_classes=3, latent_dim=6, width=4)
    x = torch.randn(4, 40)
    out = head({"embeddings": x})
    assert out.available() == head.provides
    assert out.get("latents").shape == (4, 6) and out.embeddings is out.get("latents")
    torch.testing.assert_close(out.get("inputs"), x)
    # classification and reconstruction both reach the encoder
    for target in ("logits", "reconstruction"):
        head.zero_grad()
        out = head({"embeddings": x})
        out.get(target).pow(2).mean().backward()
        first_conv = head.net.encoder[0][0].weight
        assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0, target
    # a ragged last batch of one example trains (BatchNorm falls back to running stats)
    head.train()
    assert torch.isfinite(head({"embeddings": torch.randn(1, 40)}).logits).all()


def test_student_provides_teacher_outputs_and_declares_its_teacher() -> None:
    student = get_model_class("latentg_student")
    assert {"teacher_latents", "teacher_logits"} <= student.provides
    assert not {"teacher_latents", "teacher_logits"} & get_model_class("dual_textcnn").provides
    settings = TeacherSettings.from_model_params({"latent_dim": 16, "teacher_epochs": 5})
    assert settings == TeacherSettings(latent_dim=16, epochs=5)  # upstream defaults otherwise
    assert (settings.lr, settings.optimizer, settings.recon_weight, settings.seed) == (
        0.01, "sgd", 90.0, 42)


def test_teacher_is_trained_once_and_cached_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[TeacherSettings] = []
    real = teacher_mod.train_teacher

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(teacher_mod, "train_teacher", counting)
    params = {**SMALL, "teacher_seed": 7}  # a teacher no other test trains
    first = run_trial(_config(params=params, seed=0))
    cache.clear_memory()  # the second trial reads the teacher from disk
    hits, misses = cache.STATS.hits, cache.STATS.misses
    second = run_trial(_config(params={**params, "width": 4}, seed=1))
    assert len(calls) == 1  # the student's own knobs and the trial seed reuse the teacher
    assert cache.STATS.misses == misses and cache.STATS.hits > hits
    assert np.isfinite(first.value) and np.isfinite(second.value)
    run_trial(_config(params={**params, "teacher_epochs": 2}))
    assert len(calls) == 2  # another teacher setting is another teacher

    config = _config(params=params)
    data = prepare_data(config)
    arrays = teacher_outputs(config, data)
    for split in ("train", "val", "test"):
        n = len(data.dataset.split(split))
        assert arrays[f"{split}_latents"].shape == (n, SMALL["latent_dim"])
        assert arrays[f"{split}_logits"].shape == (n, data.dataset.num_classes)


class _AlignmentProbe(BaseLoss):
    """CE that records whether each batch's teacher rows are the cached rows of its documents."""

    name = "alignment_probe"
    targets = "index"
    requires = frozenset({"logits", "teacher_latents", "teacher_logits"})
    seen: ClassVar[list[tuple[bool, bool, bool]]] = []
    table: ClassVar[dict[str, np.ndarray]] = {}

    def __init__(self) -> None:
        super().__init__()

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        if self.training:
            idx = batch.index.cpu().numpy()
            lat = outputs.get("teacher_latents").detach().cpu().numpy()
            log = outputs.get("teacher_logits").detach().cpu().numpy()
            contiguous = bool(np.all(np.diff(idx) == 1))
            self.seen.append((np.array_equal(lat, self.table["train_latents"][idx]),
                              np.array_equal(log, self.table["train_logits"][idx]),
                              contiguous))
        assert batch.y is not None
        return torch.nn.functional.cross_entropy(outputs.logits, batch.y)


def test_student_batches_get_their_own_documents_teacher_rows() -> None:
    config = _config(loss="alignment_probe", params={**SMALL, "teacher_seed": 3})
    data = prepare_data(config)
    _AlignmentProbe.table = {k: np.array(v) for k, v in teacher_outputs(config, data).items()}
    _AlignmentProbe.seen = []
    LOSSES.register(_AlignmentProbe)
    try:
        run_trial(config)
    finally:
        LOSSES.unregister("alignment_probe")
    seen = _AlignmentProbe.seen
    assert seen and all(lat and log for lat, log, _ in seen)
    assert not all(contiguous for *_, contiguous in seen)  # batches were shuffled
    # the rows really differ per document, so a positional lookup would have failed
    rows = _AlignmentProbe.table["train_logits"]
    assert len(np.unique(rows.round(5), axis=0)) > len(rows) // 2


def test_teacher_is_selected_on_validation_and_never_reads_test() -> None:
    config = _config(params=SMALL)
    data = prepare_data(config)
    inputs = {s: data.inputs[s]["embeddings"] for s in ("train", "val")}
    inputs["test"] = torch.full_like(data.inputs["test"]["embeddings"], float("nan"))
    labels = {s: data.y[s] for s in ("train", "val", "test")}
    settings = TeacherSettings(latent_dim=8, width=8, epochs=4, lr=0.05)
    model, info = train_teacher(inputs, labels, data.dataset.num_classes, settings,  # type: ignore[arg-type]
                                torch.device("cpu"))
    curve = info["val_loss_curve"]
    assert len(curve) == 4 and np.isfinite(curve).all()
    assert info["best_epoch"] == int(np.argmin(curve))
    assert info["val_loss"] == pytest.approx(min(curve))


def test_teacher_learns_to_reconstruct() -> None:
    """The teacher's reconstruction term works: on inputs with low-rank structure (4 factors
    in 40 dims, at the scale of mean word vectors) its validation MSE falls far below that of
    predicting the training mean, from an 8-d latent."""
    g = torch.Generator().manual_seed(0)
    mixing = 0.2 * torch.randn(4, 40, generator=g)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        factors = torch.randn(n, 4, generator=g)
        x = factors @ mixing + 0.01 * torch.randn(n, 40, generator=g)
        return x, (factors[:, 0] > 0).long() + 2 * (factors[:, 1] > 0).long()

    (x_train, y_train), (x_val, y_val) = make(320), make(80)
    settings = TeacherSettings(latent_dim=8, width=8, epochs=10, lr=0.003, optimizer="adam")
    model, info = train_teacher({"train": x_train, "val": x_val},
                                {"train": y_train, "val": y_val}, 4, settings,
                                torch.device("cpu"))
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(model(x_val)[1], x_val)
    baseline = ((x_val - x_train.mean(dim=0)) ** 2).mean()
    assert mse < 0.3 * baseline, (float(mse), float(baseline))
    assert info["val_accuracy"] > 0.5  # 4 balanced classes: chance is 0.25


def test_student_with_latent_guidance_trains() -> None:
    result = run_trial(_config(loss="latent_guidance", epochs=3))
    assert np.isfinite(result.value)
    assert set(result.terms) == {"latent_guidance.ce", "latent_guidance.guidance",
                                 "latent_guidance.reconstruction"}
    assert result.curves["train_loss"][-1] < result.curves["train_loss"][0]


def test_latent_guidance_without_a_teacher_fails_naming_both() -> None:
    with pytest.raises(ConfigurationError, match="latent_guidance.*teacher_latents.*dual_textcnn"):
        run_trial(_config(head="dual_textcnn", params={"width": 8}, loss="latent_guidance"))
    with pytest.raises(ValueError, match="multi-label"):
        config = _config()
        multi = config.model_copy(update={"data": config.data.model_copy(
            update={"options": {"multilabel": True}})})
        teacher_outputs(multi, prepare_data(multi))


def test_trial_result_does_not_depend_on_whether_the_teacher_was_cached() -> None:
    config = _config(params={**SMALL, "teacher_seed": 11})  # trained inside the first trial
    misses = cache.STATS.misses
    first = run_trial(config)
    assert cache.STATS.misses == misses + 1
    cache.clear_memory()
    second = run_trial(config)  # the teacher comes from disk
    assert cache.STATS.misses == misses + 1
    assert first.value == second.value
    assert first.curves["train_loss"] == second.curves["train_loss"]


def test_the_teacher_is_cached_per_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial gets the teacher trained with its own thread count, whichever trial or process
    trained a teacher first (torch's sums, and so a teacher, depend on the thread count)."""
    calls: list[int] = []
    real = teacher_mod.train_teacher

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(teacher_mod, "train_teacher", counting)
    one = _config(params={**SMALL, "teacher_seed": 13})
    two = one.with_threads(2)
    first = run_trial(two)
    run_trial(one)
    assert calls == [2, 1]  # one teacher per thread count, each trained on its trial's threads
    cache.clear_memory()
    again = run_trial(two)  # from disk: the 2-thread teacher, not the latest one
    assert calls == [2, 1]
    assert again.value == first.value
    assert again.curves["train_loss"] == first.curves["train_loss"]


def test_latentg_study_runs_end_to_end_with_one_teacher(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna

    from losstune.studies import api
    from tests.conftest import tiny_study

    calls: list[TeacherSettings] = []
    real = teacher_mod.train_teacher
    monkeypatch.setattr(teacher_mod, "train_teacher",
                        lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    study = tiny_study(
        name="latentg_tiny", n_trials=3,
        encoder={"name": "hashing", "options": {"dim": 64}},
        model={"head": "latentg_student", "params": {**SMALL, "teacher_seed": 5}},
        loss={"choices": ["latent_guidance", "ce"], "baseline": ["latent_guidance", "ce"]},
        space={"train.epochs": {"low": 2, "high": 3}, "model.width": 8},
    )
    spec, text = api.study_from_dict(study)
    summary = api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    assert summary.finished == 3
    assert len(calls) == 1  # one teacher for the whole study
    trials = optuna.load_study(study_name="latentg_tiny", storage=sqlite_url).trials
    first = trials[0]
    assert first.user_attrs["baseline"] is True
    assert first.params["loss.name"] == "latent_guidance"
    # the paper-default trial: the loss's defaults (alpha, beta 0.5, gamma 75)
    assert first.params["loss.latent_guidance.alpha"] == 0.5
    assert first.params["loss.latent_guidance.gamma"] == 75.0
    assert "term.latent_guidance.guidance" in first.user_attrs
    assert trials[1].params["loss.name"] == "ce"


def test_shipped_latentg_study_file_validates() -> None:
    from pathlib import Path

    from losstune.studies.spec import load_study_file

    path = Path(__file__).resolve().parents[3] / "studies" / "configs" / "latentg_r8.yaml"
    spec, _ = load_study_file(path)
    assert spec.model.head == "latentg_student" and spec.encoder.name == "glove"
    baseline = spec.compile_space().baseline("latent_guidance")
    assert baseline["train.lr"] == 0.01 and baseline["loss.latent_guidance.gamma"] == 75.0
