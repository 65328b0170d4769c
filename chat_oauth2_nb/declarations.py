"""Providers an administrator declares once, outside notebooks: parsing and the public part.

A declaration is the seed's config dict (``authUri``, ``accessTokenUri``…) or
``{"preset": "google", ...}``, with ``clientId``/``clientSecret`` in it or, when absent,
``CHAT_OAUTH2_<ALIAS>_CLIENT_ID``/``_CLIENT_SECRET`` in the environment of the process that
holds the declaration (the Jupyter server, the hub). The secret may also be a reference to
where the administrator keeps it: ``{"env": "NAME"}`` (an environment variable) or
``{"file": "/run/secrets/x"}`` (a file: a Kubernetes Secret mount, a SOPS-decrypted file),
read by the process that uses it and never copied anywhere by this package. A
``private_key_jwt`` client declares ``clientKey`` (the path of its private key file) or
``_CLIENT_KEY_FILE``/``_CLIENT_KEY`` instead of a secret: the holder reads the key once, and
it is kept like a secret. No I/O besides reading that mapping, a referenced file and a
declared key file.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import errors
from .config import ProviderConfig, env_var_name, require_authentication
from .errors import ConfigurationError, OAuth2Error

__all__ = [
    "HUB_PROVIDERS",
    "PRESET_PARAMETERS",
    "SERVER_PROVIDERS",
    "admins_error_payload",
    "error_from_payload",
    "error_payload",
    "public_part",
    "referenced_declarations",
    "resolve_declarations",
    "secret_variables",
]

#: Where a Jupyter server's administrator declares providers, and a hub's.
SERVER_PROVIDERS = "c.ChatOAuth2App.providers"
HUB_PROVIDERS = "configure_hub(providers=...)"
#: Keys of a declaration that are the preset's parameters rather than config keys.
PRESET_PARAMETERS = ("tenant", "base_url", "realm", "server_url", "issuer")
_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: The keys of a declaration that may hold a reference instead of the value.
_REFERABLE = {
    "clientSecret": "client_secret",
    "client_secret": "client_secret",
    "clientId": "client_id",
    "client_id": "client_id",
}
_MAX_SECRET_FILE = 64 * 1024


def _resolve_reference(where: str, ref: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """The value a ``{"env": NAME}`` or ``{"file": PATH}`` reference points at (never echoed)."""
    if set(ref) == {"env"} and isinstance(ref["env"], str) and ref["env"]:
        value = environ.get(ref["env"], "").strip()
        if not value:
            raise ConfigurationError(
                where,
                f"refers to the environment variable {ref['env']}, which is not set here",
                f"Set {ref['env']} in the environment of the process that holds the provider "
                "(the hub's, for configure_hub; it passes it on to its service).",
            )
        return value
    if set(ref) == {"file"} and isinstance(ref["file"], str) and ref["file"]:
        path = Path(ref["file"])
        try:
            with path.open("rb") as handle:
                raw = handle.read(_MAX_SECRET_FILE + 1)
        except OSError as exc:
            raise ConfigurationError(
                where,
                f"refers to the file {path}, which cannot be read ({type(exc).__name__})",
                "Check the path and that the service's user may read it (a Kubernetes Secret "
                "mount, a SOPS-decrypted file).",
            ) from None
        value = raw.decode("utf-8", "replace").strip()
        if not value or len(raw) > _MAX_SECRET_FILE:
            raise ConfigurationError(
                where, f"refers to the file {path}, which holds no secret", "Put it there."
            )
        return value
    raise ConfigurationError(
        where,
        "is a reference of an unknown form",
        'Give the value, {"env": "VARIABLE"} or {"file": "/path/to/the/secret"}.',
    )


def _dereferenced(
    alias: str, values: dict[str, Any], environ: Mapping[str, str], holder: str
) -> dict[str, str]:
    """Replace each reference in ``values`` by its value; the origins of those values."""
    origins: dict[str, str] = {}
    of = f" of {holder}" if holder else ""
    for key in _REFERABLE:
        ref = values.get(key)
        if isinstance(ref, Mapping):
            values[key] = _resolve_reference(f"providers[{alias!r}][{key!r}]", ref, environ)
            origins[_REFERABLE[key]] = (
                f"the environment variable {ref['env']}{of}"
                if "env" in ref
                else f"the file {ref['file']}{of}"
            )
    return origins


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
    referenced = _dereferenced(alias, values, environ, holder)
    config = ProviderConfig.from_mapping(
        values, environ=environ, source=f"{where}[{alias!r}]", holder=holder
    )
    if isinstance(carried, Mapping):
        config = dataclasses.replace(config, origins={str(k): str(v) for k, v in carried.items()})
    elif referenced:
        config = dataclasses.replace(config, origins={**config.origins, **referenced})
    return require_authentication(config)


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


def _reference(
    alias: str, entry: Any, config: ProviderConfig, environ: Mapping[str, str]
) -> tuple[dict[str, str] | None, dict[str, str]]:
    """(the reference to keep for the secret, the variables the holder's environment needs)."""
    if config.client_auth_method == "private_key_jwt":
        # The key stays where the admin keeps it: a declared path is kept (in the mapping),
        # the key's variables are handed over in memory.
        kinds = ("CLIENT_KEY_FILE", "CLIENT_KEY")
        names = [env_var_name(alias, kind) for kind in kinds]
        return None, {name: environ[name] for name in names if name in environ}
    if config.client_auth_method == "none" or not config.client_secret:
        return None, {}
    given = next(
        (
            entry[k]
            for k in ("clientSecret", "client_secret")
            if isinstance(entry, Mapping) and k in entry
        ),
        None,
    )
    if isinstance(given, Mapping) and "file" in given:
        return {"file": str(given["file"])}, {}  # the holder reads it where the admin keeps it
    name = str(given["env"]) if isinstance(given, Mapping) else env_var_name(alias, "CLIENT_SECRET")
    if isinstance(given, str):
        return {"env": name}, {name: given}  # written in the config: handed over, in memory
    return {"env": name}, {name: environ[name]} if name in environ else {}


def referenced_declarations(
    declared: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    where: str = SERVER_PROVIDERS,
    holder: str = "the Jupyter server",
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The declarations with each client secret as a reference, and the variables it needs.

    What a holder (the hub's service) is given instead of the secrets: each provider's checked
    config with ``client_secret`` a ``{"env": NAME}`` or ``{"file": PATH}`` reference, and the
    environment variables (name -> value) to hand to its process. A file reference stays a
    path: the holder reads it at start, so a rotated Kubernetes Secret needs only a restart.

    Raises:
        ConfigurationError: as :func:`resolve_declarations`.
    """
    resolved = resolve_declarations(declared, environ, where=where, holder=holder)
    entries: dict[str, dict[str, Any]] = {}
    variables: dict[str, str] = {}
    for alias, config in resolved.items():
        ref, needed = _reference(alias, declared[alias], config, environ)
        mapping = config.to_mapping()
        if ref is not None:
            mapping["client_secret"] = ref
        entry = declared[alias]
        path = next((entry[k] for k in ("clientKey", "client_key") if k in entry), None)
        if config.client_auth_method == "private_key_jwt" and path is not None:
            mapping["client_key"] = str(path)
        entries[alias] = mapping
        variables.update(needed)
    return entries, variables


def secret_variables(aliases: Mapping[str, Any]) -> list[str]:
    """The environment variables that may hold the declared providers' secrets or keys."""
    kinds = ("CLIENT_SECRET", "CLIENT_KEY", "CLIENT_KEY_FILE")
    return [env_var_name(alias, kind) for alias in aliases for kind in kinds]


def public_part(config: ProviderConfig) -> dict[str, Any]:
    """What kernels and people may see of a declared provider: endpoints, scopes, client id."""
    mapping = config.to_mapping()
    mapping.pop("client_secret", None)  # to_mapping() leaves it out; this keeps it that way
    mapping.pop("client_key_source", None)  # where the holder's key file is: its business
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
