"""Requests to the provider, prepared without sending them (RFC 6749, 7009, 7636, 7662).

Authlib's protocol modules prepare the grant URI, token and revocation bodies, PKCE and
client authentication; each request carries the secrets it holds, for redaction.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7009.parameters import prepare_revoke_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ..config import ProviderConfig
from .models import HttpRequest

__all__ = [
    "authenticated_request",
    "authorization_url",
    "client_credentials_request",
    "code_exchange_request",
    "introspection_request",
    "new_code_verifier",
    "new_state",
    "refresh_request",
    "revoke_request",
]

# 43 characters from a 62-letter alphabet: 256 bits, more than RFC 6749 §10.10 asks.
_STATE_LENGTH = 43
# RFC 7636 §4.1: 43..128 characters; the longest gives the most entropy for free.
_VERIFIER_LENGTH = 128


def new_state() -> str:
    """Return a fresh, unguessable ``state`` value (256 bits)."""
    return str(generate_token(_STATE_LENGTH))


def new_code_verifier() -> str:
    """Return a fresh PKCE code verifier (RFC 7636)."""
    return str(generate_token(_VERIFIER_LENGTH))


def authorization_url(
    config: ProviderConfig,
    *,
    redirect_uri: str,
    scopes: Iterable[str],
    state: str,
    code_verifier: str,
    nonce: str | None = None,
) -> str:
    """Build the authorization URL: response_type=code, client_id, redirect_uri, scope, state, PKCE S256.

    With ``nonce`` (OpenID Connect), the id_token must carry it back: a replayed id_token
    from another login does not.
    """
    extra = dict(config.auth_uri_params)
    if nonce is not None:
        extra["nonce"] = nonce
    url = str(
        prepare_grant_uri(
            config.auth_uri,
            client_id=config.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=" ".join(scopes) or None,
            state=state,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            **extra,
        )
    )
    # RFC 8707 §2: one resource parameter per resource the grant is for.
    return _with_resources(url, "&", config.resource)


def _with_resources(text: str, joiner: str, resources: Iterable[str]) -> str:
    """``text`` (a URL or a form body) with a ``resource`` parameter per resource."""
    pairs = urlencode([("resource", uri) for uri in resources])
    if not pairs:
        return text
    return f"{text}{joiner}{pairs}" if text else pairs


def _token_resources(config: ProviderConfig) -> tuple[str, ...]:
    """The resource a token request names: the first configured one (RFC 8707 §2.2).

    Servers may refuse several resources for one access token (oidc-provider does); a token
    for another resource comes from the refresh token (``refresh_request(resource=…)``).
    """
    return config.resource[:1]


def authenticated_request(config: ProviderConfig, url: str, body: str) -> HttpRequest:
    """A form POST to ``url``, the client authenticated as its ``client_auth_method`` says."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    if config.client_auth_method == "private_key_jwt":
        return _assertion_request(config, url, headers, body)
    client_auth = ClientAuth(config.client_id, config.client_secret, config.client_auth_method)
    url, headers, body = client_auth.prepare("POST", url, headers, body)
    secrets = tuple(s for s in (config.client_secret, headers.get("Authorization")) if s)
    return HttpRequest("POST", url, dict(headers), body, secrets, config.client_id)


