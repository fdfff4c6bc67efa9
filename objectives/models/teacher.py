"""The LatentG teacher: trained once per (dataset, encoder, teacher settings), cached by row.

Pipeline (the reference training script's, with two of its flaws fixed: selection on the test
set, and rows misaligned by shuffled batches):

1. the teacher, a ``dual_textcnn``, is trained on the training split with
   ``CE(logits, y) + recon_weight * MSE(reconstruction, x)``; the epoch with the lowest
   **validation** loss is kept (upstream selected on the test set);
2. in eval mode it scores every document of every split in file order, and its latents and
   logits are stored in the on-disk cache (:mod:`losstune.objectives.cache`) as ``(n, Z)`` and
   ``(n, C)`` arrays whose row ``i`` is document ``i`` of the split;
3. the student's batches slice those arrays with the same row numbers as their inputs
   (``Batch.index``), so shuffling, batch size and ``drop_last`` cannot misalign them
   (upstream matched teacher rows by batch position).

The teacher never depends on the trial seed or the student's knobs: every trial of a study that
shares the teacher settings reads one cache entry. Its validation metrics are stored with it.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from losstune.objectives._checks import check
from losstune.objectives.cache import cached_arrays
from losstune.objectives.devices import device_kind, resolve_device
from losstune.objectives.models.dual_textcnn import DualTextCNN

logger = logging.getLogger(__name__)

#: Bump when teacher training changes (part of the cache key). 3: the key holds the threads.
_VERSION = 3
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TeacherSettings:
    """What defines a teacher besides the data and encoder (see ``LatentGStudentHead``)."""

    latent_dim: int = 32
    width: int = 64
    epochs: int = 30
    lr: float = 0.01
    optimizer: Literal["sgd", "adam"] = "sgd"
    batch_size: int = 64
    recon_weight: float = 90.0
    seed: int = 42

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "teacher_epochs >= 1", teacher_epochs=self.epochs)
        check(self.lr > 0, "teacher_lr > 0", teacher_lr=self.lr)
        check(self.batch_size >= 1, "teacher_batch_size >= 1", teacher_batch_size=self.batch_size)
        check(self.recon_weight >= 0, "teacher_recon_weight >= 0",
              teacher_recon_weight=self.recon_weight)
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(
                f"teacher_optimizer must be one of ['adam', 'sgd'], but got {self.optimizer!r}"
            )

    @classmethod
    def from_model_params(cls, params: dict[str, Any]) -> TeacherSettings:
        """Settings from a ``latentg_student``'s ``model.params`` (the defaults, which are also
        the student's constructor defaults, fill the rest)."""
        return cls(**{setting: params[knob] for knob, setting in STUDENT_KNOBS.items()
                      if knob in params})


#: ``latentg_student`` knob -> the teacher setting it sets.
STUDENT_KNOBS = {
    "latent_dim": "latent_dim",
    "teacher_width": "width",
    "teacher_epochs": "epochs",
    "teacher_lr": "lr",
    "teacher_optimizer": "optimizer",
    "teacher_batch_size": "batch_size",
    "teacher_recon_weight": "recon_weight",
    "teacher_seed": "seed",
}


def _loss(model: Any, x: torch.Tensor, y: torch.Tensor, recon_weight: float) -> torch.Tensor:
    logits, reconstruction, _ = model(x)
    return F.cross_entropy(logits, y) + recon_weight * F.mse_loss(reconstruction, x)


@torch.no_grad()
def _score(model: Any, x: torch.Tensor, batch_size: int = 1024) -> tuple[np.ndarray, ...]:
    model.eval()
    latents, logits = [], []
    for start in range(0, len(x), batch_size):
        out, _, z = model(x[start : start + batch_size])
        logits.append(out.cpu())
        latents.append(z.cpu())
    return torch.cat(latents).numpy(), torch.cat(logits).numpy()


@torch.no_grad()
def _mean_loss(model: Any, x: torch.Tensor, y: torch.Tensor, recon_weight: float) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(x), 1024):
        xb, yb = x[start : start + 1024], y[start : start + 1024]
        total += float(_loss(model, xb, yb, recon_weight)) * len(xb)
    return total / max(len(x), 1)


