"""What travels between a caller and the holder of a secret: the requests, the answers.

The same three calls whoever asks: a kernel its Jupyter server (``…/chat-oauth2/token/<alias>``
with the server's kernel token), a server the hub's service (``…/broker/token/<alias>`` with
its ``JUPYTERHUB_API_TOKEN``). An access token goes back, never a refresh token.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ..oauth import AuthData
from ..store import TokenRecord
from .grants import AuthorizationCode, Grants, nothing_stored

__all__ = ["data_from_payload", "serve", "token_payload"]

#: The calls a holder answers: path segment -> what it does.
ACTIONS = ("exchange", "token", "revoke", "proof")


def token_payload(record: TokenRecord | None) -> dict[str, Any]:
    """The JSON answer for a caller: the access token and its version, never a refresh token."""
    if record is None:
        return {"data": None, "version": None}
    # A DPoP key stays with its holder (RFC 9449): it never travels, as a refresh token never does.
    kept = dataclasses.replace(record.data, refresh_token=None, dpop_key=None)
    data = json.loads(kept.to_json())
    return {"data": data, "version": record.version}


def data_from_payload(answer: Mapping[str, Any]) -> AuthData | None:
    """The token a :func:`token_payload` answer carries, or None."""
    data = answer.get("data")
    return None if data is None else AuthData.from_json(json.dumps(data))


def serve(grants: Grants, action: str, user: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Answer a caller's ``action`` for ``user`` with ``grants`` (the holder's side).

    ``token``: the holder's token, refreshed if the holder finds it stale (body ``leeway``),
    or at once with ``force`` (then ``have``, the digest of the caller's token, and
    ``optional``). ``revoke``; ``exchange`` (an :class:`AuthorizationCode`); ``proof`` (a
    DPoP proof for one API request: ``method``, ``url``, ``have``, ``nonce``). Raises
    ValueError for a malformed body (answer 400), OAuth2Error otherwise.
    """
    if action == "token":
        return token_payload(_token(grants, user, body))
    if action == "revoke":
        return {"revoked": grants.revoke(user)}
    if action == "proof":
        return {"proof": grants.proof(user, body)}
    if action == "exchange":
        noted: list[dict[str, Any]] = []
        record = grants.exchange(user, _code(body), note=noted.append)
        return {**token_payload(record), "exchange": noted[0] if noted else None}
    raise ValueError(f"no such call: {action!r}")


def _token(grants: Grants, user: str, body: Mapping[str, Any]) -> TokenRecord | None:
    have, leeway, optional = body.get("have"), body.get("leeway", 30.0), body.get("optional")
    if (have is not None and not isinstance(have, str)) or not isinstance(leeway, (int, float)):
        raise ValueError("have must be a string, leeway a number")
    if body.get("force") is True:
        record = grants.refresh(user, have=have, optional=optional is True)
    else:
        record = grants.token(user, leeway=float(leeway))
    if record is None and optional is not True:
        raise nothing_stored(user, grants.config.alias)
    return record


def _code(body: Mapping[str, Any]) -> AuthorizationCode:
    fields = ("code", "redirect_uri", "code_verifier")
    if not all(isinstance(body.get(name), str) for name in fields):
        raise ValueError("code, redirect_uri and code_verifier must be strings")
    nonce = body.get("nonce")
    return AuthorizationCode(
        body["code"],
        body["redirect_uri"],
        body["code_verifier"],
        tuple(str(s) for s in body.get("scopes") or ()),
        nonce if isinstance(nonce, str) else None,
    )
