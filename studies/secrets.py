"""Keep storage passwords out of everything losstune prints, stores, exports or reports."""

from __future__ import annotations

import re
from typing import Any

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?=@)")
_KEY_PASSWORD = re.compile(r"(?im)^(?P<head>\s*(password|passwd|pwd)\s*:\s*)(?P<pw>\S.*)$")


def scrub_text(text: str, *urls: str | None) -> str:
    """Mask URL passwords (``user:***@``), ``password:`` values, and any known password."""
    from storage import url_password

    out = _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)
    out = _KEY_PASSWORD.sub(lambda m: m.group("head") + "***", out)
    for url in urls:
        pw = url_password(url) if url else None
        if pw:
            out = out.replace(pw, "***")
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
