"""Knob values checked against the constructors that take them, before anything trains.

A loss or head states its knobs' domains in its constructor (``check(gamma >= 0, ...)`` raises
``ValueError``). Rather than restating those rules, losstune builds the class with the values a
study can reach, on a small stand-in context (the sizes the loss and head contract tests use,
or the real class counts when the data is loaded), and turns a refusal into a message naming
the parameter, the value and the rule. Study files (every searched range's endpoints, every
categorical choice, every fixed value) and replayed configs (``losstune train``) go through
here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from losstune.objectives.errors import short_repr, short_text


@dataclass(frozen=True)
class KnobContext:
    """The data-dependent constructor arguments to build with (small stand-ins by default).

    Attributes:
        num_classes: classes of the data.
        class_counts: training documents per class (default: a long-tailed stand-in).
        max_length: token positions (heads over token states).
    """

    num_classes: int = 4
    class_counts: Sequence[float] | None = None
    max_length: int = 8

    @classmethod
    def from_dataset(cls, dataset: Any, *, max_length: int = 8) -> KnobContext:
        counts = [float(c) for c in dataset.class_counts("train")]
        return cls(num_classes=len(dataset.class_names), class_counts=tuple(counts),
                   max_length=max_length)


def _refusal(exc: Exception) -> str:
    text = short_text(str(exc).strip() or type(exc).__name__, 300)
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def _loss_context(cls: type, context: KnobContext) -> dict[str, Any]:
    import torch

    from losstune.objectives.losses.contract import Shapes, loss_context

    shapes = Shapes(num_classes=max(context.num_classes, 1))
    out = loss_context(cls, shapes)
    if "class_counts" in out and context.class_counts is not None:
        out["class_counts"] = torch.tensor(list(context.class_counts), dtype=torch.float32)
    if "num_train" in out and context.class_counts is not None:
        out["num_train"] = max(int(sum(context.class_counts)), 1)
    return out


def _model_context(cls: type, context: KnobContext) -> dict[str, Any]:
    from losstune.objectives.models.contract import ModelShapes, model_context

    return model_context(cls, ModelShapes(num_classes=max(context.num_classes, 1),
                                          seq_len=max(context.max_length, 2)))


def loss_refusal(name: str, knobs: Mapping[str, Any],
                 context: KnobContext | None = None) -> str | None:
    """None when loss ``name`` builds with ``knobs``; else its constructor's reason.

    Knob names must be the loss's (see :func:`unknown_loss_knobs`)."""
    from losstune.objectives.losses import get_loss_class

    cls = get_loss_class(name)
    try:
        cls(**dict(knobs), **_loss_context(cls, context or KnobContext()))
    except Exception as exc:  # noqa: BLE001 - the constructor's refusal is the message
        return _refusal(exc)
    return None


def model_refusal(head: str, knobs: Mapping[str, Any],
                  context: KnobContext | None = None) -> str | None:
    """None when head ``head`` builds with ``knobs``; else its constructor's reason."""
    from losstune.objectives.models import get_model_class

    cls = get_model_class(head)
    try:
        cls(**dict(knobs), **_model_context(cls, context or KnobContext()))
    except Exception as exc:  # noqa: BLE001
        return _refusal(exc)
    return None


def unknown_loss_knobs(name: str, knobs: Mapping[str, Any]) -> str | None:
    """A message when ``knobs`` has names loss ``name`` does not take (None otherwise)."""
    from losstune.objectives.losses import get_loss_class

    valid = sorted(get_loss_class(name).hyperparameters())
    unknown = [k for k in knobs if k not in valid]
    if not unknown:
        return None
    return (f"loss {name!r} has no knob(s) {short_repr(unknown)}; its knobs: "
            f"{', '.join(valid) or '(none)'}")


def unknown_model_knobs(head: str, knobs: Mapping[str, Any]) -> str | None:
    """A message when ``knobs`` has names head ``head`` does not take (None otherwise)."""
    from losstune.objectives.models import get_model_class, model_hyperparameters

    valid = sorted(model_hyperparameters(get_model_class(head)))
    unknown = [k for k in knobs if k not in valid]
    if not unknown:
        return None
    return (f"model head {head!r} has no parameter(s) {short_repr(unknown)}; valid "
            f"parameters: {', '.join(valid) or '(none)'}")


def blame(refuse: Any, knobs: Mapping[str, Any]) -> list[tuple[str | None, Any, str]]:
    """Which of ``knobs`` a constructor refuses: ``(knob, value, reason)`` for each knob it
    refuses on its own (the others at their defaults), or one ``(None, knobs, reason)`` when
    only the combination fails. ``refuse(knobs)`` returns a reason or None."""
    reason = refuse(dict(knobs))
    if reason is None:
        return []
    alone = [(k, v, r) for k, v in knobs.items() if (r := refuse({k: v})) is not None]
    return alone or [(None, dict(knobs), reason)]


def config_problems(config: Any, context: KnobContext | None = None) -> list[str]:
    """Knob problems of a :class:`~losstune.objectives.config.TrialConfig` (a replayed or
    edited export): unknown knob names and values the loss or head constructors refuse, each
    with its path (``loss.terms[0].params.label_smoothing``)."""
    problems: list[str] = []
    from losstune.objectives.losses import get_loss_class

    for i, term in enumerate(config.loss.terms):
        where = f"loss.terms[{i}]"
        unknown = unknown_loss_knobs(term.name, term.params)
        if unknown:
            problems.append(f"{where}.params: {unknown}")
            continue
        subs = get_loss_class(term.name).sub_terms
        bad_subs = [k for k in term.sub_weights if k not in subs]
        if bad_subs:
            problems.append(f"{where}.sub_weights: loss {term.name!r} has no sub-term(s) "
                            f"{short_repr(bad_subs)}; its sub-terms: {list(subs)}")
        for knob, value, reason in blame(
                lambda k, name=term.name: loss_refusal(name, k, context), term.params):
            path = f"{where}.params.{knob}" if knob else f"{where}.params"
            problems.append(f"{path}: {short_repr(value)} is refused by loss {term.name!r}: "
                            f"{reason}")
    unknown = unknown_model_knobs(config.model.head, config.model.params)
    if unknown:
        problems.append(f"model.params: {unknown}")
    else:
        for knob, value, reason in blame(
                lambda k: model_refusal(config.model.head, k, context), config.model.params):
            path = f"model.params.{knob}" if knob else "model.params"
            problems.append(f"{path}: {short_repr(value)} is refused by model head "
                            f"{config.model.head!r}: {reason}")
    return problems


__all__ = [
    "KnobContext",
    "blame",
    "config_problems",
    "loss_refusal",
    "model_refusal",
    "unknown_loss_knobs",
    "unknown_model_knobs",
]
