"""Secrets out of every text: masks, every encoding of a secret, request and answer bodies.

Redaction is by field, before encoding: a body is parsed, each credential field masked,
and only then is the text scanned for every encoding of every known secret.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

from ._bodies import load_form, load_json

__all__ = [
    "CREDENTIAL_PARAMS",
    "is_credential_field",
    "mask",
    "mask_tree",
    "masked_pairs",
    "redact",
    "redact_response_body",
    "secret_forms",
]

_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")
# Request parameters whose values are credentials (RFC 6749, 7009, 7521, 7636, 8628).
CREDENTIAL_PARAMS = frozenset(
    {
        "code",
        "code_verifier",
        "refresh_token",
        "access_token",
        "id_token",
        "client_secret",
        "client_assertion",
        "token",
        "assertion",
        "device_code",
        "password",
    }
)
# What a log keeps of a provider's answer, after masking.
_LOG_CHARS = 4000


def mask(secret: str | None) -> str:
    """Show a secret as ``eyJh…x9Q``: enough to tell two apart, never enough to use."""
    if not secret:
        return ""
    # Reveal at most a sixth of the characters (and never more than 8), head and tail, so a
    # mask of a short secret gives away next to nothing; under 12 characters, nothing at all.
    shown = min(len(secret) // 6, 8)
    if shown < 2:
        return "…"
    tail = shown // 2
    return f"{secret[: shown - tail]}…{secret[-tail:]}"


def secret_forms(secret: str, client_id: str | None = None) -> set[str]:
    """Every way ``secret`` can appear in text: raw, percent-encoded, JSON-escaped, in Basic auth.

    Form bodies encode ``/`` as ``%2F`` and ``+`` as ``%2B`` (Google's ``1//0g…`` refresh
    tokens, ``4/0A…`` codes and ``GOCSPX-…+…/…==`` secrets are full of them), so masking only
    the raw string would let them through.
    """
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
    }
    forms |= {_LOWER_HEX.sub(lambda m: m.group(0).lower(), form) for form in forms}
    forms.add(quote(quote(secret, safe=""), safe=""))
    forms.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    forms.add(base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="))
    if client_id is not None:
        for joined in (f"{client_id}:{secret}", f"{quote_plus(client_id)}:{quote_plus(secret)}"):
            forms.add(base64.b64encode(joined.encode()).decode().rstrip("="))
    return {form for form in forms if len(form) >= 4}


def redact(text: str, secrets: Iterable[str | None], client_id: str | None = None) -> str:
    """Replace every occurrence of each secret in ``text``, in any encoding, by its mask."""
    wanted = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
    for secret in wanted:
        shown = mask(secret) or "…"
        # Longest forms first, so a raw match inside an encoded one cannot split it.
        for form in sorted(secret_forms(secret, client_id), key=len, reverse=True):
            if form in text:
                text = text.replace(form, shown)
    return text


def is_credential_field(name: str) -> bool:
    """True for a parameter or JSON field whose value is a credential (``*_token``, secrets…)."""
    key = name.lower()
    if key in ("token_type", "token_type_hint"):
        return False
    return (
        key in CREDENTIAL_PARAMS
        or key.endswith("token")
        or key.endswith("secret")
        or key in ("password", "api_key", "apikey")
    )


def masked_pairs(pairs: Iterable[tuple[str, str]], found: list[str]) -> str:
    """Form pairs as text with each credential masked; the credentials go into ``found``."""
    shown = []
    for name, value in pairs:
        if is_credential_field(name):
            found.append(value)
            shown.append(f"{quote_plus(name)}={mask(value) or '…'}")
        else:
            shown.append(urlencode([(name, value)]))
    return "&".join(shown)


def mask_tree(value: Any, found: list[str]) -> Any:
    """A JSON value with each credential field masked; the credentials go into ``found``."""
    # Credentials may sit deep (Slack's authed_user.access_token) or in lists.
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str) and is_credential_field(str(key)):
                found.append(item)
                out[key] = mask(item) or "…"
            else:
                out[key] = mask_tree(item, found)
        return out
    if isinstance(value, list):
        return [mask_tree(item, found) for item in value]
    return value


def redact_response_body(
    content: bytes,
    secrets: Iterable[str | None],
    *,
    content_type: str = "",
    status: int | None = None,
    client_id: str | None = None,
) -> str:
    """A provider's answer as text for a log: parsed whole, credentials masked, then cut short.

    JSON (any depth) and form-encoded answers are masked field by field; a successful answer
    that cannot be parsed is shown only by size and type, since its secrets can't be found.
    """
    found: list[str] = []
    data = load_json(content)
    pairs = load_form(content, content_type) if data is None else None
    if isinstance(data, (dict, list)):
        text = json.dumps(mask_tree(data, found), ensure_ascii=False)
    elif pairs is not None:
        text = masked_pairs(pairs, found)
    elif status is not None and 200 <= status < 300 and content:
        return (
            f"({len(content)} bytes of {content_type or 'no content type'}, not shown: it "
            "could not be parsed, so the secrets in it could not be masked)"
        )
    else:
        text = content.decode("utf-8", "replace")
    text = redact(text, (*secrets, *found), client_id)
    return text if len(text) <= _LOG_CHARS else text[:_LOG_CHARS] + "…"
