"""Which device a run uses, and what its numbers depend on.

A leaf module (torch is imported on use), so that the trainer, the feature cache and the LatentG
teacher share one answer without importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losstune.objectives.errors import ConfigurationError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str) -> torch.device:
    """``train.device`` as a torch device: ``auto`` is CUDA when available, else the CPU.

    Raises:
        ConfigurationError: a CUDA device is asked for on a machine without one.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(
            f"train.device is {device!r} but no CUDA device is available here; "
            "use 'cpu' or 'auto'."
        )
    return torch.device(device)


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda``: what an encoding's numbers depend on (``auto`` resolved)."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device.split(":", 1)[0]


__all__ = ["device_kind", "resolve_device"]
