"""Does a loss get the model outputs it needs, and does the head get the input it reads?

Checked from registry names and class attributes only (nothing is built or loaded), so that a
study file is rejected when it is validated, before anything touches storage, and again when a
trial is built (:func:`losstune.objectives.training.check_compatibility`).

* every loss's ``requires`` must be in the head's ``provides`` (``latent_guidance`` needs
  ``teacher_latents``, which only ``latentg_student`` makes);
* the head's ``input`` (``embeddings``, ``token_states`` or ``token_ids``) must be among the
  encoder's ``provides``;
* ``encoder.fine_tune: true`` needs a fine-tunable encoder (``minilm``) and a head that reads
  pooled ``embeddings`` or ``token_states`` (the fine-tuned transformer makes them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from losstune.objectives.errors import LosstuneError

#: Outputs only a head with a cached teacher makes, and the head that has one.
_TEACHER_OUTPUTS = frozenset({"teacher_latents", "teacher_logits"})
_FINE_TUNABLE = ("minilm",)


class IncompatibleConfigError(LosstuneError, ValueError):
    """The loss, head and encoder of a configuration do not fit together."""


def model_input(head_cls: Any, fine_tune: bool) -> str:
    """What the trainer must prepare for a head: its own input, or the transformer's
    ``token_ids`` when the encoder is fine-tuned."""
    return "token_ids" if fine_tune else str(head_cls.input)


def threads_pay(head: str, fine_tune: bool) -> bool:
    """Whether torch's intra-op threads speed up a trial of ``head`` on the CPU: a fine-tuned
    transformer multiplies large matrices per batch; a head on cached features only when its
    class says so (``cpu_threads_pay``, e.g. ``textcnn``)."""
    from losstune.objectives.models import get_model_class

    return fine_tune or bool(getattr(get_model_class(head), "cpu_threads_pay", False))


def check_model_contract(
    losses: Iterable[str],
    head: str,
    encoder: str,
    *,
    fine_tune: bool = False,
    eval_rule: str = "auto",
) -> None:
    """Raise :class:`IncompatibleConfigError` naming the parts that do not fit."""
    from losstune.objectives.encoders import get_encoder_class
    from losstune.objectives.losses import get_loss_class
    from losstune.objectives.models import get_model_class

    head_cls = get_model_class(head)
    provides = frozenset(head_cls.provides)
    for name in losses:
        loss_cls = get_loss_class(name)
        missing = sorted(frozenset(loss_cls.requires) - provides)
        if missing:
            hint = ""
            if _TEACHER_OUTPUTS & set(missing):
                hint = "; teacher outputs come from model head 'latentg_student'"
            raise IncompatibleConfigError(
                f"loss {name!r} needs model output(s) {missing}; model head {head!r} provides "
                f"{sorted(provides)}{hint}"
            )
    encoder_cls = get_encoder_class(encoder)
    if fine_tune:
        if encoder not in _FINE_TUNABLE:
            raise IncompatibleConfigError(
                f"encoder.fine_tune is true but encoder {encoder!r} cannot be fine-tuned; "
                f"fine-tunable encoders: {list(_FINE_TUNABLE)}"
            )
        if head_cls.input not in ("embeddings", "token_states"):
            raise IncompatibleConfigError(
                f"encoder.fine_tune is true but model head {head!r} reads {head_cls.input!r}; "
                "a fine-tuned encoder feeds heads that read 'embeddings' or 'token_states'"
            )
        if _TEACHER_OUTPUTS & provides:
            raise IncompatibleConfigError(
                f"encoder.fine_tune is true but model head {head!r} has a teacher trained on "
                "cached embeddings of a frozen encoder; set encoder.fine_tune: false"
            )
    elif head_cls.input not in encoder_cls.provides:
        able = sorted(n for n, c in _encoders().items() if head_cls.input in c.provides)
        raise IncompatibleConfigError(
            f"model head {head!r} reads {head_cls.input!r}, but encoder {encoder!r} provides "
            f"{sorted(encoder_cls.provides)}; encoders that provide it: {able}"
        )
    if eval_rule == "centroid" and "embeddings" not in provides:
        raise IncompatibleConfigError(
            f"eval.rule 'centroid' needs embeddings; model head {head!r} provides "
            f"{sorted(provides)}"
        )


def _encoders() -> dict[str, Any]:
    from losstune.objectives.encoders import ENCODERS

    return ENCODERS
