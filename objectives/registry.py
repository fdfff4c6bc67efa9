"""One registry class for every kind of named part: losses, model heads, encoders, datasets.

A :class:`Registry` maps a part's identifier (its ``name``: what study files, ``loss.name`` and
parameter names such as ``loss.focal.gamma`` use) to the part, a class for losses, heads and
encoders and a :class:`~losstune.objectives.data.DatasetInfo` for datasets. It reads like a
read-only mapping (``name in LOSSES``, ``LOSSES[name]``, ``LOSSES.get(name)``, ``.items()``, all
over the parts registered so far); parts are added with :meth:`Registry.register` and looked up
with :meth:`Registry.lookup`, which first loads the installed plugins and names the valid parts
(and the closest one) when a name is unknown.

The first lookup of a registry imports the installed entry points of its group
(``losstune.losses``, ``losstune.models``, ``losstune.encoders``, ``losstune.datasets``), once per
process, and records where each part came from in :data:`SOURCES` (what
:mod:`losstune.objectives.plugins` and exports read).

This module is a leaf: it imports only the standard library and :mod:`losstune.objectives.errors`.
"""

from __future__ import annotations

import difflib
import inspect
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from losstune.objectives.errors import LosstuneError, short_repr

T = TypeVar("T")

#: What every registered name looks like (the same rule for every kind of part).
NAME_RULE = "lowercase letters, digits and `_`, starting with a letter or digit"
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")

# One lock for every registry: a plugin imported while one registry loads its group may look
# up another registry (re-entrant in that thread, waited for in the others).
_lock = threading.RLock()


def is_valid_name(name: object) -> bool:
    """True when ``name`` follows :data:`NAME_RULE`."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


#: Names longer than this get no "did you mean" (difflib is quadratic in the name's length).
_SUGGEST_LIMIT = 200


def did_you_mean(name: object, valid: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest of ``valid`` names, or ``""`` (also for a name
    that is not a string or is too long to compare)."""
    if not isinstance(name, str) or len(name) > _SUGGEST_LIMIT:
        return ""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name_message(kind: str, name: object, valid: Iterable[str], *,
                         path: str | None = None) -> str:
    """``Unknown <kind> 'x'; expected one of [...]. Did you mean 'y'?``; with ``path`` (a field
    of a study or suite file): ``<path>: unknown <kind> 'x'; ...``."""
    valid = list(valid)
    text = (f"unknown {kind} {short_repr(name)}; expected one of {sorted(valid)}."
            f"{did_you_mean(name, valid)}")
    return f"{path}: {text}" if path else text[0].upper() + text[1:]


class PluginError(LosstuneError, RuntimeError):
    """A plugin could not be imported or registered; the message names the plugin."""


@dataclass
class PluginSource:
    """Where a plugin part came from: its module and, when installed, its package and version."""

    module: str
    package: str | None = None
    version: str | None = None
    provides: list[str] = field(default_factory=list)  # e.g. ["loss:asym_focal"]

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "package": self.package, "version": self.version,
                "provides": sorted(self.provides)}


#: ``"<key>:<name>"`` (e.g. ``"loss:asym_focal"``, ``"module:my_pkg.losses"``) -> source, for
#: every part a plugin registered in this process.
SOURCES: dict[str, PluginSource] = {}


