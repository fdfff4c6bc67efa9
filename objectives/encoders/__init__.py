"""Text encoders and the cached features they produce."""

from __future__ import annotations

from typing import Any

from losstune.objectives.data.registry import unknown_name_message
from losstune.objectives.encoders.base import TextEncoder
from losstune.objectives.encoders.glove import GloveEncoder
from losstune.objectives.encoders.hashing import HashingEncoder
from losstune.objectives.encoders.minilm import MiniLMEncoder

ENCODERS: dict[str, type[TextEncoder]] = {
    "minilm": MiniLMEncoder,
    "hashing": HashingEncoder,
    "glove": GloveEncoder,
}


def get_encoder_class(name: str) -> type[TextEncoder]:
    if name not in ENCODERS:
        raise KeyError(unknown_name_message("encoder", name, list(ENCODERS)))
    return ENCODERS[name]


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
]
