"""Keep storage passwords out of everything losstune prints, stores, exports or reports."""

from __future__ import annotations

import re
from typing import Any

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?=@)")
# password: value (YAML)  ->  password: ***
_KEY_PASSWORD = re.compile(r"(?im)^(?P<head>\s*(password|passwd|pwd)\s*:\s*)(?P<pw>\S.*)$")
# ...?password=value&...  ->  ...?password=***&...
_QUERY_PASSWORD = re.compile(r"(?i)(?P<head>[?&](password|passwd|pwd)=)(?P<pw>[^&\s#]+)")
#: Known passwords shorter than this are not blindly replaced (they would corrupt ordinary
#: words, e.g. a password "ce" in the loss name "ce"); the patterns above still mask them.
MIN_BLIND_LENGTH = 8


def scrub_text(text: str, *urls: str | None) -> str:
    """Mask passwords: in URLs (``user:***@``, ``?password=***``), after ``password:`` keys, and
    the passwords of ``urls`` wherever they stand as whole words (8 characters or more)."""
    from losstune.storage import url_password

    out = _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)
    out = _KEY_PASSWORD.sub(lambda m: m.group("head") + "***", out)
    out = _QUERY_PASSWORD.sub(lambda m: m.group("head") + "***", out)
    for url in urls:
        pw = url_password(url) if url else None
        if pw and len(pw) >= MIN_BLIND_LENGTH:
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