class Registry(Mapping[str, T], Generic[T]):
    """Named parts of one kind, with their entry-point group.

    As a mapping it holds the parts registered so far (``get(name)`` returns ``None`` for an
    unknown name, as a dict's does, and loads no plugin); :meth:`lookup` loads the group's
    installed plugins first and raises a message naming the valid parts.

    Args:
        kind: what the parts are called in messages (``"loss"``, ``"model head"``, ...).
        key: the short kind of plugin sources and exports (``"loss"``, ``"model"``, ...).
        base: the class every part subclasses (``instances=False``) or is an instance of.
        base_path: ``base`` as users import it, for messages.
        group: the entry-point group whose parts are loaded on the first lookup.
        instances: parts are instances of ``base`` (datasets) rather than subclasses.
        unknown_error: the exception class of an unknown name (a ``KeyError`` subclass).
        knobs: ``knobs(cls)`` -> the constructor arguments a study may set (for :meth:`build`).
        context_args: constructor arguments filled from the data by :meth:`build`.
    """

    def __init__(
        self,
        *,
        kind: str,
        key: str,
        base: type,
        base_path: str,
        group: str,
        instances: bool = False,
        unknown_error: type[KeyError] = KeyError,
        knobs: Callable[[Any], Mapping[str, inspect.Parameter]] | None = None,
        context_args: frozenset[str] = frozenset(),
    ) -> None:
        self.kind = kind
        self.key = key
        self.base = base
        self.base_path = base_path
        self.group = group
        self.instances = instances
        self.unknown_error = unknown_error
        self.context_args = context_args
        self._knobs = knobs
        self._parts: dict[str, T] = {}
        self._plugins_loaded = False
        self._plugins_loading = False

    # ------------------------------------------------------------ read-only mapping
    def __getitem__(self, name: str) -> T:
        return self._parts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __contains__(self, name: object) -> bool:
        return name in self._parts

    def __repr__(self) -> str:
        return f"<{self.kind} registry: {sorted(self._parts)}>"

    # ------------------------------------------------------------ lookup
    def lookup(self, name: str) -> T:
        """The part registered as ``name``, installed plugins of the group included.

        Raises:
            KeyError: (``unknown_error``) no such part; the message lists the valid names and
                the closest one.
        """
        self.load_plugins()
        if name in self._parts:
            return self._parts[name]
        raise self.unknown_error(unknown_name_message(self.kind, name, self._parts))

    def name_of(self, part: Any) -> str:
        """The identifier a part declares (its ``name``)."""
        return getattr(part, "name", "") or ""

    # ------------------------------------------------------------ registration
    def register(self, part: T, *, overwrite: bool = False) -> T:
        """Add ``part`` under the name it declares; returns it (usable as a class decorator).

        Raises:
            TypeError: ``part`` is not a subclass (or an instance) of the registry's base.
            ValueError: its name breaks :data:`NAME_RULE`, or another part has that name
                (unless ``overwrite``).
        """
        if not self._accepts(part):
            raise TypeError(f"{part!r} is not {self._expected()}")
        name = self.name_of(part)
        if not is_valid_name(name):
            subject = (f"{self.kind} class {part.__qualname__}"  # type: ignore[attr-defined]
                       if isinstance(part, type) else f"{self.kind} {type(part).__name__}")
            raise ValueError(f"{subject} must declare a snake_case `name` ({NAME_RULE}), "
                             f"but got {name!r}")
        with _lock:
            old = self._parts.get(name)
            if old is not None and old is not part and not overwrite:
                owner = (f" by {old.__module__}.{old.__qualname__}"
                         if isinstance(old, type) else "")
                raise ValueError(f"{self.kind} name {name!r} is already registered{owner}")
            self._parts[name] = part
        return part

    def unregister(self, name: str) -> None:
        """Remove the part registered as ``name`` (nothing happens when there is none)."""
        with _lock:
            self._parts.pop(name, None)

    def _accepts(self, part: Any) -> bool:
        if self.instances:
            return isinstance(part, self.base)
        return isinstance(part, type) and issubclass(part, self.base)

    def _expected(self) -> str:
        if self.instances:
            return f"a {self.base_path}"
        return f"a subclass of {self.base_path}"

    # ------------------------------------------------------------ building
    def knobs(self, cls: Any) -> dict[str, inspect.Parameter]:
        """The constructor arguments of ``cls`` that a study may set."""
        if self._knobs is None:
            raise TypeError(f"the {self.kind} registry does not build parts")
        return dict(self._knobs(cls))

    def build(self, name: str, params: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        """Instantiate part ``name`` from its knobs plus the context arguments its constructor
        declares (``context`` may hold more)."""
        cls: Any = self.lookup(name)
        valid = self.knobs(cls)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(
                f"{self.kind} {name!r} has no parameter(s) {unknown}; valid parameters: "
                f"{sorted(valid)}"
            )
        wanted = set(inspect.signature(cls.__init__).parameters) & self.context_args
        kwargs = {k: context[k] for k in wanted if k in context}
        return cls(**dict(params), **kwargs)

    # ------------------------------------------------------------ entry points
    def load_plugins(self) -> None:
        """Import and register the installed entry points of :attr:`group` (once per process;
        retried after a failure)."""
        if self._plugins_loaded:
            return
        with _lock:
            if self._plugins_loaded or self._plugins_loading:
                return  # done meanwhile, or a plugin of this group looks parts up while loading
            self._plugins_loading = True
            try:
                for ep in entry_points(group=self.group):
                    self._load_entry_point(ep)
                self._plugins_loaded = True
            finally:
                self._plugins_loading = False

    def _load_entry_point(self, ep: Any) -> None:
        module = ep.value.split(":", 1)[0]
        dist = getattr(ep, "dist", None)
        source = PluginSource(
            module=module,
            package=getattr(dist, "name", None) if dist else None,
            version=getattr(dist, "version", None) if dist else None,
        )
        name = ep.name
        try:
            part = ep.load()
        except Exception as exc:  # noqa: BLE001 - reported with the plugin's name
            raise PluginError(
                f"{self.key} plugin {name!r} (entry point {ep.value!r} of "
                f"{source.package or 'an installed package'}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if inspect.ismodule(part):
            return  # the module registered its parts on import
        if not self._accepts(part):
            raise PluginError(f"{self.key} plugin {name!r} ({module}) points to {part!r}, which "
                              f"is not {self._expected()}")
        declared = self.name_of(part)
        if not declared:
            raise PluginError(f"{self.key} plugin {name!r} ({module}) declares no identifier: "
                              f"set `name = {name!r}` on it")
        if declared != name:
            raise PluginError(f"{self.key} plugin entry point {name!r} ({module}) loads a part "
                              f"named {declared!r}; the entry point name must equal its `name`")
        try:
            self.register(part)
        except (ValueError, TypeError) as exc:
            raise PluginError(f"{self.key} plugin {name!r} ({module}): {exc}") from None
        source.provides.append(f"{self.key}:{name}")
        SOURCES[f"{self.key}:{name}"] = source


__all__ = [
    "NAME_RULE",
    "SOURCES",
    "PluginError",
    "PluginSource",
    "Registry",
    "did_you_mean",
    "is_valid_name",
    "unknown_name_message",
]
