"""The root of losstune's error family.

Every error that losstune reports to a user as one line derives from :class:`LosstuneError`
(and from the builtin class that describes it, such as ``ValueError``), so that callers can catch
all of them at once: the CLI prints ``error: <message>`` and exits with status 2 for any of them,
and lets everything else surface as a bug with its traceback.
"""

from __future__ import annotations


class LosstuneError(Exception):
    """Base class of every user-facing losstune error; the message says what is wrong and
    what is valid."""


class ConfigurationError(LosstuneError, ValueError):
    """The trial configuration cannot be built (e.g. a loss needs an output the head lacks)."""


__all__ = ["ConfigurationError", "LosstuneError"]
