"""Default search spaces of every registered loss's knobs.

``LOSS_SPACES[name]`` maps constructor keyword arguments of ``LOSSES[name]`` to distributions; the
parameter stored in a study is ``loss.<name>.<arg>``. Defaults are the constructor's (the paper's)
values; ranges follow ../shared/research/seed_losses.md. Pure scales (``loss_weight``) and the
reference focal alpha are left out: with Adam they mostly change the effective learning rate.
"""

from __future__ import annotations

from search_spaces.params import CategoricalDist, Distribution, FloatDist

_GAMMA = FloatDist(0.0, 4.0)  # focal exponent; paper 2, suggested {0,1,2,3}
_CB_BETA = CategoricalDist((0.9, 0.99, 0.999, 0.9999))
_MAP_ALPHA = FloatDist(0.0, 0.5)
_MAP_BETA = FloatDist(1.0, 20.0)
_MAP_MU = FloatDist(0.05, 2.0, log=True)  # Reuters 0.9, PubMed 0.05; narrow per dataset
_KAPPA = FloatDist(0.0, 0.2)
_LAM = FloatDist(1.0, 5.0)

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
}

#: Range of ``weight.<term>`` for auxiliary terms (log scale: only ratios matter).
AUX_WEIGHT = FloatDist(1e-2, 1.0, log=True)
#: Paper default weights of auxiliary terms, for the baseline trial.
AUX_WEIGHT_DEFAULTS: dict[str, float] = {}


def register_loss_space(
    name: str, space: dict[str, Distribution], *, weight_default: float | None = None
) -> None:
    """Give a (plugin) loss its default space."""
    LOSS_SPACES[name] = dict(space)
    if weight_default is not None:
        AUX_WEIGHT_DEFAULTS[name] = weight_default
