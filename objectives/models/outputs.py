"""What a model returns: the contract between models and losses.

The types live in the leaf module :mod:`losstune.objectives.types`; this module keeps their
former import path.
"""

from __future__ import annotations

from losstune.objectives.types import OUTPUT_FIELDS, ModelOutputs

__all__ = ["OUTPUT_FIELDS", "ModelOutputs"]
