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


#: Longest echo of a user's value inside an error message.
SHOWN_LIMIT = 80


def short_repr(value: object, limit: int = SHOWN_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long it was: error
    messages echo what the user wrote, never a megabyte of it."""
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text)} characters)"
    return text


def short_text(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was (messages quoting
    another message, such as a library's exception)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


__all__ = ["SHOWN_LIMIT", "ConfigurationError", "LosstuneError", "short_repr", "short_text"]
