"""Text encoders and the cached features they produce."""

from __future__ import annotations

from typing import Any

from losstune.objectives.encoders.base import TextEncoder
from losstune.objectives.encoders.glove import GloveEncoder
from losstune.objectives.encoders.hashing import HashingEncoder
from losstune.objectives.encoders.minilm import MiniLMEncoder
from losstune.objectives.registry import Registry

#: Every encoder by name (a read-only mapping; add one with :func:`register_encoder`).
ENCODERS: Registry[type[TextEncoder]] = Registry(
    kind="encoder",
    key="encoder",
    base=TextEncoder,
    base_path="losstune.objectives.encoders.TextEncoder",
    group="losstune.encoders",
)
for _cls in (MiniLMEncoder, HashingEncoder, GloveEncoder):
    ENCODERS.register(_cls)
del _cls


def get_encoder_class(name: str) -> type[TextEncoder]:
    """The registered encoder class (installed plugins included); an unknown name raises
    ``KeyError`` listing the valid names."""
    return ENCODERS.lookup(name)


def register_encoder(cls: type[TextEncoder], *, overwrite: bool = False) -> type[TextEncoder]:
    """Add an encoder class to the registry under ``cls.name`` (plugins call this)."""
    return ENCODERS.register(cls, overwrite=overwrite)


def build_encoder(
    name: str, *, max_length: int = 128, device: str = "cpu", **options: Any
) -> TextEncoder:
    return get_encoder_class(name)(max_length=max_length, device=device, **options)


__all__ = [
    "ENCODERS",
    "GloveEncoder",
    "HashingEncoder",
    "MiniLMEncoder",
    "TextEncoder",
    "build_encoder",
    "get_encoder_class",
    "register_encoder",
]
