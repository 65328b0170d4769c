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
from .grants import Grants, nothing_stored

__all__ = ["data_from_payload", "serve", "token_payload"]

#: The calls a holder answers: path segment -> what it does.
ACTIONS = ("exchange", "token", "revoke")


def token_payload(record: TokenRecord | None) -> dict[str, Any]:
    """The JSON answer for a caller: the access token and its version, never a refresh token."""
    if record is None:
        return {"data": None, "version": None}
    data = json.loads(dataclasses.replace(record.data, refresh_token=None).to_json())
    return {"data": data, "version": record.version}


def data_from_payload(answer: Mapping[str, Any]) -> AuthData | None:
    """The token a :func:`token_payload` answer carries, or None."""
    data = answer.get("data")
    return None if data is None else AuthData.from_json(json.dumps(data))


def _flag(body: Mapping[str, Any], name: str) -> bool:
    return body.get(name) is True


def serve(grants: Grants, action: str, user: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Answer a caller's ``action`` for ``user`` with ``grants`` (the holder's side).

    Raises ValueError for a malformed body (answer 400) and OAuth2Error with the provider's
    words (or the store's) otherwise.
    """
    if action == "token":
        have, leeway = body.get("have"), body.get("leeway", 30.0)
        if (have is not None and not isinstance(have, str)) or not isinstance(leeway, (int, float)):
            raise ValueError("have must be a string, leeway a number")
        optional = _flag(body, "optional")
        record = grants.token(
            user, have=have, force=_flag(body, "force"), optional=optional, leeway=float(leeway)
        )
        if record is None and not optional:
            raise nothing_stored(user, grants.config.alias)
        return token_payload(record)
    if action == "revoke":
        return {"revoked": grants.revoke(user)}
    if action == "exchange":
        fields = ("code", "redirect_uri", "code_verifier")
        if not all(isinstance(body.get(name), str) for name in fields):
            raise ValueError("code, redirect_uri and code_verifier must be strings")
        noted: list[dict[str, Any]] = []
        nonce = body.get("nonce")
        record = grants.exchange(
            user,
            code=body["code"],
            redirect_uri=body["redirect_uri"],
            code_verifier=body["code_verifier"],
            scopes=tuple(str(s) for s in body.get("scopes") or ()),
            nonce=nonce if isinstance(nonce, str) else None,
            note=noted.append,
        )
        return {**token_payload(record), "exchange": noted[0] if noted else None}
    raise ValueError(f"no such call: {action!r}")
