"""Checks of the second family: does the provider's published metadata agree with the config?

The metadata is looked for where RFC 8414 and OpenID Connect put it, from the configured
issuer or else authUri's origin. Without metadata every comparison is ``skipped``, never
failed: the doctor says only what it can say truthfully.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..config import CLIENT_AUTH_METHODS, ProviderConfig, same_issuer
from ..oauth import HttpRequest
from ..oauth.oidc import unverifiable_reason
from .binding import judge_dpop
from .endpoints import ENDPOINT_FIELDS
from .report import Finding
from .session import Session

__all__ = ["check_metadata"]

# Config field -> the metadata field that advertises it (RFC 8414 §2, RFC 8628 §4).
_ADVERTISED = {
    "auth_uri": "authorization_endpoint",
    "access_token_uri": "token_endpoint",
    "refresh_token_uri": "token_endpoint",
    "revoke_token_uri": "revocation_endpoint",
    "introspection_uri": "introspection_endpoint",
    "device_authorization_uri": "device_authorization_endpoint",
}
_SEED_NAME = {field: seed for seed, field in ENDPOINT_FIELDS}
_TITLE = "Provider metadata"

Judge = Callable[[ProviderConfig, Mapping[str, Any]], Finding]


def check_metadata(session: Session) -> None:
    """The ``metadata`` check, one ``metadata:<what>`` check per comparison, then ``id_token``."""
    _find_metadata(session)
    meta = session.metadata
    for check_id, title, judge in _COMPARISONS:
        if meta is None:
            session.add(check_id, title, "skipped", "The provider publishes no metadata.", "")
        else:
            session.add(check_id, title, *judge(session.config, meta))
    session.add("id_token", "id_tokens are verified", *_id_tokens(session.config, meta))


def _find_metadata(session: Session) -> None:
    """Look for the metadata; keep it in the session when its issuer is this config's."""
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url

    configured = session.config.issuer
    if configured:
        issuer, source = configured, "the configured issuer"
    else:
        parts = urlsplit(session.config.auth_uri)
        issuer, source = f"{parts.scheme}://{parts.netloc}", "authUri's origin"
    # RFC 8414 §3.1: a terminating '/' is dropped to build the address, and only there.
    base = issuer.rstrip("/")
    candidates = [
        get_well_known_url(base, external=True, suffix="oauth-authorization-server"),
        f"{base}/.well-known/openid-configuration",
    ]
    tried: list[str] = []
    for url in candidates:
        answer, failure = session.request(
            HttpRequest("GET", url, {"Accept": "application/json"}, "")
        )
        if answer.status != 200:
            tried.append(f"{url}: {failure or f'HTTP {answer.status}'}")
            continue
        try:
            document = json.loads(answer.content.decode("utf-8"))
            metadata = AuthorizationServerMetadata(document)
            metadata.validate()
        except (ValueError, UnicodeDecodeError) as exc:
            session.add(
                "metadata",
                _TITLE,
                "warn",
                f"{url} serves metadata that is not valid RFC 8414 ({str(exc)[:200]}).",
                "Compare the config with the provider's documentation by hand.",
            )
            return
        advertised = str(metadata.get("issuer", ""))
        # RFC 8414 §3.3: the issuer is compared as a string, a trailing '/' included.
        if not same_issuer(advertised, issuer):
            session.add("metadata", _TITLE, *_other_issuer(url, advertised, issuer, configured))
            return
        session.metadata = dict(metadata)
        session.add(
            "metadata",
            _TITLE,
            "ok",
            f"The provider publishes metadata at {url} (found from {source}).",
            "",
        )
        return
    session.add(
        "metadata",
        _TITLE,
        "skipped",
        f"No RFC 8414 or OpenID metadata found from {source} ({'; '.join(tried)}), so the "
        "endpoints, PKCE, client authentication and scopes cannot be compared with it.",
        "Nothing to change; set issuer in the config if the provider publishes metadata elsewhere.",
    )


