"""``configure_hub(c, login_provider=...)``: the hub's OAuthenticator client, declared.

Reads the authenticator's settings from ``jupyterhub_config.py`` (no JupyterHub or
OAuthenticator import) and names what is missing for its tokens to reach users' kernels:
an OAuthenticator, ``enable_auth_state``, ``JUPYTERHUB_CRYPT_KEY``, its endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from .login import keep_written_back, stamp_expiry

__all__ = ["LOGIN_SCOPES", "login_declaration", "stamp_expiries"]

#: What the service's own hub token needs: read users' auth_state, and write it back.
LOGIN_SCOPES = ["admin:auth_state", "admin:users"]

# OAuthenticator's entry-point names (c.JupyterHub.authenticator_class = "generic-oauth").
_ENTRY_POINTS = {
    "generic-oauth": "GenericOAuthenticator",
    "generic": "GenericOAuthenticator",
    "google": "GoogleOAuthenticator",
    "github": "GitHubOAuthenticator",
    "gitlab": "GitLabOAuthenticator",
    "azuread": "AzureAdOAuthenticator",
    "auth0": "Auth0OAuthenticator",
    "cilogon": "CILogonOAuthenticator",
    "openshift": "OpenShiftOAuthenticator",
    "bitbucket": "BitbucketOAuthenticator",
    "globus": "GlobusOAuthenticator",
}


def _setting(section: Any, name: str) -> Any:
    return dict.get(section, name)


def _authenticator_section(c: Any) -> str:
    """The config section of the hub's authenticator, when it is an OAuthenticator."""
    chosen = _setting(c.JupyterHub, "authenticator_class")
    if isinstance(chosen, type):
        names = [k.__name__ for k in chosen.__mro__]
        if "OAuthenticator" in names:
            return chosen.__name__
    elif isinstance(chosen, str):
        name = _ENTRY_POINTS.get(chosen, chosen.rsplit(".", 1)[-1])
        if name.endswith("OAuthenticator"):
            return name
    raise ConfigurationError(
        "login_provider",
        f"needs the hub to sign people in with OAuthenticator, and "
        f"c.JupyterHub.authenticator_class is {chosen!r}",
        "Set c.JupyterHub.authenticator_class = 'generic-oauth' (pip install oauthenticator) "
        "and its settings before configure_hub(c, login_provider=...).",
    )


def _value(c: Any, section: str, name: str) -> Any:
    for where in (section, "OAuthenticator", "Authenticator"):
        value = _setting(getattr(c, where), name)
        if value is not None:
            return value
    return None


def _require(c: Any, section: str, environ: Mapping[str, str]) -> None:
    if _value(c, section, "enable_auth_state") is not True:
        raise ConfigurationError(
            "login_provider",
            "needs the hub to keep each user's sign-in tokens (auth_state), which is off",
            "Set c.Authenticator.enable_auth_state = True.",
        )
    if not environ.get("JUPYTERHUB_CRYPT_KEY", "").strip():
        raise ConfigurationError(
            "login_provider",
            "needs JUPYTERHUB_CRYPT_KEY in the hub's environment (the key auth_state is "
            "encrypted with), and it is not set",
            "Set it to `openssl rand -hex 32` where the hub starts (a secret manager, a "
            "Kubernetes Secret), then restart the hub.",
        )


def login_declaration(c: Any, environ: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """(the declaration of the hub sign-in's provider, its authenticator's config section).

    Raises:
        ConfigurationError: naming what is missing (OAuthenticator, enable_auth_state,
            JUPYTERHUB_CRYPT_KEY, an endpoint or the client id).
    """
    section = _authenticator_section(c)
    _require(c, section, environ)
    endpoints = {k: _value(c, section, k) for k in ("authorize_url", "token_url")}
    client_id = _value(c, section, "client_id") or environ.get("OAUTH_CLIENT_ID")
    missing = [f"c.{section}.{k}" for k, v in endpoints.items() if not v]
    if not client_id:
        missing.append(f"c.{section}.client_id")
    if missing:
        raise ConfigurationError(
            "login_provider",
            f"needs the sign-in's {', '.join(missing)}, which is not set in this config",
            "Set it before configure_hub(c, login_provider=...).",
        )
    secret = _value(c, section, "client_secret")
    if not secret and environ.get("OAUTH_CLIENT_SECRET"):
        secret = {"env": "OAUTH_CLIENT_SECRET"}
    scope = _value(c, section, "scope") or ["openid"]
    declaration: dict[str, Any] = {
        "authUri": endpoints["authorize_url"],
        "accessTokenUri": endpoints["token_url"],
        "refreshTokenUri": endpoints["token_url"],
        "clientId": client_id,
        "defaultScopes": list(scope),
    }
    if secret:
        declaration["clientSecret"] = secret
    return declaration, section


def stamp_expiries(c: Any, section: str) -> None:
    """Have the authenticator note each token's expiry, and not rewrite a valid auth_state."""
    config = getattr(c, section)
    _keep_written_back(c, section)
    existing = _value(c, section, "modify_auth_state_hook")
    if existing is None or existing is stamp_expiry:
        config.modify_auth_state_hook = stamp_expiry
        return
    if getattr(existing, "__wrapped_by_chat_oauth2_nb__", False):
        return

    async def both(authenticator: Any, auth_state: dict[str, Any]) -> dict[str, Any]:
        import inspect

        result = existing(authenticator, auth_state)
        if inspect.isawaitable(result):
            result = await result
        return stamp_expiry(authenticator, result)

    both.__wrapped_by_chat_oauth2_nb__ = True  # type: ignore[attr-defined]
    config.modify_auth_state_hook = both


def _keep_written_back(c: Any, section: str) -> None:
    """``refresh_user_hook`` (OAuthenticator >= 17.3): ours first, then the admin's own."""
    config = getattr(c, section)
    existing = _value(c, section, "refresh_user_hook")
    if existing is None or existing is keep_written_back:
        config.refresh_user_hook = keep_written_back
        return
    if getattr(existing, "__wrapped_by_chat_oauth2_nb__", False):
        return

    async def both(authenticator: Any, user: Any, auth_state: Any) -> Any:
        import inspect

        if keep_written_back(authenticator, user, auth_state) is True:
            return True
        result = existing(authenticator, user, auth_state)
        return await result if inspect.isawaitable(result) else result

    both.__wrapped_by_chat_oauth2_nb__ = True  # type: ignore[attr-defined]
    config.refresh_user_hook = both
