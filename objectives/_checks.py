"""Argument checks with optuna-style messages."""

from __future__ import annotations

from typing import Any


def check(condition: bool, rule: str, **values: Any) -> None:
    """Raise ``ValueError("`rule` must hold, but got a=1, b=2.")`` when ``condition`` is false."""
    if not condition:
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ValueError(f"`{rule}` must hold, but got {shown}.")