def _other_issuer(url: str, advertised: str, issuer: str, configured: str | None) -> Finding:
    """Metadata found for another issuer: wrong when one is configured, unrelated otherwise."""
    if configured:
        return (
            "fail",
            f"The metadata at {url} names the issuer {advertised}, not the configured {issuer}.",
            f"Set issuer={advertised!r}, exactly as the metadata writes it (a trailing '/' "
            "counts), if that is this provider.",
        )
    return (
        "skipped",
        f"The metadata at {url} is for the issuer {advertised}, not for "
        f"{issuer}, so it says nothing certain about this config.",
        f"Set issuer={advertised!r} in the config if that is this provider.",
    )


def _endpoints(config: ProviderConfig, meta: Mapping[str, Any]) -> Finding:
    wrong: list[str] = []
    missing: list[str] = []
    fixes: list[str] = []
    for field, advertised_field in _ADVERTISED.items():
        configured = getattr(config, field)
        if not configured:
            continue
        advertised = meta.get(advertised_field)
        name = _SEED_NAME[field]
        if not advertised:
            missing.append(f"{name} ({advertised_field} is not advertised)")
        elif str(advertised).rstrip("/") != configured.rstrip("/"):
            wrong.append(f"{name} is {configured} but the provider advertises {advertised}")
            fixes.append(f"{name}={advertised}")
    if wrong:
        return (
            "fail",
            "; ".join(wrong) + ".",
            "Set " + ", ".join(fixes) + " (or build the config with discover_config()).",
        )
    if missing:
        return (
            "warn",
            "The metadata lists no endpoint for " + ", ".join(missing) + ".",
            "Check those URLs in the provider's documentation; remove them if the "
            "provider has no such endpoint.",
        )
    return ("ok", "Every configured endpoint is the one the provider advertises.", "")


def _pkce(config: ProviderConfig, meta: Mapping[str, Any]) -> Finding:
    methods = meta.get("code_challenge_methods_supported")
    if not isinstance(methods, list):
        return ("skipped", "The metadata has no code_challenge_methods_supported.", "")
    if "S256" in methods:
        return ("ok", f"The provider supports {methods}.", "")
    return (
        "fail",
        f"code_challenge_methods_supported is {methods}, without S256, which this "
        "client always sends.",
        "Enable PKCE with S256 for this client at the provider.",
    )


def _client_auth(config: ProviderConfig, meta: Mapping[str, Any]) -> Finding:
    method = config.client_auth_method
    # RFC 8414 §2: when absent, the default is client_secret_basic.
    methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if not isinstance(methods, list):
        methods = [str(methods)]
    if method in methods:
        return ("ok", f"client_auth_method {method!r} is among the provider's {methods}.", "")
    usable = [m for m in methods if m in CLIENT_AUTH_METHODS]
    action = (
        f"Pass client_auth_method={usable[0]!r} to create_oauth2_client()."
        if usable
        else "The provider wants a method this kit does not offer (e.g. tls_client_auth)."
    )
    return (
        "fail",
        f"client_auth_method is {method!r} but the provider supports {methods}.",
        action,
    )


def _client_key(config: ProviderConfig, meta: Mapping[str, Any]) -> Finding:
    """A private_key_jwt client: its key reads, and the provider accepts its algorithm."""
    if config.client_auth_method != "private_key_jwt":
        return ("skipped", "The client does not sign with a private key.", "")
    from ..clientkey import parse_client_key

    source = config.client_key_source or "the stored config"
    try:
        key = parse_client_key(config.client_secret or "")
    except ValueError as exc:
        return ("fail", f"The client key from {source} is not usable: {exc}.", "Give a PEM key.")
    algs = meta.get("token_endpoint_auth_signing_alg_values_supported")
    said = f"The key from {source} signs with {key.alg} (kid {key.kid!r})"
    if not isinstance(algs, list):
        return ("ok", f"{said}; the provider lists no signing algorithms.", "")
    if key.alg in algs:
        return ("ok", f"{said}, among the provider's {algs}.", "")
    return (
        "fail",
        f"{said}, which is not in the provider's "
        f"token_endpoint_auth_signing_alg_values_supported {algs}.",
        "Use a key of a type the provider accepts (an RSA key signs RS256, a P-256 key ES256).",
    )


