"""Default search spaces of every registered loss's knobs.

``LOSS_SPACES[name]`` maps constructor keyword arguments of ``LOSSES[name]`` to distributions; the
parameter stored in a study is ``loss.<name>.<arg>``. Defaults are the constructor's (the paper's)
values; ranges cover the values the papers and their code used (docs/losses.md). Pure scales
(``loss_weight``) and the reference focal alpha are left out: with Adam they mostly change the
effective learning rate.
"""

from __future__ import annotations

import math

from losstune.search_spaces.params import CategoricalDist, Distribution, FixedDist, FloatDist

_GAMMA = FloatDist(0.0, 4.0)  # focal exponent; paper 2, suggested {0,1,2,3}
_CB_BETA = CategoricalDist((0.9, 0.99, 0.999, 0.9999))
_MAP_ALPHA = FloatDist(0.0, 0.5)
_MAP_BETA = FloatDist(1.0, 20.0)
_MAP_MU = FloatDist(0.05, 2.0, log=True)  # Reuters 0.9, PubMed 0.05; narrow per dataset
_KAPPA = FloatDist(0.0, 0.2)
_LAM = FloatDist(1.0, 5.0)
# Metric learning: ArcFace margin in degrees, the unit of PML 2.x's
# ArcFaceLoss: 0.1-0.5 rad.
_ARC_MARGIN = FloatDist(round(math.degrees(0.1), 2), round(math.degrees(0.5), 2))

LOSS_SPACES: dict[str, dict[str, Distribution]] = {
    "ce": {"label_smoothing": FloatDist(0.0, 0.2)},
    "bce": {},
    "focal": {"gamma": _GAMMA},
    "cb": {"beta": _CB_BETA, "gamma": _GAMMA},
    "r_focal": {"alpha": _MAP_ALPHA, "beta": _MAP_BETA, "mu": _MAP_MU, "gamma": _GAMMA},
    "ntr_focal": {"kappa": _KAPPA, "lam": _LAM, "gamma": _GAMMA},
    "db_no_focal": {
        "alpha": _MAP_ALPHA, "beta": _MAP_BETA, "mu": _MAP_MU, "kappa": _KAPPA, "lam": _LAM,
    },
    "cb_ntr": {"beta": _CB_BETA, "kappa": _KAPPA, "lam": _LAM, "gamma": _GAMMA},
    "db": {
        "alpha": _MAP_ALPHA, "beta": _MAP_BETA, "mu": _MAP_MU, "kappa": _KAPPA, "lam": _LAM,
        "gamma": _GAMMA,
    },
    "triplet": {
        "margin": FloatDist(0.1, 1.0),  # squared L2 on the unit sphere, distances in [0, 4]
        "miner": CategoricalDist(("all", "semi_hard", "batch_hard")),
        "distance": FixedDist("squared_l2"),  # the seed's; override to compare l2/cosine
    },
    "arcface": {"margin": _ARC_MARGIN, "scale": FloatDist(8.0, 64.0, log=True)},
    "space": {"m1": FloatDist(0.0, 1.0), "m2": FloatDist(0.0, 1.0)},
    # G-Loss: the reference code's own Optuna space; sigma log-scaled over its [0.1, 10].
    "g_loss": {
        "sigma": FloatDist(0.1, 10.0, log=True),
        "gamma": FloatDist(0.5, 0.9, step=0.1),
        "lam": FloatDist(0.5, 0.9, step=0.1),
        "variant": FixedDist("paper"),  # override with `faithful` or [paper, faithful]
    },
    # LatentG: alpha and beta in [0, 1]; gamma is the reconstruction MSE weight.
    "latent_guidance": {
        "alpha": FloatDist(0.0, 1.0),
        "beta": FloatDist(0.0, 1.0),
        "gamma": CategoricalDist((10.0, 25.0, 50.0, 75.0, 100.0)),
        "sigma": FloatDist(0.1, 10.0, log=True),
    },
    "tversky": {"alpha": FloatDist(0.1, 0.9), "beta": FloatDist(0.1, 0.9)},
    "dice": {},
}

#: Range of ``weight.<term>`` for auxiliary terms (log scale: only ratios matter); wide enough
#: to hold the papers' relative weights (the emotion study's best run: triplet 2.67, ArcFace 3
#: times CE).
AUX_WEIGHT = FloatDist(1e-2, 10.0, log=True)
#: Paper default weights of auxiliary terms, for the baseline trial (clipped into the range).
AUX_WEIGHT_DEFAULTS: dict[str, float] = {
    # the emotion study's best run, CE 0.15 / triplet 0.4 / ArcFace 0.45, rescaled so CE is 1
    "triplet": 0.4 / 0.15,
    "arcface": 0.45 / 0.15,
    # space-model README tables: inter 0.2, intra 0.001 (next to CE with weight 1)
    "space.inter": 0.2,
    "space.intra": 0.001,
}


def register_loss_space(
    name: str, space: dict[str, Distribution], *, weight_default: float | None = None
) -> None:
    """Give a (plugin) loss its default space."""
    LOSS_SPACES[name] = dict(space)
    if weight_default is not None:
        AUX_WEIGHT_DEFAULTS[name] = weight_default