def train_teacher(
    inputs: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    num_classes: int,
    settings: TeacherSettings,
    device: torch.device,
) -> tuple[Any, dict[str, Any]]:
    """Train a DualTextCNN teacher; returns the model at its best validation epoch and info
    (``val_loss``, ``best_epoch``, ``val_accuracy``, ``val_loss_curve``). The test split is
    never read."""
    torch.manual_seed(settings.seed)
    x = {s: inputs[s].float().to(device) for s in ("train", "val")}
    y = {s: labels[s].to(device) for s in ("train", "val")}
    model = DualTextCNN(in_dim=x["train"].shape[1], num_classes=num_classes,
                        latent_dim=settings.latent_dim, width=settings.width).to(device)
    if settings.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    n = len(x["train"])
    best_loss, best_epoch, best_state = float("inf"), -1, None
    curve: list[float] = []
    for epoch in range(settings.epochs):
        model.train()
        for idx in torch.randperm(n, generator=generator).split(settings.batch_size):
            idx = idx.to(device)
            loss = _loss(model, x["train"][idx], y["train"][idx], settings.recon_weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"LatentG teacher loss became {loss.item()} at epoch {epoch}; lower "
                    "teacher_lr or teacher_recon_weight"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val_loss = _mean_loss(model, x["val"], y["val"], settings.recon_weight)
        curve.append(val_loss)
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    _, val_logits = _score(model, x["val"])
    val_acc = float((val_logits.argmax(1) == y["val"].cpu().numpy()).mean())
    return model, {"val_loss": best_loss, "best_epoch": float(best_epoch),
                   "val_accuracy": val_acc, "val_loss_curve": curve}


def teacher_key(config: Any, data: Any, settings: TeacherSettings) -> dict[str, Any]:
    """Cache key: the data (name, options, digests of every split), the encoder, the settings
    and, on CPU, the torch threads the teacher trains with (:func:`teacher_threads`).

    The thread count changes how torch splits its sums, and a teacher trains for many epochs:
    on R8, 3 epochs on 1 and on 2 threads ended at validation losses 0.82 and 0.93. Without
    it, which teacher a trial got would depend on which process trained one first, and a
    replay on a machine with a fresh cache would differ.
    """
    return {
        "dataset": data.dataset.name,
        "data_options": config.data.options,
        "texts": {s: data.dataset.split(s).digest() for s in SPLITS},
        "labels": {s: _label_digest(data.dataset.split(s).labels) for s in SPLITS},
        "encoder": config.encoder.model_dump(mode="json"),
        "teacher": asdict(settings),
        "v": _VERSION,
        **({"threads": teacher_threads(config)} if device_kind(config.train.device) == "cpu"
           else {"device": device_kind(config.train.device)}),
    }


def teacher_threads(config: Any) -> int:
    """The torch CPU threads a trial's teacher trains with: the trial's ``train.threads``, else
    the process's current count (inside ``run_trial`` that is the trial's)."""
    return int(config.train.threads or torch.get_num_threads())


def _label_digest(labels: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest()[:16]


def teacher_outputs(config: Any, data: Any) -> dict[str, np.ndarray]:
    """The cached teacher arrays of a ``latentg_student`` config: ``<split>_latents``,
    ``<split>_logits`` (row ``i`` = document ``i`` of the split), ``info`` (validation loss,
    best epoch, validation accuracy) and ``val_loss_curve``. Trains the teacher on the first
    call only."""
    if data.dataset.multilabel:
        raise ValueError(
            f"the LatentG teacher is trained with softmax cross-entropy and needs single-label "
            f"data; dataset {data.dataset.name!r} is multi-label"
        )
    settings = TeacherSettings.from_model_params(dict(config.model.params))
    device = resolve_device(config.train.device)

    def compute() -> dict[str, np.ndarray]:
        logger.warning("training the LatentG teacher for %s (%s); cached for later trials",
                       data.dataset.name, asdict(settings))
        rng_state = torch.get_rng_state()
        threads = torch.get_num_threads()
        torch.set_num_threads(teacher_threads(config))  # trained and scored on the key's count
        try:
            model, info = train_teacher(
                {s: data.inputs[s]["embeddings"] for s in ("train", "val")},
                {s: data.y[s] for s in ("train", "val")}, data.dataset.num_classes, settings,
                device,
            )
            arrays: dict[str, np.ndarray] = {}
            for s in SPLITS:
                latents, logits = _score(model, data.inputs[s]["embeddings"].float().to(device))
                arrays[f"{s}_latents"] = latents.astype(np.float32)
                arrays[f"{s}_logits"] = logits.astype(np.float32)
        finally:
            torch.set_rng_state(rng_state)
            torch.set_num_threads(threads)
        arrays["info"] = np.array(
            [info["val_loss"], info["best_epoch"], info["val_accuracy"]], dtype=np.float64
        )
        arrays["val_loss_curve"] = np.asarray(info["val_loss_curve"], dtype=np.float64)
        return arrays

    return cached_arrays("latentg_teacher", teacher_key(config, data, settings), compute)


def teacher_inputs(config: Any, data: Any) -> dict[str, dict[str, torch.Tensor]]:
    """``{split: {"teacher_latents": (n, Z), "teacher_logits": (n, C)}}`` for the trainer."""
    arrays = teacher_outputs(config, data)
    return {
        s: {
            "teacher_latents": torch.from_numpy(np.array(arrays[f"{s}_latents"])),
            "teacher_logits": torch.from_numpy(np.array(arrays[f"{s}_logits"])),
        }
        for s in SPLITS
    }