def _scopes(config: ProviderConfig, meta: Mapping[str, Any]) -> Finding:
    offered = meta.get("scopes_supported")
    wanted = list(config.default_scopes)
    if not isinstance(offered, list):
        return ("skipped", "The metadata has no scopes_supported.", "")
    if not wanted:
        return ("skipped", "The config requests no scopes.", "")
    unlisted = [s for s in wanted if s not in offered]
    if unlisted:
        return (
            "warn",
            f"{unlisted} are not in scopes_supported {offered} (many providers list only "
            "some of their scopes).",
            "Check the scope names in the provider's documentation.",
        )
    return ("ok", f"Every requested scope {wanted} is offered.", "")


def _iss(config: ProviderConfig, meta: Mapping[str, Any]) -> Finding:
    advertised = meta.get("authorization_response_iss_parameter_supported") is True
    configured = config.authorization_response_iss_parameter_supported
    if advertised == configured:
        said = "sends" if advertised else "does not send"
        return ("ok", f"The provider {said} iss in its redirects, as configured.", "")
    if advertised:
        return (
            "warn",
            "The provider sends iss in its redirects but the config does not expect it, "
            "so a mix-up attack is not caught by the issuer.",
            f"Set issuer={meta.get('issuer')!r} and authorizationResponseIssParameterSupported"
            "=True (discover_config() fills both).",
        )
    return (
        "fail",
        "The config expects iss in the redirect but the provider does not advertise "
        "sending it, so its redirects would be refused.",
        "Remove authorizationResponseIssParameterSupported from the config.",
    )


def _id_tokens(config: ProviderConfig, meta: Mapping[str, Any] | None) -> Finding:
    """Can an id_token from this provider be verified, or would it be kept unverified?"""
    advertised = (meta or {}).get("jwks_uri")
    reason = unverifiable_reason(config)
    if reason is None:
        if advertised and advertised != config.jwks_uri:
            return (
                "warn",
                f"jwksUri is {config.jwks_uri} but the provider advertises {advertised}: "
                "id_tokens signed with its keys would be refused.",
                f"Set jwksUri={advertised}.",
            )
        return ("ok", f"id_tokens are verified with the keys at {config.jwks_uri}.", "")
    if not advertised and "openid" not in config.default_scopes:
        return (
            "skipped",
            "The config asks for no openid scope and the provider advertises no jwks_uri: "
            "no id_token is expected.",
            "",
        )
    fixes = []
    if advertised and config.jwks_uri is None:
        fixes.append(f"jwksUri={advertised}")
    if meta and meta.get("issuer") and config.issuer is None:
        fixes.append(f"issuer={meta['issuer']}")
    action = (
        "Set " + " and ".join(fixes) + " (discover_config() fills them)"
        if fixes
        else "Set jwksUri and issuer from the provider's documentation"
    )
    return (
        "warn",
        f"An id_token from this provider is stored unverified: {reason}. Its claims (who "
        "logged in) could be forged; AuthData.id_token_verified is False for it.",
        action + "; until then, do not rely on the id_token's claims.",
    )


# The comparisons, in the order the report lists them.
_COMPARISONS: tuple[tuple[str, str, Judge], ...] = (
    ("metadata:endpoints", "Endpoints match the metadata", _endpoints),
    ("metadata:pkce", "PKCE S256 supported", _pkce),
    ("metadata:client_auth", "Client authentication supported", _client_auth),
    ("metadata:client_key", "Client key accepted (private_key_jwt)", _client_key),
    ("metadata:scopes", "Scopes offered", _scopes),
    ("metadata:iss", "Issuer in the redirect (RFC 9207)", _iss),
    ("metadata:dpop", "Tokens bound to a key (DPoP, RFC 9449)", judge_dpop),
)
