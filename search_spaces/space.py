"""The search-space compiler: from a study's loss choices and overrides to parameters and back.

:meth:`SearchSpace.build` assembles the default spaces of the chosen losses, auxiliary terms,
head and training settings, applies the study file's overrides and checks them.
:meth:`SearchSpace.sample` walks the parameters with an Optuna trial (this package is the only
one that calls ``trial.suggest_*``), skipping a loss's knobs unless that loss was chosen.
:meth:`SearchSpace.to_config` turns the sampled values into a plain
:class:`~losstune.objectives.config.TrialConfig`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from losstune.objectives.config import LossConfig, LossTerm, ModelConfig, TrialConfig
from losstune.objectives.errors import LosstuneError
from losstune.objectives.losses import get_loss_class
from losstune.objectives.models import get_model_class, model_hyperparameters
from losstune.objectives.registry import did_you_mean
from losstune.search_spaces.losses import AUX_WEIGHT, AUX_WEIGHT_DEFAULTS, LOSS_SPACES
from losstune.search_spaces.params import (
    CategoricalDist,
    Distribution,
    FixedDist,
    FloatDist,
    IntDist,
    Param,
    apply_override,
)
from losstune.search_spaces.training import (
    EARLIER_TRAIN_SPACES,
    FINE_TUNE_SPACE,
    MODEL_SPACES,
    TRAIN_SPACE,
)

LOSS_NAME = "loss.name"
#: Placeholder distributions giving a declared knob its kind before the override is read.
_TYPE_STUBS: dict[str, Distribution] = {
    "float": FloatDist(0.0, 1.0),
    "int": IntDist(0, 1),
    "categorical": CategoricalDist((None,)),
}


class SpaceError(LosstuneError, ValueError):
    """A search space or an override of it is invalid; the message names the parameter."""


def _constructor_defaults(fn: Any, names: Iterable[str]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    return {
        n: params[n].default
        for n in names
        if n in params and params[n].default is not inspect.Parameter.empty
    }


def _loss_params(name: str, when: tuple[tuple[str, Any], ...]) -> list[Param]:
    cls = get_loss_class(name)
    if name not in LOSS_SPACES:
        raise SpaceError(
            f"loss {name!r} has no default search space; add an entry to "
            "losstune.search_spaces.losses.LOSS_SPACES (or register_loss_space for a plugin)"
        )
    space = LOSS_SPACES[name]
    knobs = cls.hyperparameters()
    extra = sorted(set(space) - set(knobs))
    if extra:
        raise SpaceError(
            f"search space of loss {name!r} has parameter(s) {extra} that its constructor does "
            f"not take; constructor knobs: {sorted(knobs)}"
        )
    defaults = _constructor_defaults(cls.__init__, space)
    return [
        Param(f"loss.{name}.{arg}", dist, defaults.get(arg), when, help=f"{cls.__name__}.{arg}")
        for arg, dist in space.items()
    ]


def _aux_params(name: str) -> list[Param]:
    cls = get_loss_class(name)
    default = AUX_WEIGHT_DEFAULTS.get(name, 1.0)
    if cls.sub_terms:
        weights = [
            Param(f"weight.{name}.{sub}", AUX_WEIGHT, AUX_WEIGHT_DEFAULTS.get(f"{name}.{sub}",
                  default), help=f"weight of term {name}.{sub}")
            for sub in cls.sub_terms
        ]
    else:
        weights = [Param(f"weight.{name}", AUX_WEIGHT, default, help=f"weight of term {name}")]
    return weights + _loss_params(name, ())


def _model_params(head: str) -> list[Param]:
    cls = get_model_class(head)
    space = MODEL_SPACES.get(head, {})
    knobs = model_hyperparameters(cls)
    extra = sorted(set(space) - set(knobs))
    if extra:
        raise SpaceError(
            f"search space of model head {head!r} has parameter(s) {extra} that its "
            f"constructor does not take; knobs: {sorted(knobs)}"
        )
    defaults = _constructor_defaults(cls.__init__, space)
    return [Param(f"model.{k}", d, defaults.get(k), help=f"{cls.__name__}.{k}")
            for k, d in space.items()]


def _train_params(fine_tune: bool = False) -> list[Param]:
    space = {**TRAIN_SPACE, **FINE_TUNE_SPACE} if fine_tune else TRAIN_SPACE
    return [Param(f"train.{k}", d, default, help=f"training {k}")
            for k, (d, default) in space.items()]


def _dist_json(dist: Distribution) -> dict[str, Any]:
    kind = type(dist).__name__.replace("Dist", "").lower()
    body = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(dist).items()}
    return {"kind": kind, **body}


@dataclass(frozen=True)
class SearchSpace:
    """A compiled, ordered, conditional search space."""

    params: tuple[Param, ...]
    losses: tuple[str, ...]
    auxiliary: tuple[str, ...]
    head: str

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        *,
        losses: list[str],
        auxiliary: list[str] | None = None,
        head: str = "linear",
        overrides: Mapping[str, Any] | None = None,
        extra_params: list[Param] | None = None,
        fine_tune: bool = False,
    ) -> SearchSpace:
        """Compile the default spaces of ``losses`` (the ``loss.name`` choice), ``auxiliary``
        terms, ``head`` and training (plus ``train.encoder_lr`` when ``fine_tune``), then apply
        ``overrides`` (dotted name -> override)."""
        auxiliary = list(auxiliary or [])
        if not losses:
            raise SpaceError("loss.choices must name at least one loss")
        for group, names in (("loss.choices", losses), ("loss.auxiliary", auxiliary)):
            if len(set(names)) != len(names):
                raise SpaceError(f"{group} repeats a loss: {names}")
            for n in names:
                try:
                    get_loss_class(n)
                except KeyError as exc:
                    raise SpaceError(f"{group}: {exc.args[0]}") from None
        both = sorted(set(losses) & set(auxiliary))
        if both:
            raise SpaceError(f"loss(es) {both} are both a loss.choices and a loss.auxiliary term")
        params: list[Param] = [
            Param(LOSS_NAME, CategoricalDist(tuple(losses)), losses[0], help="primary loss")
        ]
        for name in losses:
            params += _loss_params(name, ((LOSS_NAME, name),))
        for name in auxiliary:
            params += _aux_params(name)
        params += _model_params(head)
        params += _train_params(fine_tune)
        params += list(extra_params or [])
        space = cls(tuple(params), tuple(losses), tuple(auxiliary), head)
        return space.override(overrides or {})

    def override(self, overrides: Mapping[str, Any]) -> SearchSpace:
        by_name = {p.name: p for p in self.params}
        new = dict(by_name)
        order = [p.name for p in self.params]
        for name, raw in overrides.items():
            if name not in by_name:
                declared = self._declared_knob(name, raw)
                if declared is None:
                    hint = did_you_mean(name, by_name)
                    raise SpaceError(
                        f"space.{name}: no such parameter in this study.{hint} Valid "
                        f"parameters: {', '.join(sorted(by_name))}"
                    )
                new[name] = declared
                order.insert(self._insert_at(order, name), name)
                continue
            try:
                param = apply_override(by_name[name], raw)
            except ValueError as exc:
                raise SpaceError(f"space.{name}: {exc}") from None
            dist = param.dist
            if name == LOSS_NAME:
                allowed = set(self.losses)
                values = dist.choices if isinstance(dist, CategoricalDist) else (
                    (dist.value,) if isinstance(dist, FixedDist) else ())
                bad = [v for v in values if v not in allowed]
                if bad:
                    raise SpaceError(
                        f"space.loss.name: {bad} not among loss.choices {sorted(allowed)}; "
                        "the override may only restrict the choice"
                    )
            new[name] = param
        return SearchSpace(tuple(new[n] for n in order), self.losses, self.auxiliary,
                           self.head)

    def _declared_knob(self, name: str, raw: Any) -> Param | None:
        """A knob of a chosen loss that has no default space, declared by the study file with
        an explicit ``type`` (for plugin losses). None when ``name`` is not such a knob."""
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != "loss" or parts[1] not in (*self.losses,
                                                                    *self.auxiliary):
            return None
        loss, arg = parts[1], parts[2]
        knobs = get_loss_class(loss).hyperparameters()
        if arg not in knobs:
            hint = did_you_mean(name, [p.name for p in self.params])
            raise SpaceError(
                f"space.{name}: no such parameter; loss {loss!r} has no knob {arg!r}.{hint} "
                f"Its knobs: {', '.join(sorted(knobs))}")
        if not isinstance(raw, Mapping) or "type" not in raw:
            raise SpaceError(
                f"space.{name}: {loss!r} has no default space for {arg!r}; declare one with a "
                "type, e.g. {type: float, low: 0.0, high: 4.0} (types: float, int, categorical)")
        when = ((LOSS_NAME, loss),) if loss in self.losses else ()
        default = knobs[arg].default
        stub = Param(name, _TYPE_STUBS[str(raw["type"])] if str(raw["type"]) in _TYPE_STUBS
                     else FixedDist(None), None if default is inspect.Parameter.empty
                     else default, when, help=f"declared in the study file ({loss}.{arg})")
        try:
            return apply_override(stub, raw)
        except ValueError as exc:
            raise SpaceError(f"space.{name}: {exc}") from None

    @staticmethod
    def _insert_at(order: list[str], name: str) -> int:
        """Right after the last parameter of the same loss (or after loss.name)."""
        prefix = name.rsplit(".", 1)[0] + "."
        idx = [i for i, n in enumerate(order) if n.startswith(prefix) or n == LOSS_NAME]
        return (max(idx) + 1) if idx else len(order)

    # ------------------------------------------------------------------ querying
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def get(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @staticmethod
    def _active(param: Param, values: Mapping[str, Any]) -> bool:
        return all(values.get(k) == v for k, v in param.when)

    def sample(self, trial: Any) -> dict[str, Any]:
        """Suggest every active parameter from ``trial`` (an Optuna Trial or FixedTrial).

        Returns all active values, fixed ones included.
        """
        values: dict[str, Any] = {}
        for p in self.params:
            if not self._active(p, values):
                continue
            d = p.dist
            if isinstance(d, FixedDist):
                values[p.name] = d.value
            elif isinstance(d, CategoricalDist):
                values[p.name] = trial.suggest_categorical(p.name, list(d.choices))
            elif isinstance(d, IntDist):
                values[p.name] = trial.suggest_int(p.name, d.low, d.high, step=d.step, log=d.log)
            elif isinstance(d, FloatDist):
                values[p.name] = trial.suggest_float(p.name, d.low, d.high, step=d.step,
                                                     log=d.log)
            else:  # pragma: no cover
                raise TypeError(f"unknown distribution {d!r}")
        return values

    def baseline(self, loss: str | None = None) -> dict[str, Any]:
        """Parameters of the paper-default trial for ``loss`` (the first choice by default).

        Only searched (non-fixed) parameters are returned, each at its default moved into its
        (overridden) range or choices (:meth:`Param.effective_default`, the value ``losstune
        space`` shows); this is what ``study.enqueue_trial`` takes.
        """
        values: dict[str, Any] = {}
        chosen = loss if loss is not None else self._first_loss()
        for p in self.params:
            if not self._active(p, {**values, LOSS_NAME: chosen}):
                continue
            d = p.dist
            if isinstance(d, FixedDist):
                continue
            if p.name == LOSS_NAME:
                if not d.contains(chosen):
                    raise SpaceError(f"baseline loss {chosen!r} is not a loss.name choice")
                values[p.name] = chosen
                continue
            values[p.name] = p.effective_default()
        return values

    def _first_loss(self) -> str:
        d = self.get(LOSS_NAME).dist
        return d.value if isinstance(d, FixedDist) else d.choices[0]  # type: ignore[union-attr]

    def fingerprint(self) -> str:
        blob = json.dumps(self.describe(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able rows: name, distribution, condition (stored on the study for diffs)."""
        return [
            {"name": p.name, "dist": _dist_json(p.dist),
             "when": {k: v for k, v in p.when}}
            for p in self.params
        ]

    # ------------------------------------------------------------------ assembling
    def to_config(self, values: Mapping[str, Any], template: Mapping[str, Any]) -> TrialConfig:
        """Build the plain trial configuration from sampled ``values`` and the study's fixed
        settings ``template`` (a dict with data, encoder, model, train, eval, plugins)."""
        primary = values[LOSS_NAME]
        terms = [LossTerm(name=primary, weight=1.0, params=_knobs(values, primary))]
        for aux in self.auxiliary:
            cls = get_loss_class(aux)
            if cls.sub_terms:
                subs = {s: float(values[f"weight.{aux}.{s}"]) for s in cls.sub_terms}
                terms.append(LossTerm(name=aux, weight=1.0, params=_knobs(values, aux),
                                      sub_weights=subs))
            else:
                terms.append(LossTerm(name=aux, weight=float(values[f"weight.{aux}"]),
                                      params=_knobs(values, aux)))
        train = dict(template.get("train", {}))
        for key in (*TRAIN_SPACE, *FINE_TUNE_SPACE):
            if f"train.{key}" in values:
                train[key] = values[f"train.{key}"]
        model_params = dict(template.get("model", {}).get("params", {}))
        model_params.update(
            {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("model.")}
        )
        return TrialConfig(
            data=template["data"],
            encoder=template.get("encoder", {}),
            model=ModelConfig(head=self.head, params=model_params),
            loss=LossConfig(terms=terms),
            train=train,
            eval=template.get("eval", {}),
            plugins=list(template.get("plugins", [])),
        )


