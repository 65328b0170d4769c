"""Ready-made configs for common providers: ``config("google")`` returns the seed-style dict.

Each preset names its endpoints (authorization, token, revocation and device authorization
when the provider has them), the issuer, the JWKS of its id_tokens, default scopes, extra
authorization parameters, how the client authenticates and how revocation works. Every URL
comes from the provider's own documentation, cited beside it. The dict is plain data: print
it, edit it, pass it to :func:`~chat_oauth2_nb.create_oauth2_client`.

Example:
    >>> from chat_oauth2_nb import presets
    >>> presets.config("gitlab", base_url="https://gitlab.example.org")["authUri"]
    'https://gitlab.example.org/oauth/authorize'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import ConfigurationError, did_you_mean

__all__ = ["PRESETS", "config", "preset_parameters", "unknown_preset"]


def _base(name: str, value: object) -> str:
    """A server's base URL without a trailing slash (its path kept, for sub-path installs)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            name, "is missing or empty", f"Pass {name}='https://…' (the server's address)."
        )
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
        raise ConfigurationError(
            name,
            f"is not an http(s) base URL (got {value!r})",
            f"Pass {name}= as the address you open in a browser, e.g. 'https://chat.example.org'.",
        )
    return value.strip().rstrip("/")


def _segment(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or "/" in value:
        raise ConfigurationError(
            name, f"is not a single path segment (got {value!r})", f"Pass {name}='…' (no '/')."
        )
    return quote(value.strip(), safe="")


def _google(alias: str) -> dict[str, Any]:
    return {
        "alias": alias,
        # https://developers.google.com/identity/protocols/oauth2/web-server#httprest_1
        "authUri": "https://accounts.google.com/o/oauth2/v2/auth",
        # https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code
        "accessTokenUri": "https://oauth2.googleapis.com/token",
        "refreshTokenUri": "https://oauth2.googleapis.com/token",
        # https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke
        # (one `token` parameter; revoking either token revokes the whole grant)
        "revokeTokenUri": "https://oauth2.googleapis.com/revoke",
        "revokeStyle": "google",
        # https://developers.google.com/identity/protocols/oauth2/limited-input-device#step-1:-request-device-and-user-codes
        "deviceAuthorizationUri": "https://oauth2.googleapis.com/device/code",
        # https://accounts.google.com/.well-known/openid-configuration ("issuer", "jwks_uri")
        "issuer": "https://accounts.google.com",
        # https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken
        # ("The value of iss in the ID token is equal to https://accounts.google.com or
        # accounts.google.com"): the second one is accepted for id_tokens only.
        "acceptedIssuers": ["accounts.google.com"],
        "jwksUri": "https://www.googleapis.com/oauth2/v3/certs",
        "defaultScopes": ["openid", "email"],
        # https://developers.google.com/identity/protocols/oauth2/web-server#offline : a
        # refresh token only comes back with access_type=offline, and again on a later
        # authorization only with prompt=consent.
        "authUriParams": {"access_type": "offline", "prompt": "consent"},
        # The token endpoint takes client_id and client_secret in the body in Google's docs.
        "clientAuthMethod": "client_secret_post",
        # https://support.google.com/accounts/answer/13533235 (third-party connections)
        "revokeUrlForPeople": "https://myaccount.google.com/connections",
    }


def _github(alias: str) -> dict[str, Any]:
    return {
        "alias": alias,
        # https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#1-request-a-users-github-identity
        "authUri": "https://github.com/login/oauth/authorize",
        # https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#2-users-are-redirected-back-to-your-site-by-github
        # (form-encoded unless the request says Accept: application/json, which ours does)
        "accessTokenUri": "https://github.com/login/oauth/access_token",
        # https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens
        # (refresh tokens exist only for expiring user access tokens of GitHub Apps)
        "refreshTokenUri": "https://github.com/login/oauth/access_token",
        # https://docs.github.com/en/rest/apps/oauth-applications#delete-an-app-token
        # DELETE with Basic auth (client_id:client_secret) and {"access_token": …}; the
        # {client_id} placeholder is filled in when the request is made.
        "revokeTokenUri": "https://api.github.com/applications/{client_id}/token",
        "revokeStyle": "github",
        # https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#device-flow
        "deviceAuthorizationUri": "https://github.com/login/device/code",
        # https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps
        "defaultScopes": ["read:user"],
        # GitHub's docs send client_id and client_secret as parameters of the token request.
        "clientAuthMethod": "client_secret_post",
        # https://docs.github.com/en/apps/using-github-apps/reviewing-and-revoking-authorized-github-apps
        "revokeUrlForPeople": "https://github.com/settings/applications",
    }


# Tenants that stand for many directories: their tokens' `iss` names the user's own tenant,
# so no single issuer can be pinned.
_MS_MULTI_TENANTS = frozenset({"common", "organizations", "consumers"})


def _microsoft(alias: str, tenant: str = "organizations") -> dict[str, Any]:
    t = _segment("tenant", tenant)
    # https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow
    root = f"https://login.microsoftonline.com/{t}/oauth2/v2.0"
    data: dict[str, Any] = {
        "alias": alias,
        # https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#request-an-authorization-code
        "authUri": f"{root}/authorize",
        # https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#redeem-a-code-for-an-access-token
        "accessTokenUri": f"{root}/token",
        "refreshTokenUri": f"{root}/token",
        # https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code#device-authorization-request
        "deviceAuthorizationUri": f"{root}/devicecode",
        # https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri
        # (jwks_uri of the tenant's openid-configuration)
        "jwksUri": f"https://login.microsoftonline.com/{t}/discovery/v2.0/keys",
        # https://learn.microsoft.com/en-us/entra/identity-platform/scopes-oidc#the-offline_access-scope
        # (no refresh token without offline_access)
        "defaultScopes": ["offline_access", "User.Read"],
        "clientAuthMethod": "client_secret_post",
        # No revocation endpoint exists (RFC 7009 is not offered): a person removes the
        # app's access at My Apps (work/school) or the Microsoft account page (personal).
        # https://support.microsoft.com/en-us/account-billing/manage-connected-apps-and-services-0b8a6c30-4a49-4d3a-9f11-0f0e17f3f3e8
        "revokeUrlForPeople": "https://account.live.com/consent/Manage"
        if t == "consumers"
        # https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/manage-consent-requests
        else "https://myapplications.microsoft.com/",
    }
    if t not in _MS_MULTI_TENANTS:
        # https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference
        # ("iss": https://login.microsoftonline.com/{tenant}/v2.0 for a single tenant)
        data["issuer"] = f"https://login.microsoftonline.com/{t}/v2.0"
    return data


def _gitlab(alias: str, base_url: str = "https://gitlab.com") -> dict[str, Any]:
    base = _base("base_url", base_url)
    return {
        "alias": alias,
        # https://docs.gitlab.com/api/oauth2/#authorization-code-with-proof-key-for-code-exchange-pkce
        "authUri": f"{base}/oauth/authorize",
        "accessTokenUri": f"{base}/oauth/token",
        "refreshTokenUri": f"{base}/oauth/token",
        # https://docs.gitlab.com/api/oauth2/#revoke-a-token
        "revokeTokenUri": f"{base}/oauth/revoke",
        # https://docs.gitlab.com/api/oauth2/#device-authorization-grant-flow (GitLab 17.1+)
        "deviceAuthorizationUri": f"{base}/oauth/authorize_device",
        # https://docs.gitlab.com/integration/openid_connect_provider/ (issuer is the
        # instance URL; keys at /oauth/discovery/keys)
        "issuer": base,
        "jwksUri": f"{base}/oauth/discovery/keys",
        # https://docs.gitlab.com/integration/oauth_provider/#view-all-authorized-applications
        "defaultScopes": ["read_user"],
        "clientAuthMethod": "client_secret_post",
        "revokeUrlForPeople": f"{base}/-/user_settings/applications",
    }


def _keycloak(alias: str, base_url: str | None = None, realm: str | None = None) -> dict[str, Any]:
    base = _base("base_url", base_url)
    issuer = f"{base}/realms/{_segment('realm', realm)}"
    # https://www.keycloak.org/securing-apps/oidc-layers#_oidc_available_endpoints
    oidc = f"{issuer}/protocol/openid-connect"
    return {
        "alias": alias,
        "authUri": f"{oidc}/auth",  # "Authorization endpoint"
        "accessTokenUri": f"{oidc}/token",  # "Token endpoint"
        "refreshTokenUri": f"{oidc}/token",
        "revokeTokenUri": f"{oidc}/revoke",  # "Token revocation endpoint"
        "deviceAuthorizationUri": f"{oidc}/auth/device",  # "Device authorization endpoint"
        "issuer": issuer,  # /realms/{realm-name}/.well-known/openid-configuration
        "jwksUri": f"{oidc}/certs",  # "Certificate endpoint"
        "defaultScopes": ["openid"],
        "clientAuthMethod": "client_secret_basic",
    }


def _rocketchat(alias: str, server_url: str | None = None) -> dict[str, Any]:
    server = _base("server_url", server_url)
    return {
        "alias": alias,
        # A Rocket.Chat workspace's own OAuth apps (Administration > Workspace > Third-party
        # login, https://docs.rocket.chat/docs/third-party-login). Its OAuth2 server serves
        # GET/POST /oauth/authorize and /oauth/token, and /oauth/userinfo: no revocation,
        # no device endpoint, no id_token keys
        # (https://github.com/RocketChat/Rocket.Chat/blob/develop/apps/meteor/server/oauth2-server/oauth.ts).
        "authUri": f"{server}/oauth/authorize",
        "accessTokenUri": f"{server}/oauth/token",
        "refreshTokenUri": f"{server}/oauth/token",
        "defaultScopes": [],
        # node-oauth2-server reads client_id/client_secret from the body (or Basic auth).
        "clientAuthMethod": "client_secret_post",
    }


def _oidc(
    alias: str,
    issuer: str | None = None,
    scopes: Iterable[str] = ("openid",),
    **discover: Any,
) -> dict[str, Any]:
    from .config import discover_config

    # OpenID Connect Discovery 1.0 §4 / RFC 8414: the provider describes itself. The issuer
    # is checked like a base URL but passed on exactly (a trailing '/' included, as Auth0's
    # issuers have): discovery compares it with the metadata's issuer as a string.
    _base("issuer", issuer)  # raises for anything but an http(s) URL string
    return discover_config(str(issuer).strip(), alias=alias, default_scopes=scopes, **discover)


#: Preset name -> builder; the builder's keyword parameters are the preset's parameters.
PRESETS: dict[str, Callable[..., dict[str, Any]]] = {
    "google": _google,
    "github": _github,
    "microsoft": _microsoft,
    "gitlab": _gitlab,
    "keycloak": _keycloak,
    "rocketchat": _rocketchat,
    "oidc": _oidc,
}


def preset_parameters(name: str) -> list[str]:
    """The parameters preset ``name`` takes (``alias`` aside)."""
    import inspect

    return [
        p.name
        for p in inspect.signature(PRESETS[name]).parameters.values()
        if p.name != "alias" and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]


def unknown_preset(name: str, others: Iterable[str] = (), where: str = "") -> ConfigurationError:
    """The error for a preset ``name`` that does not exist, the closest name first.

    ``others`` are more names ``name`` may stand for (providers declared on the Jupyter
    server), ``where`` says where those are declared.
    """
    guess = did_you_mean(name, [*PRESETS, *others])
    known = f"The presets are: {', '.join(sorted(PRESETS))}"
    if others:
        known += f"; declared {where or 'here'}: {', '.join(sorted(others))}"
    problem = f"names the preset {name!r}, which does not exist"
    if others:
        problem = f"is {name!r}, which is neither a preset nor a declared provider"
    return ConfigurationError(
        "config", problem, f"{guess} {known}; or pass a config dict.".strip(), label="Argument"
    )


def config(name: str, *, alias: str | None = None, **params: Any) -> dict[str, Any]:
    """The seed-style config dict of preset ``name`` (``alias`` defaults to the name).

    Parameters: ``microsoft``: ``tenant`` (default ``organizations``); ``gitlab``:
    ``base_url`` (default ``https://gitlab.com``); ``keycloak``: ``base_url`` and ``realm``;
    ``rocketchat``: ``server_url``; ``oidc``: ``issuer`` (read by discovery, so this one
    makes a request) and optionally ``scopes``, ``timeout``, ``transport``.

    Raises:
        ConfigurationError: an unknown preset or parameter, or a malformed URL.
    """
    builder = PRESETS.get(name)
    if builder is None:
        raise unknown_preset(name)
    accepted = preset_parameters(name)
    open_ended = name == "oidc"
    unknown = sorted(set(params) - set(accepted))
    if unknown and not open_ended:
        guess = did_you_mean(unknown[0], accepted)
        raise ConfigurationError(
            unknown[0],
            f"is not a parameter of the {name!r} preset",
            f"{guess} Its parameters are: {', '.join(accepted) or 'none'}.".strip(),
            label="Preset parameter",
        )
    return builder(alias or name, **params)
