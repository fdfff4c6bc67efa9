"""What every model head (built-in or plugin) must satisfy, checked on random inputs.

``check_model_class(cls)`` returns a list of :class:`~losstune.objectives.types.Problem`
(empty: the head passes). It is what ``losstune check-model`` and the project's own tests run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from losstune.objectives.models.heads import BaseHead
from losstune.objectives.registry import NAME_RULE, is_valid_name
from losstune.objectives.types import OUTPUT_FIELDS, ModelOutputs, Problem

#: Input kinds a head may read, and the cached encoder outputs each one means.
INPUT_KINDS = ("embeddings", "token_states", "token_ids")
#: Outputs a head passes through from its inputs rather than computing (no gradient expected).
_PASS_THROUGH = frozenset({"teacher_latents", "teacher_logits", "inputs", "token_mask"})


@dataclass(frozen=True)
class ModelShapes:
    batch: int = 5
    in_dim: int = 48
    num_classes: int = 4
    seq_len: int = 8
    vocab_size: int = 40
    latent_dim: int = 32


def model_context(cls: type[BaseHead], shapes: ModelShapes) -> dict[str, Any]:
    """Context arguments the head's constructor declares, filled with small sizes."""
    available = {
        "in_dim": shapes.in_dim,
        "num_classes": shapes.num_classes,
        "token_dim": shapes.in_dim,
        "max_length": shapes.seq_len,
        "vocab_size": shapes.vocab_size,
        "token_vectors": torch.randn(shapes.vocab_size, shapes.in_dim,
                                     generator=torch.Generator().manual_seed(0)),
    }
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in available.items() if k in params}


