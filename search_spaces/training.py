"""Default ranges of the training settings and of each model head's knobs."""

from __future__ import annotations

from losstune.search_spaces.params import CategoricalDist, Distribution, FloatDist, IntDist

#: ``train.<setting>`` -> (distribution, default). Wide enough for plain BCE on long-tailed data
#: to converge (measured: at lr 1e-2 and 40 epochs every R52 tail class still had F1 0):
#: slow losses must not lose on epochs alone.
TRAIN_SPACE: dict[str, tuple[Distribution, object]] = {
    "lr": (FloatDist(1e-4, 1e-1, log=True), 1e-2),
    "weight_decay": (FloatDist(1e-6, 1e-2, log=True), 1e-4),
    "epochs": (IntDist(5, 60), 20),
    # 256 by default: a quarter of the optimiser steps of 64 for the same epochs, at the same
    # test macro-F1 on frozen features (benchmarks/trial_overhead.py)
    "batch_size": (CategoricalDist((32, 64, 128, 256, 512)), 256),
}

#: Default distributions of earlier losstune versions, by ``train.<setting>``. A study created
#: with one resumes once its study file fixes that distribution under ``space:``
#: (``search_spaces.space.earlier_default_hint`` says how).
EARLIER_TRAIN_SPACES: dict[str, list[Distribution]] = {
    "batch_size": [CategoricalDist((32, 64, 128))],
}

#: ``model.<knob>`` per head -> knob -> distribution (defaults come from the constructor).
MODEL_SPACES: dict[str, dict[str, Distribution]] = {
    "linear": {"dropout": FloatDist(0.0, 0.5)},
    "mlp": {
        "hidden": CategoricalDist((128, 256, 512)),
        "dropout": FloatDist(0.0, 0.5),
    },
    # metric-learning / G-Loss projection (the metric-learning repository: E in {128, 256},
    # tanh, dropout 0.3)
    "projection": {
        "embedding_dim": CategoricalDist((64, 128, 256)),
        "dropout": FloatDist(0.0, 0.5),
    },
    # space-model head (the space-model paper: n_latent in {3, 16, 64, 128})
    "space": {"n_latent": CategoricalDist((3, 16, 64, 128))},
    # token-id models over GloVe-50d (Kim 2014: 100 maps of widths 3,4,5, dropout 0.5)
    "textcnn": {
        "embedding": CategoricalDist(("frozen", "tuned")),
        "filters": CategoricalDist((50, 100, 200)),
        "kernel_sizes": CategoricalDist(("2,3,4", "3,4,5", "3,5,7")),
        "dropout": FloatDist(0.0, 0.6),
    },
    "birnn": {
        "cell": CategoricalDist(("lstm", "gru")),
        "hidden": CategoricalDist((64, 128, 256)),
        "pooling": CategoricalDist(("max", "mean", "last")),
        "embedding": CategoricalDist(("frozen", "tuned")),
        "dropout": FloatDist(0.0, 0.5),
    },
    # LatentG DualTextCNN (the LatentG paper: latent 32, autoencoder experiment 16). The student's
    # latent_dim is shared with its teacher, so it is fixed by default (one teacher per value).
    "dual_textcnn": {
        "latent_dim": CategoricalDist((16, 32, 64)),
        "width": CategoricalDist((32, 64)),
    },
    "latentg_student": {"width": CategoricalDist((32, 64))},
}

#: ``train.<setting>`` searched only when ``encoder.fine_tune`` is true.
FINE_TUNE_SPACE: dict[str, tuple[Distribution, object]] = {
    "encoder_lr": (FloatDist(1e-6, 1e-4, log=True), 2e-5),
}


def register_model_space(name: str, space: dict[str, Distribution]) -> None:
    MODEL_SPACES[name] = dict(space)
