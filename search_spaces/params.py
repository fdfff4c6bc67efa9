"""Parameter definitions and the study-file override grammar.

A parameter is a dotted name (``train.lr``, ``loss.focal.gamma``, ``weight.triplet``), a
distribution, a default (the paper's value, used by the baseline trial) and optional conditions
(``loss.name == "focal"``). A study file may override any parameter by name:

* a scalar fixes it: ``train.batch_size: 64``;
* ``{low, high[, log][, step]}`` sets a numeric range;
* ``{choices: [...]}`` or a bare list makes it categorical over those values;
* ``{value: X}`` fixes it to X (for list-valued fixes);
* ``default: X`` beside a range or choices, or alone (``{default: X}`` keeps the distribution),
  sets the value the baseline trial runs; it must lie in the distribution. The default is not
  part of the space's fingerprint, so changing it never stops a study from resuming.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class FloatDist:
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def __post_init__(self) -> None:
        _check_range(self.low, self.high, self.log, self.step)

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= float(value) <= self.high

    def describe(self) -> str:
        extra = " log" if self.log else (f" step {self.step}" if self.step else "")
        return f"float [{self.low:g}, {self.high:g}]{extra}"


@dataclass(frozen=True)
class IntDist:
    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        for name, v in (("low", self.low), ("high", self.high), ("step", self.step)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"integer parameter needs an integer {name}, but got {v!r}")
        _check_range(self.low, self.high, self.log, self.step)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and (
            self.low <= value <= self.high
        )

    def describe(self) -> str:
        extra = " log" if self.log else (f" step {self.step}" if self.step != 1 else "")
        return f"int [{self.low}, {self.high}]{extra}"


@dataclass(frozen=True)
class CategoricalDist:
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len(self.choices) == 0:
            raise ValueError("`choices` must be non-empty")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"`choices` must not repeat values, but got {list(self.choices)}")
        for c in self.choices:
            if not (c is None or isinstance(c, (bool, int, float, str))):
                raise ValueError(
                    f"choices must be None, bool, int, float or str, but got {c!r}"
                )

    def contains(self, value: Any) -> bool:
        return any(value == c and type(value) is type(c) for c in self.choices) or (
            _is_number(value) and any(_is_number(c) and value == c for c in self.choices)
        )

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.choices))


@dataclass(frozen=True)
class FixedDist:
    value: Any

    def contains(self, value: Any) -> bool:
        return value == self.value

    def describe(self) -> str:
        return f"fixed {self.value!r}"


Distribution = FloatDist | IntDist | CategoricalDist | FixedDist


@dataclass(frozen=True)
class Param:
    """One searchable parameter.

    Attributes:
        name: dotted, stable name stored in studies.
        dist: its distribution.
        default: the paper's / constructor's value (the baseline trial uses it).
        when: conditions ``((other_name, required_value), ...)``; the parameter exists only
            when every condition holds for values sampled earlier.
        help: one line for ``losstune space``.
    """

    name: str
    dist: Distribution
    default: Any = None
    when: tuple[tuple[str, Any], ...] = ()
    help: str = ""

    def with_dist(self, dist: Distribution) -> Param:
        return replace(self, dist=dist)

    def effective_default(self) -> Any:
        """The default as the (overridden) distribution allows it: what ``losstune space``
        shows and the baseline trial runs. A fixed parameter's value; a default outside a range
        clamped to the nearer end and snapped to its ``step``; a default that is not a choice
        replaced by the nearest numeric choice, else the first choice; no default: ``low``."""
        return value_in(self.dist, self.default)


def value_in(dist: Distribution, value: Any) -> Any:
    """``value`` moved into ``dist`` (see :meth:`Param.effective_default`)."""
    if isinstance(dist, FixedDist):
        return dist.value
    if isinstance(dist, CategoricalDist):
        if dist.contains(value):
            return value
        numbers = [c for c in dist.choices if _is_number(c)]
        if _is_number(value) and numbers:
            return min(numbers, key=lambda c: abs(float(c) - float(value)))
        return dist.choices[0]
    if not _is_number(value):
        return dist.low
    clamped = min(max(value, dist.low), dist.high)
    step = dist.step
    if step:
        k = round((clamped - dist.low) / step)
        while k > 0 and dist.low + k * step > dist.high + 1e-12 * max(1.0, abs(dist.high)):
            k -= 1
        clamped = dist.low + k * step
    if isinstance(dist, IntDist):
        return int(round(clamped))
    return float(round(clamped, 12)) if step else float(clamped)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_range(low: float, high: float, log: bool, step: float | None) -> None:
    if not (_is_number(low) and _is_number(high)):
        raise ValueError(f"low and high must be numbers, but got low={low!r}, high={high!r}")
    if not math.isfinite(low) or not math.isfinite(high):
        raise ValueError(f"low and high must be finite, but got low={low}, high={high}")
    if low > high:
        raise ValueError(f"`low <= high` must hold, but got (low={low}, high={high}).")
    if log and low <= 0:
        raise ValueError(f"`low > 0` must hold for a log range, but got low={low}.")
    if log and step not in (None, 1):
        raise ValueError("a parameter cannot have both `log: true` and a `step`")
    if step is not None and step <= 0:
        raise ValueError(f"`step > 0` must hold, but got step={step}.")


_RANGE_KEYS = {"low", "high", "log", "step"}


def apply_override(param: Param, raw: Any) -> Param:
    """``param`` with a study-file override applied: its distribution (:func:`parse_override`)
    and, from a ``default`` key, its baseline value; raises ``ValueError``."""
    if not isinstance(raw, Mapping) or "default" not in raw:
        return param.with_dist(parse_override(param, raw))
    rest = {k: v for k, v in raw.items() if k != "default"}
    default = raw["default"]
    if "value" in rest:
        raise ValueError("a fixed parameter (`value`) has no separate `default`; write "
                         "the value alone to fix it, or a range or choices with a `default`")
    dist = parse_override(param, rest) if rest else param.dist
    if isinstance(dist, FixedDist):
        raise ValueError(f"{param.name} is fixed to {dist.value!r}; a `default` needs a range "
                         "or choices to lie in")
    if isinstance(dist, FloatDist) and _is_number(default):
        default = float(default)
    if not dist.contains(default):
        raise ValueError(f"default {default!r} is not in the distribution "
                         f"({dist.describe()}); pick a value inside it")
    return replace(param, dist=dist, default=default)


def parse_override(param: Param, raw: Any) -> Distribution:
    """Turn a study-file override of ``param`` into a distribution, or raise ``ValueError``."""
    base = param.dist
    numeric = isinstance(base, (FloatDist, IntDist)) or (
        isinstance(base, FixedDist) and _is_number(base.value)
    )
    if isinstance(raw, list):
        raw = {"choices": raw}
    if isinstance(raw, Mapping) and "type" in raw:
        raw = dict(raw)
        kind = raw.pop("type")
        if kind not in ("float", "int", "categorical"):
            raise ValueError(f"`type` must be float, int or categorical, but got {kind!r}")
        if kind == "categorical" and "choices" not in raw:
            raise ValueError("a categorical parameter needs `choices: [...]`")
        if kind in ("float", "int") and not {"low", "high"} <= set(raw) and "value" not in raw:
            raise ValueError(f"a {kind} parameter needs `low` and `high`")
        if kind == "int":
            base = IntDist(0, 1)
            numeric = True
        elif kind == "float":
            base = FloatDist(0.0, 1.0)
            numeric = True
        param = Param(param.name, base, param.default, param.when, param.help)
    if not isinstance(raw, Mapping):
        _check_fixed_type(param, raw)
        return FixedDist(raw)
    keys = set(raw)
    if keys == {"value"}:
        _check_fixed_type(param, raw["value"])
        return FixedDist(raw["value"])
    if keys == {"choices"}:
        choices = raw["choices"]
        if not isinstance(choices, list):
            raise ValueError(f"`choices` must be a list, but got {choices!r}")
        for c in choices:
            _check_fixed_type(param, c)
        return CategoricalDist(tuple(choices))
    if keys <= _RANGE_KEYS and {"low", "high"} <= keys:
        if not numeric:
            raise ValueError(
                f"{param.name} is categorical ({base.describe()}); override it with "
                "`choices: [...]` or a single value, not low/high"
            )
        low, high = raw["low"], raw["high"]
        log = bool(raw.get("log", getattr(base, "log", False)))
        is_int = isinstance(base, IntDist) or (
            isinstance(base, FixedDist) and isinstance(base.value, int)
        )
        if is_int:
            return IntDist(low, high, log=log, step=raw.get("step", 1))
        return FloatDist(float(low), float(high), log=log, step=raw.get("step"))
    raise ValueError(
        f"cannot read override {dict(raw)!r}; write a value, a list of choices, "
        "{choices: [...]}, {value: X} or {low: A, high: B[, log: true][, step: S]}; "
        "choices and ranges may add `default: X`, the baseline trial's value"
    )


def _check_fixed_type(param: Param, value: Any) -> None:
    base = param.dist
    if isinstance(base, FloatDist) and not _is_number(value):
        raise ValueError(f"{param.name} takes a number, but got {value!r}")
    if isinstance(base, IntDist) and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"{param.name} takes an integer, but got {value!r}")