def random_inputs(cls: type[BaseHead], batch: int, shapes: ModelShapes,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random inputs of the head's input kind (plus teacher outputs it passes through)."""
    kind = cls.input
    out: dict[str, torch.Tensor] = {}
    if kind == "embeddings":
        out["embeddings"] = torch.randn(batch, shapes.in_dim, generator=generator)
    elif kind == "token_states":
        out["token_states"] = torch.randn(batch, shapes.seq_len, shapes.in_dim,
                                          generator=generator)
        mask = torch.ones(batch, shapes.seq_len)
        mask[:, shapes.seq_len // 2 + 1:] = 0  # padding at the end
        out["token_mask"] = mask
    elif kind == "token_ids":
        ids = torch.randint(1, shapes.vocab_size, (batch, shapes.seq_len), generator=generator)
        mask = torch.ones(batch, shapes.seq_len)
        ids[:, shapes.seq_len // 2 + 1:] = 0
        mask[:, shapes.seq_len // 2 + 1:] = 0
        out["token_ids"] = ids
        out["token_mask"] = mask
    if "teacher_latents" in cls.provides:
        out["teacher_latents"] = torch.randn(batch, shapes.latent_dim, generator=generator)
    if "teacher_logits" in cls.provides:
        out["teacher_logits"] = torch.randn(batch, shapes.num_classes, generator=generator)
    return out


def check_model_class(cls: type[BaseHead], *, shapes: ModelShapes | None = None,
                      space: dict[str, Any] | None = None, seed: int = 0) -> list[Problem]:
    """Every requirement of a head class; an empty list means it passes.

    Args:
        cls: the head class.
        shapes: sizes of the random inputs.
        space: its default search space (``MODEL_SPACES[name]``), checked against its knobs.
        seed: seed of the random inputs.
    """
    from losstune.objectives.models import HEAD_CONTEXT_ARGS, model_hyperparameters

    shapes = shapes or ModelShapes()
    name = str(getattr(cls, "name", "") or getattr(cls, "__qualname__", repr(cls)))
    problems: list[Problem] = []

    def add(step: str, message: str) -> None:
        problems.append(Problem(name, step, message))

    if not (isinstance(cls, type) and issubclass(cls, BaseHead)):
        add("registry", f"{cls!r} is not a subclass of losstune.objectives.models.BaseHead")
        return problems
    if not is_valid_name(name):
        add("registry", f"`name` must be snake_case ({NAME_RULE}), got {name!r}")
    if cls.input not in INPUT_KINDS:
        add("registry", f"`input` must be one of {list(INPUT_KINDS)}, got {cls.input!r}")
        return problems
    unknown = sorted(set(cls.provides) - set(OUTPUT_FIELDS))
    if unknown:
        add("registry", f"`provides` names unknown output(s) {unknown}; known: "
                        f"{list(OUTPUT_FIELDS)}")
    if "logits" not in cls.provides:
        add("registry", "`provides` must include 'logits' (every head classifies)")
    if not (cls.__dict__.get("__doc__") or "").strip():
        add("docstring", "the class has no docstring (what it computes, its knobs)")
    knobs = model_hyperparameters(cls)
    for pname, p in inspect.signature(cls.__init__).parameters.items():
        if pname == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.kind != p.KEYWORD_ONLY:
            add("constructor", f"argument {pname!r} must be keyword-only (put `*,` before it)")
        elif pname not in HEAD_CONTEXT_ARGS and p.default is inspect.Parameter.empty:
            add("constructor", f"knob {pname!r} needs a default")
    if space is not None:
        extra = sorted(set(space) - set(knobs))
        if extra:
            add("search space", f"MODEL_SPACES[{name!r}] has key(s) {extra} that are not "
                                f"constructor knobs {sorted(knobs)}")
    try:
        model = cls(**model_context(cls, shapes))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        add("constructor", f"cannot build with its defaults: {type(exc).__name__}: {exc}")
        return problems
    generator = torch.Generator().manual_seed(seed)
    for batch in (shapes.batch, 1):
        _check_forward(cls, model, batch, shapes, generator, add)
    return problems


def _check_forward(cls: type[BaseHead], model: BaseHead, batch: int, shapes: ModelShapes,
                   generator: torch.Generator, add: Any) -> None:
    model.train()
    model.zero_grad(set_to_none=True)
    inputs = random_inputs(cls, batch, shapes, generator)
    try:
        out = model(inputs)
    except Exception as exc:  # noqa: BLE001
        add("forward", f"batch of {batch}: forward raised {type(exc).__name__}: {exc}")
        return
    if not isinstance(out, ModelOutputs):
        add("forward", f"forward must return ModelOutputs, got {type(out).__name__}")
        return
    missing = sorted(set(cls.provides) - set(out.available()))
    if missing:
        add("outputs", f"batch of {batch}: declared output(s) {missing} not produced")
    if tuple(out.logits.shape) != (batch, shapes.num_classes):
        add("outputs", f"batch of {batch}: logits have shape {tuple(out.logits.shape)}, "
                       f"expected {(batch, shapes.num_classes)}")
    if out.embeddings is not None and (out.embeddings.ndim != 2
                                       or out.embeddings.shape[0] != batch):
        add("outputs", f"batch of {batch}: embeddings must be (batch, dim), got "
                       f"{tuple(out.embeddings.shape)}")
    for field in sorted(out.available()):
        value = out.get(field)
        if value.shape[0 if field != "space_activations" else 1] != batch:
            add("outputs", f"batch of {batch}: output {field!r} has shape "
                           f"{tuple(value.shape)}, whose batch axis is not {batch}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            add("outputs", f"batch of {batch}: output {field!r} is not finite")
    total = out.logits.float().sum()
    for field in sorted(out.available() - _PASS_THROUGH - {"logits"}):
        value = out.get(field)
        if value.is_floating_point() and value.requires_grad:
            total = total + value.float().mean()
    try:
        total.backward()
    except Exception as exc:  # noqa: BLE001
        add("gradients", f"batch of {batch}: backward raised {type(exc).__name__}: {exc}")
        return
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    if not grads:
        add("gradients", "the head has no trainable parameters")
    elif any(g is not None and not torch.isfinite(g).all() for g in grads):
        add("gradients", f"batch of {batch}: non-finite gradients")
    elif all(g is None or float(g.abs().sum()) == 0.0 for g in grads):
        add("gradients", f"batch of {batch}: no gradient reaches the parameters")