def _assertion_request(
    config: ProviderConfig, url: str, headers: dict[str, str], body: str
) -> HttpRequest:
    """RFC 7523 §2.2: the client proves itself with a JWT signed by its private key.

    The assertion's ``aud`` is the token endpoint for every request (RFC 7523 §3: "the
    token endpoint URL of the authorization server"), revocation and introspection too.
    """
    from ..clientkey import ASSERTION_TYPE, sign_client_assertion

    assertion = sign_client_assertion(
        config.client_secret or "", client_id=config.client_id, audience=config.access_token_uri
    )
    extra = urlencode(
        [
            ("client_id", config.client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ]
    )
    body = f"{body}&{extra}" if body else extra
    secrets = tuple(s for s in (config.client_secret, assertion) if s)
    return HttpRequest("POST", url, headers, body, secrets, config.client_id)


def code_exchange_request(
    config: ProviderConfig, *, code: str, redirect_uri: str, code_verifier: str
) -> HttpRequest:
    """Prepare the authorization code grant request (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
    )
    body = _with_resources(body, "&", _token_resources(config))
    request = authenticated_request(config, config.access_token_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, code, code_verifier))


def client_credentials_request(
    config: ProviderConfig, *, scopes: Iterable[str] = ()
) -> HttpRequest:
    """Prepare the client credentials grant request (RFC 6749 §4.4.2): no person, no code."""
    scope = " ".join(scopes)
    body = prepare_token_request("client_credentials", **({"scope": scope} if scope else {}))
    return authenticated_request(config, config.access_token_uri, body)


def refresh_request(
    config: ProviderConfig,
    *,
    refresh_token: str,
    scopes: Iterable[str] = (),
    resource: str | None = None,
    claims: str | None = None,
) -> HttpRequest:
    """Prepare the refresh token grant request (RFC 6749 §6).

    ``resource``: the token is for that resource (RFC 8707 §2.2; the config's first one when
    None); ``scopes`` narrow it (Entra names the resource in the scope); ``claims``: the
    claims a resource's challenge asked for (OpenID Connect §5.5, Entra's CAE).
    """
    extra: dict[str, Any] = {"refresh_token": refresh_token}
    scope = " ".join(scopes)
    if scope:
        extra["scope"] = scope
    if claims is not None:
        extra["claims"] = claims
    body = prepare_token_request("refresh_token", **extra)
    resources = _token_resources(config) if resource is None else (resource,)
    body = _with_resources(body, "&", () if resource == "" else resources)
    request = authenticated_request(config, config.refresh_token_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, refresh_token))


def revoke_request(
    config: ProviderConfig, *, token: str, token_type_hint: str | None = None
) -> HttpRequest:
    """Prepare a token revocation request in the provider's :attr:`~ProviderConfig.revoke_style`.

    ``rfc7009``: RFC 7009 §2.1, the client authenticated as at the token endpoint.
    ``google``: one ``token`` parameter and nothing else, as Google documents it.
    ``github``: ``DELETE /applications/{client_id}/token`` with Basic auth
    (client_id:client_secret) and the JSON body ``{"access_token": ...}``.
    """
    if config.revoke_token_uri is None:
        raise ValueError("revoke_request() needs a revokeTokenUri")
    if config.revoke_style == "google":
        body = urlencode([("token", token)])
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        return HttpRequest(
            "POST", config.revoke_token_uri, headers, body, (token,), config.client_id
        )
    if config.revoke_style == "github":
        basic = base64.b64encode(
            f"{config.client_id}:{config.client_secret or ''}".encode()
        ).decode()
        url = config.revoke_token_uri.replace("{client_id}", quote(config.client_id, safe=""))
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/json",
            "Accept": "application/vnd.github+json",
        }
        secrets = tuple(s for s in (config.client_secret, headers["Authorization"], token) if s)
        body = json.dumps({"access_token": token})
        return HttpRequest("DELETE", url, headers, body, secrets, config.client_id)
    body, _ = prepare_revoke_token_request(token, token_type_hint)
    request = authenticated_request(config, config.revoke_token_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, token))


def introspection_request(
    config: ProviderConfig,
    *,
    token: str,
    token_type_hint: str = "access_token",  # noqa: S107
) -> HttpRequest:
    """Prepare a token introspection request (RFC 7662 §2.1), client authenticated."""
    if config.introspection_uri is None:
        raise ValueError("introspection_request() needs an introspectionUri")
    body = urlencode([("token", token), ("token_type_hint", token_type_hint)])
    request = authenticated_request(config, config.introspection_uri, body)
    return dataclasses.replace(request, secrets=(*request.secrets, token))
