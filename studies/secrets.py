"""Keep storage passwords out of everything losstune prints, stores, exports or reports.

Masking runs in time linear in the text (study files and descriptions may be megabytes): URLs
are found by their ``://`` and scanned by hand, and the regular expressions left have no
nested or overlapping repetition.
"""

from __future__ import annotations

import re
from typing import Any

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
#: Longest URL scheme and user name looked at (``postgresql+psycopg``, a login name).
_MAX_SCHEME = 40
_MAX_USER = 256
# password: value (YAML)  ->  password: ***
_KEY_PASSWORD = re.compile(r"(?im)^(?P<head>[ \t]*(?:password|passwd|pwd)[ \t]*:[ \t]*)\S[^\n]*")
# ...?password=value&...  ->  ...?password=***&...
_QUERY_PASSWORD = re.compile(r"(?i)(?P<head>[?&](?:password|passwd|pwd)=)[^&\s#]+")
#: Known passwords shorter than this are not blindly replaced (they would corrupt ordinary
#: words, e.g. a password "ce" in the loss name "ce"); the patterns above still mask them.
MIN_BLIND_LENGTH = 8


def _mask_url_passwords(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host`` for every URL in
    ``text``. The password runs to the last ``@`` of its line (a password may hold ``@``,
    ``:``, ``/``, ``#``, ``?`` and spaces; masking too much is safe, too little is not)."""
    parts: list[str] = []
    done = 0
    last_at: dict[int, int] = {}  # line end -> its last '@' (each line searched once)
    end = -1  # end of the line being scanned (URLs are met in order: each line found once)
    i = text.find("://")
    while i != -1:
        j = i
        while j > 0 and i - j < _MAX_SCHEME and text[j - 1] in _SCHEME_CHARS:
            j -= 1
        start = i + 3
        if j < i and text[j].isalpha() and start >= done:
            if start > end:
                end = text.find("\n", start)
                end = len(text) if end == -1 else end
            if end not in last_at:
                last_at[end] = text.rfind("@", start, end)
            at = last_at[end]
            colon = text.find(":", start, min(at, start + _MAX_USER)) if at > start else -1
            user = text[start:colon] if colon != -1 else ""
            if colon != -1 and not any(c.isspace() or c == "/" for c in user):
                parts.append(text[done:colon + 1])
                parts.append("***")
                done = at
        i = text.find("://", max(start, done))
    parts.append(text[done:])
    return "".join(parts)


def scrub_text(text: str, *urls: str | None) -> str:
    """Mask passwords: in URLs (``user:***@``, ``?password=***``), after ``password:`` keys, and
    the passwords of ``urls``: each of those URLs where it appears whole, and each password
    (as written and percent-decoded) wherever it stands as a whole word (8 characters or
    more)."""
    from losstune.storage import mask_url, password_forms

    out = text
    for url in urls:
        if url and "://" in url and url in out:
            out = out.replace(url, mask_url(url))
    out = _mask_url_passwords(out)
    out = _KEY_PASSWORD.sub(lambda m: m.group("head") + "***", out)
    out = _QUERY_PASSWORD.sub(lambda m: m.group("head") + "***", out)
    for url in urls:
        for pw in password_forms(url) if url else []:
            if len(pw) >= MIN_BLIND_LENGTH and pw in out:
                out = re.sub(rf"(?<!\w){re.escape(pw)}(?!\w)", "***", out)
    return out


def scrub(value: Any, *urls: str | None) -> Any:
    """:func:`scrub_text` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return scrub_text(value, *urls)
    if isinstance(value, dict):
        return {k: scrub(v, *urls) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, *urls) for v in value]
    return value
