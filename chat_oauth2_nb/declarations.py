"""Providers an administrator declares once, outside notebooks: parsing and the public part.

A declaration is the seed's config dict (``authUri``, ``accessTokenUri``…) or
``{"preset": "google", ...}``, with ``clientId``/``clientSecret`` in it or, when absent,
``CHAT_OAUTH2_<ALIAS>_CLIENT_ID``/``_CLIENT_SECRET`` in the environment of the process that
holds the declaration (the Jupyter server, the hub). No I/O besides reading that mapping.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from . import errors
from .config import ProviderConfig, env_var_name
from .errors import ConfigurationError, OAuth2Error

__all__ = [
    "HUB_PROVIDERS",
    "PRESET_PARAMETERS",
    "SERVER_PROVIDERS",
    "admins_error_payload",
    "error_from_payload",
    "error_payload",
    "public_part",
    "resolve_declarations",
    "secret_variables",
]

#: Where a Jupyter server's administrator declares providers, and a hub's.
SERVER_PROVIDERS = "c.ChatOAuth2App.providers"
HUB_PROVIDERS = "configure_hub(providers=...)"
#: Keys of a declaration that are the preset's parameters rather than config keys.
PRESET_PARAMETERS = ("tenant", "base_url", "realm", "server_url", "issuer")
_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _one(
    alias: str, entry: Mapping[str, Any], environ: Mapping[str, str], where: str, holder: str
) -> ProviderConfig:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise ConfigurationError(
            "providers",
            f"declares the alias {alias!r}",
            "Use letters, digits, '_', '.' or '-' (up to 64), starting with a letter or digit.",
        )
    if not isinstance(entry, Mapping):
        raise ConfigurationError(
            f"providers[{alias!r}]",
            f"is a {type(entry).__name__}",
            "Give a dict: the seed's config keys, or {'preset': 'google', ...}.",
        )
    values = dict(entry)
    # A declaration written out by configure_hub() says where its credentials came from.
    carried = values.pop("origins", None)
    preset = values.pop("preset", None)
    if preset is not None:
        from .presets import config as preset_config

        params = {k: values.pop(k) for k in PRESET_PARAMETERS if k in values}
        values = {**preset_config(str(preset), alias=alias, **params), **values}
    if values.get("alias", alias) != alias:
        raise ConfigurationError(
            f"providers[{alias!r}]['alias']",
            f"is {values['alias']!r}, not the key it is declared under",
            "Leave 'alias' out: the key of the declaration is the alias.",
        )
    values["alias"] = alias
    config = ProviderConfig.from_mapping(
        values, environ=environ, source=f"{where}[{alias!r}]", holder=holder
    )
    if isinstance(carried, Mapping):
        config = dataclasses.replace(config, origins={str(k): str(v) for k, v in carried.items()})
    return config


def resolve_declarations(
    declared: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    where: str = SERVER_PROVIDERS,
    holder: str = "the Jupyter server",
) -> dict[str, ProviderConfig]:
    """The full configs (client secrets included) of ``declared``: alias -> config.

    ``where`` names where an administrator declared them and ``holder`` whose environment
    ``environ`` is: each config's :attr:`~chat_oauth2_nb.config.ProviderConfig.origins`
    says so, for the advice on a refused secret.

    Raises:
        ConfigurationError: a declaration is malformed or lacks its credentials; the message
            names the declaration and the environment variable to set.
    """
    if not isinstance(declared, Mapping):
        raise ConfigurationError(
            "providers", f"is a {type(declared).__name__}", "Give a dict: alias -> declaration."
        )
    return {alias: _one(alias, entry, environ, where, holder) for alias, entry in declared.items()}


def secret_variables(aliases: Mapping[str, Any]) -> list[str]:
    """The environment variables that may hold the declared providers' client secrets."""
    return [env_var_name(alias, "CLIENT_SECRET") for alias in aliases]


def public_part(config: ProviderConfig) -> dict[str, Any]:
    """What kernels and people may see of a declared provider: endpoints, scopes, client id."""
    mapping = config.to_mapping()
    mapping.pop("client_secret", None)  # to_mapping() leaves it out; this keeps it that way
    mapping.pop("origins", None)  # the holder's business (and a kernel's config has no such key)
    return mapping


def error_payload(exc: OAuth2Error) -> dict[str, Any]:
    """The JSON form of a typed error, to raise again in another process (no secret is in it)."""
    return {
        "error_type": type(exc).__name__,
        "message": exc.message,
        "hint": exc.hint,
        "error": exc.error,
        "error_description": exc.error_description,
        "status_code": exc.status_code,
    }


def admins_error_payload(exc: OAuth2Error, where: str) -> dict[str, Any]:
    """:func:`error_payload`, its hint naming the administrator when the fix is theirs.

    The client's credentials and its registration at the provider are the administrator's
    (``where`` says where they declared it); a user can only pass that on.
    """
    payload = error_payload(exc)
    if exc.error in ("invalid_client", "unauthorized_client") or isinstance(
        exc, errors.ConfigurationError
    ):
        payload["hint"] = (
            f"The administrator declared this provider ({where}): ask them to check its "
            "client id, secret and registered redirect URI."
        )
    return payload


def error_from_payload(body: object, fallback: str) -> OAuth2Error:
    """The typed error :func:`error_payload` described; ``fallback`` words when it is not one."""
    if not isinstance(body, Mapping) or not isinstance(body.get("message"), str):
        return OAuth2Error(fallback, hint="Check the server's log.")
    cls = getattr(errors, str(body.get("error_type")), None)
    if not (isinstance(cls, type) and issubclass(cls, OAuth2Error)):
        cls = OAuth2Error
    status = body.get("status_code")
    return cls(
        body["message"],
        error=body.get("error") if isinstance(body.get("error"), str) else None,
        error_description=body.get("error_description")
        if isinstance(body.get("error_description"), str)
        else None,
        status_code=status if isinstance(status, int) else None,
        hint=body.get("hint") if isinstance(body.get("hint"), str) else None,
    )
