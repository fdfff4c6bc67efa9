"""What every loss class must satisfy, checked on the class and on random tensors.

:func:`check_loss_class` runs the checks that need only torch: class attributes, docstring,
constructor defaults and argument checks, finite values and gradients on random outputs of the
fields the loss declares in ``requires`` (a normal batch, a batch of one, a class without
positives), and the ``get_config_dict`` round trip. The search-space part (a ``LOSS_SPACES``
entry, sampling knobs from a real Optuna trial) lives in :mod:`losstune.search_spaces.contract`,
whose
``check_loss_contract`` calls this one; tests and ``losstune check-loss`` use that.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import torch

from losstune.objectives.losses.base import CONTEXT_ARGS, BaseLoss, Batch
from losstune.objectives.registry import NAME_RULE, is_valid_name
from losstune.objectives.types import OUTPUT_FIELDS, ModelOutputs, Problem

#: Outputs whose random stand-ins take gradients (the others are data or a frozen teacher).
_TRAINABLE_OUTPUTS = frozenset(
    {"logits", "embeddings", "space_activations", "latents", "reconstruction"}
)


@dataclass(frozen=True)
class Shapes:
    """Sizes of the random stand-ins for model outputs."""

    num_classes: int = 4
    embedding_dim: int = 6
    seq_len: int = 5
    n_latent: int = 3
    latent_dim: int = 5
    input_dim: int = 7


def loss_context(cls: type[BaseLoss], shapes: Shapes, *, num_train: int = 100) -> dict[str, Any]:
    """The context arguments (``num_classes``, ``class_counts``, ...) this class takes."""
    c = shapes.num_classes
    available = {
        "num_classes": c,
        "embedding_dim": shapes.embedding_dim,
        "class_counts": torch.tensor([float(max(num_train // (2**i), 1)) for i in range(c)]),
        "num_train": num_train,
    }
    return {k: v for k, v in available.items() if k in cls.context_arguments()}


def random_outputs(
    requires: Iterable[str], batch_size: int, shapes: Shapes, generator: torch.Generator
) -> tuple[ModelOutputs, dict[str, torch.Tensor]]:
    """Random tensors for the declared outputs, and the leaves that take gradients."""
    b, c = batch_size, shapes.num_classes
    leaves: dict[str, torch.Tensor] = {}

    def leaf(name: str, *shape: int) -> torch.Tensor:
        t = torch.randn(*shape, generator=generator)
        if name in _TRAINABLE_OUTPUTS:
            t.requires_grad_(True)
            leaves[name] = t
        return t

    makers = {
        "logits": lambda: leaf("logits", b, c),
        "embeddings": lambda: leaf("embeddings", b, shapes.embedding_dim),
        "space_activations": lambda: torch.tanh(
            leaf("space_activations", c, b, shapes.seq_len, shapes.n_latent)
        ),
        "token_mask": lambda: _random_mask(b, shapes.seq_len, generator),
        "latents": lambda: leaf("latents", b, shapes.latent_dim),
        "reconstruction": lambda: leaf("reconstruction", b, shapes.input_dim),
        "inputs": lambda: torch.randn(b, shapes.input_dim, generator=generator),
        "teacher_latents": lambda: torch.randn(b, shapes.latent_dim, generator=generator),
        "teacher_logits": lambda: torch.randn(b, c, generator=generator),
    }
    needed = set(requires) | {"logits"}
    values = {name: makers[name]() for name in sorted(needed) if name in makers}
    logits = values.pop("logits")
    embeddings = values.pop("embeddings", None)
    return ModelOutputs(logits=logits, embeddings=embeddings, extras=values), leaves


def _random_mask(b: int, length: int, generator: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(2, length + 1, (b,), generator=generator)
    return (torch.arange(length)[None, :] < lengths[:, None]).float()


def random_batch(
    batch_size: int,
    num_classes: int,
    generator: torch.Generator,
    *,
    multilabel: bool = False,
    absent_class: int | None = None,
) -> Batch:
    """Labels for a random batch; ``absent_class`` has no positive example."""
    choices = [k for k in range(num_classes) if k != absent_class] or [0]
    pick = torch.randint(len(choices), (batch_size,), generator=generator)
    y = torch.tensor(choices)[pick]
    y_multi = torch.nn.functional.one_hot(y, num_classes).float()
    if multilabel:
        extra = (torch.rand(batch_size, num_classes, generator=generator) < 0.3).float()
        y_multi = torch.clamp(y_multi + extra, max=1.0)
        if absent_class is not None:
            y_multi[:, absent_class] = 0.0
    return Batch(index=torch.arange(batch_size), y=None if multilabel else y, y_multi=y_multi,
                 epoch=1, num_epochs=3)


# ---------------------------------------------------------------------------- the checks


def check_loss_class(
    cls: type[BaseLoss],
    *,
    knob_samples: Iterable[Mapping[str, Any]] = (),
    tests_dir: Path | None = None,
    shapes: Shapes | None = None,
    seed: int = 0,
) -> list[Problem]:
    """Every torch-level requirement of a loss class; an empty list means it passes.

    Args:
        cls: the loss class.
        knob_samples: knob dicts (e.g. drawn from the loss's search space) to evaluate besides
            the defaults.
        tests_dir: when given, some ``test_*.py`` below it must mention the loss's name in
            quotes.
        shapes: sizes of the random outputs.
        seed: seed of the random tensors.
    """
    shapes = shapes or Shapes()
    name = getattr(cls, "name", "") or getattr(cls, "__qualname__", repr(cls))
    problems: list[Problem] = []

    def add(step: str, message: str) -> None:
        problems.append(Problem(str(name), step, message))

    if not (isinstance(cls, type) and issubclass(cls, BaseLoss)):
        add("registry", f"{cls!r} is not a subclass of losstune.objectives.losses.BaseLoss")
        return problems
    _check_attributes(cls, add)
    knobs = cls.hyperparameters()
    _check_signature(cls, knobs, add)
    _check_docstring(cls, knobs, add)
    if tests_dir is not None:
        _check_tests(str(name), tests_dir, add)
    context = loss_context(cls, shapes)
    try:
        loss = cls(**context)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        add("constructor", f"cannot build with its defaults: {type(exc).__name__}: {exc}")
        return problems
    _check_defaults(cls, loss, knobs, add)
    _check_argument_errors(cls, knobs, context, add)
    _check_round_trip(cls, loss, knobs, context, add)
    if not hasattr(cls, "compute") or not callable(cls.compute):
        add("compute", "has no tensor-only `compute(...)` method (the maths tests call)")
    generator = torch.Generator().manual_seed(seed)
    candidates: list[tuple[str, Mapping[str, Any]]] = [("defaults", {})]
    candidates += [(f"sampled knobs {dict(k)}", k) for k in knob_samples]
    for label, knob_values in candidates:
        try:
            built = cls(**dict(knob_values), **context)
        except Exception as exc:  # noqa: BLE001
            add("constructor", f"cannot build with {label}: {type(exc).__name__}: {exc}")
            continue
        _check_forward(cls, built, label, shapes, generator, add)
    return problems


def _check_attributes(cls: type[BaseLoss], add: Any) -> None:
    name = cls.name
    if not is_valid_name(name):
        add("registry", f"`name` must be snake_case ({NAME_RULE}), got {name!r}")
    if not cls.display_name:
        add("registry", "set `display_name` (the paper's label, e.g. 'DB' or 'ArcFace')")
    unknown = sorted(set(cls.requires) - set(OUTPUT_FIELDS))
    if unknown:
        add("registry", f"`requires` names unknown output(s) {unknown}; known: "
                        f"{list(OUTPUT_FIELDS)} (objectives/types.py)")
    if cls.targets not in ("index", "multi_hot"):
        add("registry", f"`targets` must be 'index' or 'multi_hot', got {cls.targets!r}")
    for sub in cls.sub_terms:
        if not sub.isidentifier():
            add("registry", f"sub-term {sub!r} must be an identifier (it names a parameter)")


def _check_signature(cls: type[BaseLoss], knobs: Mapping[str, inspect.Parameter],
                     add: Any) -> None:
    params = inspect.signature(cls.__init__).parameters
    for pname, p in params.items():
        if pname == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.kind != p.KEYWORD_ONLY:
            add("constructor", f"argument {pname!r} must be keyword-only (put `*,` before it)")
        if pname in CONTEXT_ARGS:
            continue
        if p.default is inspect.Parameter.empty:
            add("constructor", f"knob {pname!r} needs a default (the paper's value)")
        if p.annotation is inspect.Parameter.empty:
            add("constructor", f"knob {pname!r} needs a type annotation")


_SECTION = re.compile(r"^\s*(Args|References|Inputs|Relations|Example)s?:", re.M)


def _check_docstring(cls: type[BaseLoss], knobs: Mapping[str, Any], add: Any) -> None:
    doc = cls.__dict__.get("__doc__") or ""
    if not doc.strip():
        add("docstring", "the class has no docstring (formula, Args, References, Inputs)")
        return
    if not re.search(r"``[^`]*=[^`]*``", doc):
        add("docstring", "no formula found; write it as a literal, e.g. ``L = mean_b ...``")
    sections = {m.group(1) for m in _SECTION.finditer(doc)}
    for section in ("References", "Inputs"):
        if section not in sections:
            add("docstring", f"missing a `{section}:` section")
    if knobs:
        if "Args" not in sections:
            add("docstring", "missing an `Args:` section describing the knobs")
        else:
            missing = [k for k in knobs if not re.search(rf"^\s*{re.escape(k)}\b.*:", doc, re.M)]
            if missing:
                add("docstring", f"`Args:` does not describe knob(s) {missing}")


def _check_tests(name: str, tests_dir: Path, add: Any) -> None:
    needles = (f'"{name}"', f"'{name}'")
    for path in sorted(Path(tests_dir).rglob("test_*.py")):
        if path.name == "test_loss_contract.py":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if any(n in text for n in needles):
            return
    add("tests", f"no test module under {tests_dir} mentions {name!r}; add "
                 f"test_<family>.py with its reference maths")


def _check_defaults(cls: type[BaseLoss], loss: BaseLoss, knobs: Mapping[str, inspect.Parameter],
                    add: Any) -> None:
    for k, p in knobs.items():
        if not hasattr(loss, k):
            add("constructor", f"knob {k!r} is not stored as an attribute of the same name")
            continue
        if p.default is not inspect.Parameter.empty and getattr(loss, k) != p.default:
            add("constructor", f"attribute {k}={getattr(loss, k)!r} differs from its default "
                               f"{p.default!r}")


def _check_argument_errors(cls: type[BaseLoss], knobs: Mapping[str, Any],
                           context: Mapping[str, Any], add: Any) -> None:
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception as exc:  # noqa: BLE001
        add("argument checks", f"cannot resolve the constructor's annotations: {exc}")
        return
    for k in knobs:
        bad = _invalid_value(hints.get(k))
        if bad is _NO_BAD_VALUE:
            continue
        try:
            cls(**{k: bad}, **context)
        except ValueError as exc:
            if k not in str(exc):
                add("argument checks", f"the error for {k}={bad!r} does not name {k!r}: {exc}")
        except Exception as exc:  # noqa: BLE001
            add("argument checks", f"{k}={bad!r} raised {type(exc).__name__} instead of "
                                   f"ValueError: {exc}")
        else:
            add("argument checks", f"{k}={bad!r} was accepted; check the knob in __init__ "
                                   "(e.g. check(gamma >= 0, ...))")


_NO_BAD_VALUE = object()


def _invalid_value(annotation: Any) -> Any:
    """A value the constructor must reject: NaN for floats, an unknown string for Literals."""
    if annotation is float:
        return math.nan
    origin = get_origin(annotation)
    if origin is Literal:
        return "__not_a_choice__"
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _invalid_value(args[0])
    return _NO_BAD_VALUE


def _check_round_trip(cls: type[BaseLoss], loss: BaseLoss, knobs: Mapping[str, Any],
                      context: Mapping[str, Any], add: Any) -> None:
    try:
        config = loss.get_config_dict()
        json.dumps(config)
    except Exception as exc:  # noqa: BLE001
        add("config round-trip", f"get_config_dict() is not JSON-able: {exc}")
        return
    if set(config) != set(knobs):
        add("config round-trip", f"get_config_dict() keys {sorted(config)} differ from the "
                                 f"knobs {sorted(knobs)}")
    try:
        again = cls(**config, **context).get_config_dict()
    except Exception as exc:  # noqa: BLE001
        add("config round-trip", f"cannot rebuild from get_config_dict(): {exc}")
        return
    if again != config:
        add("config round-trip", f"rebuilding from {config} gives {again}")


def _check_forward(cls: type[BaseLoss], loss: BaseLoss, label: str, shapes: Shapes,
                   generator: torch.Generator, add: Any) -> None:
    cases = [("forward", 8, None, False), ("batch of one", 1, None, False),
             ("class without positives", 8, shapes.num_classes - 1, False)]
    if not cls.single_label_only:
        cases.append(("forward", 8, shapes.num_classes - 1, True))
    for step, b, absent, multilabel in cases:
        where = f"{label}, batch {b}{', multi-label' if multilabel else ''}"
        loss.on_epoch_start(1, 3)
        outputs, leaves = random_outputs(cls.requires, b, shapes, generator)
        batch = random_batch(b, shapes.num_classes, generator, multilabel=multilabel,
                             absent_class=absent)
        try:
            value = loss(outputs, batch)
        except Exception as exc:  # noqa: BLE001
            add(step, f"forward raised {type(exc).__name__}: {exc} ({where})")
            continue
        if isinstance(value, Mapping):
            if set(value) != set(cls.sub_terms):
                add(step, f"returned terms {sorted(value)} but declares sub_terms "
                          f"{list(cls.sub_terms)} ({where})")
                continue
            total = sum(value.values())
        else:
            if cls.sub_terms:
                add(step, f"declares sub_terms {list(cls.sub_terms)} but returned one tensor")
                continue
            total = value
        if not isinstance(total, torch.Tensor) or total.ndim != 0:
            add(step, f"must return a scalar tensor (or a dict of them), got {total!r}")
            continue
        if not torch.isfinite(total):
            add(step, f"loss is {float(total.detach())} ({where})")
            continue
        params = [p for p in loss.parameters() if p.requires_grad]
        inputs = list(leaves.values()) + params
        if not total.requires_grad:
            add("backward", f"the loss does not depend on any trainable output ({where})")
            continue
        grads = torch.autograd.grad(total, inputs, allow_unused=True)
        bad = [n for n, g in zip(list(leaves) + ["<loss parameter>"] * len(params), grads,
                                 strict=True) if g is not None and not torch.isfinite(g).all()]
        if bad:
            add("backward", f"non-finite gradient of {sorted(set(bad))} ({where})")
        elif step == "forward" and not any(g is not None and g.abs().sum() > 0 for g in grads):
            add("backward", f"every gradient is zero ({where})")
