"""One secret scanner for every channel: finds a secret in any encoding it could leak in.

A secret that reaches a log or a saved notebook is rarely raw: form bodies percent-encode it
(``/`` → ``%2F``, ``+`` → ``%2B``), URLs use ``quote``, JSON escapes ``/`` as ``\\/``, HTML
escapes ``&``, and Basic auth wraps ``id:secret`` in base64. The scanner looks for all of them.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets as _random
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["NASTY", "assert_no_secret", "encodings", "find_secrets", "nasty_secret"]

# Characters real providers put in secrets (Google: 1//0g…, 4/0A…, GOCSPX-…+…/…==) and the
# ones that change under every encoding. A '%' is followed by a non-hex letter so that a
# server that percent-decodes Basic credentials (RFC 6749 §2.3.1) still reads it back.
NASTY = "/+=~%z"


def nasty_secret(prefix: str = "s", length: int = 24) -> str:
    """A random secret containing ``/ + = ~ %`` (and a Google-like prefix)."""
    body = _random.token_urlsafe(length)
    return f"{prefix}//{body[:8]}+{body[8:16]}/{body[16:]}~%z=="


def _lower_hex(text: str) -> str:
    # quote() emits upper-case hex digits; other encoders emit lower-case ones.
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def encodings(secret: str, client_ids: Iterable[str] = ()) -> dict[str, str]:
    """Every form ``secret`` may take in text: name of the encoding -> the encoded value."""
    forms: dict[str, str] = {"raw": secret}
    forms["quote"] = quote(secret, safe="")
    forms["quote/"] = quote(secret)
    forms["quote_plus"] = quote_plus(secret)
    forms["quote_lower"] = _lower_hex(quote(secret, safe=""))
    forms["quote_plus_lower"] = _lower_hex(quote_plus(secret))
    forms["double_quote"] = quote(quote(secret, safe=""), safe="")
    forms["json"] = json.dumps(secret)[1:-1]
    forms["json_slash"] = json.dumps(secret)[1:-1].replace("/", "\\/")
    forms["html"] = html.escape(secret, quote=True)
    forms["html_quote_plus"] = html.escape(quote_plus(secret), quote=True)
    forms["base64"] = base64.b64encode(secret.encode()).decode().rstrip("=")
    forms["base64url"] = base64.urlsafe_b64encode(secret.encode()).decode().rstrip("=")
    for client_id in client_ids:
        # Basic auth: raw (what most clients send) and form-encoded first (RFC 6749 §2.3.1).
        raw = f"{client_id}:{secret}"
        encoded = f"{quote_plus(client_id)}:{quote_plus(secret)}"
        forms[f"basic({client_id})"] = base64.b64encode(raw.encode()).decode().rstrip("=")
        forms[f"basic_encoded({client_id})"] = (
            base64.b64encode(encoded.encode()).decode().rstrip("=")
        )
    # Very short values would match by chance; every real secret is longer.
    return {name: form for name, form in forms.items() if len(form) >= 8}


def find_secrets(
    text: str, secrets: Iterable[str | None], client_ids: Iterable[str] = ()
) -> list[str]:
    """Which secrets occur in ``text`` and in which encoding (described without the secret)."""
    ids = tuple(client_ids)
    found = []
    for secret in {s for s in secrets if s}:
        for name, form in encodings(secret, ids).items():
            if form in text:
                found.append(f"{secret[:3]}… as {name}")
                break
    return sorted(found)


def assert_no_secret(
    text: str, secrets: Iterable[str | None], where: str, client_ids: Iterable[str] = ()
) -> None:
    """Fail when any secret occurs in ``text`` in any encoding."""
    wanted = [s for s in secrets if s]
    assert wanted, f"the scan of {where} would look for nothing"
    leaked = find_secrets(text, wanted, client_ids)
    assert not leaked, f"{where} contains {len(leaked)} secret(s): {leaked}"