def _knobs(values: Mapping[str, Any], loss: str) -> dict[str, Any]:
    prefix = f"loss.{loss}."
    return {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}


def diff_spaces(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Readable differences between two :meth:`SearchSpace.describe` outputs."""
    a = {row["name"]: row for row in old}
    b = {row["name"]: row for row in new}
    lines = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            lines.append(f"- {name}: {_row_text(a[name])} (removed)")
        elif name not in a:
            lines.append(f"+ {name}: {_row_text(b[name])} (added)")
        elif a[name] != b[name]:
            lines.append(f"~ {name}: {_row_text(a[name])} -> {_row_text(b[name])}")
    return lines


def earlier_default_hint(
    stored: list[dict[str, Any]], current: list[dict[str, Any]], overridden: Iterable[str]
) -> str | None:
    """One line for a study whose stored space (``SearchSpace.describe()`` rows) differs from
    the current one only in training settings whose *default* distribution changed since it
    was created (and that its study file does not set): which setting, and the ``space:`` entry
    that resumes it. None when anything else differs."""
    old = {row["name"]: row for row in stored}
    new = {row["name"]: row for row in current}
    if set(old) != set(new):
        return None
    fixes = []
    for name in sorted(n for n in new if old[n] != new[n]):
        key = name.split(".", 1)[1] if name.startswith("train.") else None
        earlier = EARLIER_TRAIN_SPACES.get(key or "", [])
        match = [d for d in earlier if _dist_json(d) == old[name]["dist"]]
        if name in set(overridden) or not match or old[name]["when"] != new[name]["when"]:
            return None
        fixes.append(f"`{name}: {_space_entry(match[0])}`")
    if not fixes:
        return None
    return (f"this study was created with losstune's earlier default for {len(fixes)} "
            f"training setting(s); to resume it, add {' and '.join(fixes)} under `space:` in "
            "the study file (or start a new study under another name)")


def _space_entry(dist: Distribution) -> str:
    if isinstance(dist, CategoricalDist):
        return "{choices: [" + ", ".join(str(c) for c in dist.choices) + "]}"
    raise TypeError(f"no study-file form for {dist!r}")  # pragma: no cover


def _row_text(row: dict[str, Any]) -> str:
    d = dict(row["dist"])
    kind = d.pop("kind")
    body = ", ".join(f"{k}={v}" for k, v in d.items() if v not in (None, False))
    when = row.get("when") or {}
    cond = f" if {', '.join(f'{k}={v}' for k, v in when.items())}" if when else ""
    return f"{kind}({body}){cond}"
