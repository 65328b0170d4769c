"""Provider configuration: the seed's keys verbatim, snake_case twins, credentials."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from .errors import ConfigurationError, OAuth2Error, did_you_mean

E = TypeVar("E", bound=OAuth2Error)

__all__ = [
    "CLIENT_AUTH_METHODS",
    "GRANTS",
    "REVOKE_STYLES",
    "ClientAuthMethod",
    "Grant",
    "ProviderConfig",
    "check_redirect_uri",
    "credentials_advice",
    "discover_config",
    "env_var_name",
    "provider_identity",
    "require_authentication",
    "same_issuer",
    "scopes_argument",
    "unknown_key",
    "with_credentials_advice",
]

ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
CLIENT_AUTH_METHODS: tuple[str, ...] = (
    "client_secret_basic",
    "client_secret_post",
    "none",
    "private_key_jwt",
)
# How tokens are obtained: a person authorizes (the code grant, or the device grant), or the
# client alone, with no person and no redirect (RFC 6749 §4.4: scheduled notebooks).
Grant = Literal["authorization_code", "client_credentials"]
GRANTS: tuple[str, ...] = ("authorization_code", "client_credentials")
# How revokeTokenUri is called: "rfc7009" (each token, with a hint), "google" (one request
# with the refresh token, else the access token: Google revokes the whole grant and answers
# 400 for a token already revoked), "github" (DELETE /applications/{client_id}/token with
# Basic auth and a JSON body, GitHub's own API instead of RFC 7009).
RevokeStyle = Literal["rfc7009", "google", "github"]
REVOKE_STYLES: tuple[str, ...] = ("rfc7009", "google", "github")

# seed key (camelCase, as in the Rocket.Chat page) -> our field name
_SEED_KEYS = {
    "alias": "alias",
    "authUri": "auth_uri",
    "accessTokenUri": "access_token_uri",
    "refreshTokenUri": "refresh_token_uri",
    "revokeTokenUri": "revoke_token_uri",
    "introspectionUri": "introspection_uri",
    # RFC 8628 §3.1: where a device asks for a user code (no redirect needed).
    "deviceAuthorizationUri": "device_authorization_uri",
    "defaultScopes": "default_scopes",
    "authUriParams": "auth_uri_params",
    "authorizationCallback": "authorization_callback",
    "clientId": "client_id",
    "clientSecret": "client_secret",
    "clientAuthMethod": "client_auth_method",
    # RFC 9207: who issues this provider's codes, and whether it says so in the redirect.
    "issuer": "issuer",
    # Other exact values an id_token's iss may take (Google's legacy "accounts.google.com").
    "acceptedIssuers": "accepted_issuers",
    "authorizationResponseIssParameterSupported": "authorization_response_iss_parameter_supported",
    # OpenID Connect: where the provider publishes the keys that sign its id_tokens.
    "jwksUri": "jwks_uri",
    "revokeStyle": "revoke_style",
    # Where a person revokes this app's access themselves (providers without revocation).
    "revokeUrlForPeople": "revoke_url_for_people",
    # RFC 9449: sender-constrained tokens, bound to a key pair held where the token is.
    "dpop": "dpop",
    # RFC 8707: the resource servers the tokens are for (absolute URIs, no fragment).
    "resource": "resource",
    "grant": "grant",
    # Where a private_key_jwt client's key came from (a path or a variable, never the key).
    "clientKeySource": "client_key_source",
}
# A private_key_jwt client's key file: read once when the config is built (never stored as
# a path: the key itself travels like a client secret, sealed in the store).
_KEY_PATH_KEYS = ("clientKey", "client_key")
_FIELDS = set(_SEED_KEYS.values())
_SEED_NAMES = {name: key for key, name in _SEED_KEYS.items()}
# Fields a dict must give; None reads as "missing" when the config is built.
_REQUIRED: dict[str, Any] = dict.fromkeys(
    ("alias", "auth_uri", "access_token_uri", "refresh_token_uri")
)
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Parameters we set ourselves; letting authUriParams override them would break PKCE or state.
_RESERVED_PARAMS = {
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
}

AuthorizationCallback = Callable[..., Any]


def env_var_name(alias: str, what: str) -> str:
    """Return the environment variable read for ``what`` (CLIENT_ID, CLIENT_SECRET) of an alias."""
    return f"CHAT_OAUTH2_{re.sub(r'[^A-Za-z0-9]', '_', alias).upper()}_{what}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_uri(field: str, value: object, *, allow_http: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            field,
            "is missing or empty",
            f"Put the provider's endpoint URL there, e.g. 'https://provider.example/{field}'.",
        )
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(
            field,
            f"is not an absolute http(s) URL (got {value!r})",
            "Use the full URL from the provider's documentation, starting with https://.",
        )
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            field,
            "uses plain http to a host that is not this machine",
            "Use https://, or pass allow_insecure_http=True if this really is a test provider.",
        )
    return value.strip()


def same_issuer(a: str | None, b: str | None) -> bool:
    """Whether two issuer identifiers are the same: exact string equality, nothing stripped.

    RFC 9207 §2.4, RFC 8414 §3.3 and OpenID Connect Discovery §4.3 compare issuers as simple
    strings: ``https://a.example`` and ``https://a.example/`` are two issuers, and a check that
    strips or case-folds lets a provider answer for an issuer it is not.
    """
    return isinstance(a, str) and isinstance(b, str) and bool(a) and a == b


def check_redirect_uri(uri: object, allow_insecure_http: bool = False) -> str:
    """``uri`` if it is a redirect URI this client may register, else a ConfigurationError.

    An absolute http(s) URI without a fragment (RFC 6749 §3.1.2); plain http only to this
    machine's loopback (RFC 8252 §7.3, §8.3; RFC 9700 §2.1), since the code would otherwise
    cross the network in clear, unless ``allow_insecure_http`` says this is a test setup.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigurationError(
            "redirect_uri",
            "is missing or empty",
            "Leave redirect_uri out (the client picks one), or pass the URI you registered.",
        )
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise ConfigurationError(
            "redirect_uri",
            f"is not an absolute http(s) URI without a fragment (got {uri!r})",
            "Pass the full URI registered at the provider, e.g. "
            "'https://jupyter.example.org/chat-oauth2/callback/<alias>'.",
        )
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        secure = parts._replace(scheme="https").geturl()
        raise ConfigurationError(
            "redirect_uri",
            f"uses plain http to {parts.hostname}, which is not this machine: the "
            "authorization code would cross the network unencrypted",
            f"Register and pass {secure} (serve Jupyter over TLS), or a loopback URI such as "
            "'http://127.0.0.1/chat-oauth2/callback' (mode='loopback'); pass "
            "allow_insecure_http=True only for a test provider.",
        )
    return uri.strip()


def _check_accepted_issuers(value: object) -> tuple[str, ...]:
    if value is None or value == ():
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        value = [value]
    issuers = tuple(value)
    if not all(isinstance(i, str) and i and i == i.strip() for i in issuers):
        raise ConfigurationError(
            "acceptedIssuers",
            f"must be a list of issuer strings (got {value!r})",
            "Leave it out; presets set it where a provider documents a second issuer.",
        )
    return issuers


def _check_alias(value: object) -> str:
    if not isinstance(value, str) or not _ALIAS_RE.match(value):
        raise ConfigurationError(
            "alias",
            "is missing or malformed" if value is None else f"is malformed (got {value!r})",
            "Use a short name of letters, digits, '.', '_' or '-', e.g. 'google'.",
        )
    return value


def _optional_uri(field: str, value: object, *, allow_http: bool) -> str | None:
    """``value`` checked as an endpoint, or None when it is left out (or empty)."""
    return _check_uri(field, value, allow_http=allow_http) if value else None


def _check_iss_supported(value: object, issuer: str | None) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(
            "authorizationResponseIssParameterSupported",
            f"must be True or False (got {value!r})",
            "Leave it out, or copy it from the provider's metadata.",
        )
    if value and issuer is None:
        raise ConfigurationError(
            "issuer",
            "is missing while authorizationResponseIssParameterSupported is True",
            "Put the provider's issuer URL there (discover_config() fills both).",
        )
    return value


def _check_revoke_style(value: object) -> RevokeStyle:
    style = value or "rfc7009"
    if style not in REVOKE_STYLES:
        raise ConfigurationError(
            "revokeStyle",
            f"is {style!r}",
            "Use 'rfc7009' (default), 'google' or 'github' (presets set it for you).",
        )
    return cast(RevokeStyle, style)


def _check_auth_uri_params(value: object) -> dict[str, str]:
    params = value or {}
    if not isinstance(params, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        raise ConfigurationError(
            "authUriParams",
            "must map strings to strings",
            "Write e.g. {'access_type': 'offline', 'prompt': 'consent'}.",
        )
    clash = _RESERVED_PARAMS.intersection(params)
    if clash:
        raise ConfigurationError(
            "authUriParams",
            f"sets {sorted(clash)!r}, which the client sets itself",
            "Remove them: use defaultScopes / scopes= for scope, redirect_uri= for the redirect.",
        )
    return dict(params)


def _check_callback(value: object) -> AuthorizationCallback | None:
    if value is not None and not callable(value):
        raise ConfigurationError(
            "authorizationCallback",
            "is not callable",
            "Pass a function taking (auth_data, user), or leave it out.",
        )
    return value


def _check_client_id(value: object, alias: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            "client_id",
            "is missing",
            f"Pass client_id= to create_oauth2_client() or set {env_var_name(alias, 'CLIENT_ID')}.",
        )
    return value


def _check_auth_method(value: object) -> ClientAuthMethod:
    if value not in CLIENT_AUTH_METHODS:
        raise ConfigurationError(
            "client_auth_method",
            f"is {value!r}",
            "Use 'client_secret_basic' (default), 'client_secret_post', 'private_key_jwt' (with "
            "client_key=) or 'none' (public client).",
        )
    return cast(ClientAuthMethod, value)


def _check_grant(value: object) -> Grant:
    grant = value or "authorization_code"
    if grant not in GRANTS:
        raise ConfigurationError(
            "grant",
            f"is {grant!r}",
            "Use 'authorization_code' (default: a person authorizes) or 'client_credentials' "
            "(the client alone, no person: scheduled notebooks).",
        )
    return cast(Grant, grant)


def require_authentication(config: ProviderConfig) -> ProviderConfig:
    """``config``, unless it is a client credentials client that cannot authenticate.

    Checked where a client that talks to the token endpoint is made (a declared provider's
    copy in a kernel is a public client on purpose: the server holds its credentials).
    """
    if config.grant == "client_credentials" and config.client_auth_method == "none":
        raise ConfigurationError(
            "client_auth_method",
            "is 'none', but the client_credentials grant needs a client that authenticates",
            "Give the client secret (client_secret=) or its private key (client_key=).",
        )
    return config


def _require_secret(config: ProviderConfig) -> None:
    if config.client_auth_method == "private_key_jwt" and not config.client_secret:
        raise ConfigurationError(
            "client_key",
            "is missing (client_auth_method is 'private_key_jwt')",
            f"Pass client_key= the path of the client's private key, or set "
            f"{env_var_name(config.alias, 'CLIENT_KEY_FILE')} (a path) or "
            f"{env_var_name(config.alias, 'CLIENT_KEY')} (the PEM text).",
        )
    if config.client_auth_method != "none" and not config.client_secret:
        raise ConfigurationError(
            "client_secret",
            "is missing",
            f"Pass client_secret= or set {env_var_name(config.alias, 'CLIENT_SECRET')}; "
            "for a public client pass client_auth_method='none'.",
        )


def _checked_fields(config: ProviderConfig) -> dict[str, object]:
    """Every field of ``config`` checked and normalised, in the order errors are reported."""
    http = config.allow_insecure_http
    alias = _check_alias(config.alias)
    fields: dict[str, object] = {"alias": alias}
    token_uri = _check_uri("accessTokenUri", config.access_token_uri, allow_http=http)
    auth_uri = config.auth_uri
    if not auth_uri and config.grant == "client_credentials":
        auth_uri = token_uri  # never opened: no person authorizes this grant
    fields["auth_uri"] = _check_uri("authUri", auth_uri, allow_http=http)
    fields["access_token_uri"] = token_uri
    fields["refresh_token_uri"] = (
        _optional_uri("refreshTokenUri", config.refresh_token_uri, allow_http=http) or token_uri
    )
    for name in ("revoke_token_uri", "introspection_uri", "device_authorization_uri"):
        fields[name] = _optional_uri(_SEED_NAMES[name], getattr(config, name), allow_http=http)
    # Kept exactly as given (a trailing '/' included): issuers are compared as strings.
    fields["issuer"] = issuer = _optional_uri("issuer", config.issuer, allow_http=http)
    fields["accepted_issuers"] = _check_accepted_issuers(config.accepted_issuers)
    fields["authorization_response_iss_parameter_supported"] = _check_iss_supported(
        config.authorization_response_iss_parameter_supported, issuer
    )
    fields["default_scopes"] = _scopes("defaultScopes", config.default_scopes)
    fields["jwks_uri"] = _optional_uri("jwksUri", config.jwks_uri, allow_http=http)
    # A page a person opens, never an endpoint this client sends anything to: http is fine.
    fields["revoke_url_for_people"] = _optional_uri(
        "revokeUrlForPeople", config.revoke_url_for_people, allow_http=True
    )
    fields["revoke_style"] = _check_revoke_style(config.revoke_style)
    fields["auth_uri_params"] = _check_auth_uri_params(config.auth_uri_params)
    fields["authorization_callback"] = _check_callback(config.authorization_callback)
    fields["dpop"] = _check_dpop(config.dpop)
    fields["resource"] = resource_argument(config.resource, "resource")
    fields["client_id"] = _check_client_id(config.client_id, alias)
    method = fields["client_auth_method"] = _check_auth_method(config.client_auth_method)
    fields["grant"] = _check_grant(config.grant)
    # A public client sends no secret, so it keeps none (not even one from the environment).
    fields["client_secret"] = config.client_secret if method != "none" else None
    fields["client_key_source"] = config.client_key_source if method == "private_key_jwt" else None
    return fields


def _field_values(config: object) -> dict[str, Any]:
    """The fields ``config`` gives, by field name: a ProviderConfig's own, or a dict's keys."""
    if isinstance(config, ProviderConfig):
        return {name: getattr(config, name) for name in _FIELDS}
    if not isinstance(config, Mapping):
        raise ConfigurationError(
            "config",
            f"must be a dict, not {type(config).__name__}",
            "Pass a dict like {'alias': ..., 'authUri': ..., 'accessTokenUri': ...}.",
        )
    values: dict[str, Any] = {}
    for key, value in config.items():
        name = _SEED_KEYS.get(key, key)
        if name not in _FIELDS:
            raise unknown_key(str(key))
        if name in values:
            raise ConfigurationError(
                str(key),
                "is given twice (camelCase and snake_case)",
                "Keep only one of the two spellings.",
            )
        values[name] = value
    return values


def _client_key(
    alias: object,
    path: object,
    environ: Mapping[str, str],
    method: object,
    secret_given: object,
) -> tuple[str, str] | None:
    """A private_key_jwt client's key (text, where it came from), checked; None without one.

    A secret given explicitly (argument or config) wins over a key found in the environment,
    unless the method says private_key_jwt.
    """
    if not isinstance(alias, str) or method not in (None, "private_key_jwt"):
        return None
    if path is None and secret_given and method is None:
        return None
    from .clientkey import checked_client_key, find_client_key

    found = find_client_key(alias, path, environ, env_var_name)
    if found is None:
        return None
    checked_client_key(*found)
    return found


def unknown_key(key: str) -> ConfigurationError:
    """The error for a config dict's ``key`` that is no config key: the closest ones first.

    The known keys are read from ``_SEED_KEYS`` (and their snake_case twins), so a key added
    there is suggested too.
    """
    known = _FIELDS if "_" in key else _SEED_KEYS
    guess = did_you_mean(key, known) or did_you_mean(key, [*_SEED_KEYS, *_FIELDS])
    listing = f"The keys are: {', '.join(sorted(_SEED_KEYS))} (or their snake_case twins)."
    return ConfigurationError(key, "is not a known config key", guess or listing)


def _from_environment(environ: Mapping[str, str], alias: object, what: str) -> str | None:
    # A malformed alias is reported when the config is built; it names no variable.
    return environ.get(env_var_name(alias, what)) if isinstance(alias, str) else None


@dataclasses.dataclass(frozen=True)
class ProviderConfig:
    """One OAuth2 provider as the client sees it: endpoints, scopes and credentials.

    Valid by construction: building one (directly, by :meth:`from_mapping` or by
    ``dataclasses.replace``) checks and normalises every field, or raises
    :class:`~chat_oauth2_nb.errors.ConfigurationError`. The one thing it may lack is the
    client secret: a config travels without it (the store keeps it once, a flow's copy
    leaves it out), so :meth:`checked` asks for it where a client is about to authenticate.
    """

    alias: str
    auth_uri: str
    access_token_uri: str
    refresh_token_uri: str
    revoke_token_uri: str | None = None
    introspection_uri: str | None = None
    device_authorization_uri: str | None = None
    default_scopes: tuple[str, ...] = ()
    auth_uri_params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    client_id: str = ""
    #: The client's credential: its secret, or with ``private_key_jwt`` its private key (PEM
    #: or JWK text), which travels and is sealed in the store exactly like a secret.
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    client_auth_method: ClientAuthMethod = "client_secret_basic"
    authorization_callback: AuthorizationCallback | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    issuer: str | None = None
    #: Other exact values an id_token's ``iss`` may take besides ``issuer`` (Google documents
    #: ``accounts.google.com`` next to ``https://accounts.google.com``); never used for RFC
    #: 9207's ``iss`` in the redirect, which is the metadata's issuer only.
    accepted_issuers: tuple[str, ...] = ()
    authorization_response_iss_parameter_supported: bool = False
    jwks_uri: str | None = None
    revoke_style: RevokeStyle = "rfc7009"
    revoke_url_for_people: str | None = None
    #: RFC 9449: ask for DPoP-bound tokens and prove the key on every request.
    dpop: bool = False
    #: RFC 8707: the resources (absolute URIs) sent with the authorization, token and
    #: refresh requests; the first is the default resource of the stored token.
    resource: tuple[str, ...] = ()
    grant: Grant = "authorization_code"
    #: Where a ``private_key_jwt`` client's key came from (shown in hints; never the key).
    client_key_source: str | None = None
    #: Where the credentials came from, for messages: field -> "the client_secret= argument",
    #: "the environment variable CHAT_OAUTH2_<ALIAS>_CLIENT_SECRET", "c.ChatOAuth2App.providers"…
    origins: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    #: Accept plain http endpoints on hosts other than this machine (test providers). The
    #: rule the fields were checked under, not a fact about the provider: it is neither
    #: compared nor written by :meth:`to_mapping`.
    allow_insecure_http: bool = dataclasses.field(default=False, compare=False)

    def __post_init__(self) -> None:
        for name, value in _checked_fields(self).items():
            # Frozen: the checked, normalised values are set once, here.
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        secret = "set" if self.client_secret else "none"
        return (
            f"ProviderConfig(alias={self.alias!r}, auth_uri={self.auth_uri!r}, "
            f"access_token_uri={self.access_token_uri!r}, client_id={self.client_id!r}, "
            f"client_secret=<{secret}>, client_auth_method={self.client_auth_method!r}, "
            f"grant={self.grant!r}, default_scopes={list(self.default_scopes)!r})"
        )

    @classmethod
    def from_mapping(
        cls,
        config: Mapping[str, Any] | ProviderConfig,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        client_auth_method: str | None = None,
        client_key: str | os.PathLike[str] | None = None,
        grant: str | None = None,
        allow_insecure_http: bool = False,
        environ: Mapping[str, str] | None = None,
        source: str = "the config dict",
        holder: str = "",
    ) -> ProviderConfig:
        """Build and validate a config from the seed's dict (camelCase) or snake_case keys.

        ``client_key`` (or the config key ``clientKey``) is the path of a ``private_key_jwt``
        client's private key; see :mod:`chat_oauth2_nb.clientkey` for the other sources.

        ``source`` names where the dict came from and ``holder`` whose environment
        ``environ`` is, for messages that say where a credential came from.
        """
        if isinstance(config, Mapping):
            key_paths = [config[k] for k in _KEY_PATH_KEYS if k in config]
            config = {k: v for k, v in config.items() if k not in _KEY_PATH_KEYS}
            client_key = client_key if client_key is not None else next(iter(key_paths), None)
        values = _field_values(config)
        env = os.environ if environ is None else environ
        alias = values.get("alias")
        given = {"client_id": client_id, "client_secret": client_secret}
        origins = _origins(given, values, env, alias, source, holder)
        cid = client_id or values.get("client_id") or _from_environment(env, alias, "CLIENT_ID")
        method = client_auth_method or values.get("client_auth_method")
        secret_given = client_secret or values.get("client_secret")
        key = _client_key(alias, client_key, env, method, secret_given)
        secret = (
            (key[0] if key else None)
            or secret_given
            or _from_environment(env, alias, "CLIENT_SECRET")
        )
        method = method or (
            "private_key_jwt" if key else "client_secret_basic" if secret else "none"
        )
        credentials = {"client_id": cid, "client_secret": secret, "client_auth_method": method}
        if key is not None:
            credentials["client_key_source"] = key[1]
            origins = {**origins, "client_secret": key[1]}
        if grant is not None:
            credentials["grant"] = grant
        built = cls(
            **{**_REQUIRED, **values, **credentials},
            origins=origins,
            allow_insecure_http=allow_insecure_http,
        )
        return built.checked(allow_insecure_http=allow_insecure_http)

    def checked(self, *, allow_insecure_http: bool) -> ProviderConfig:
        """This config under ``allow_insecure_http``'s rule, with the secret its client sends.

        Raises:
            ConfigurationError: an endpoint uses plain http the rule refuses, or a
                confidential client has no client secret.
        """
        config = self
        if allow_insecure_http != self.allow_insecure_http:
            # Built under another rule: its endpoints are checked again, under this one.
            config = dataclasses.replace(self, allow_insecure_http=allow_insecure_http)
        _require_secret(config)
        return config

    def to_mapping(self, *, include_secret: bool = False) -> dict[str, Any]:
        """Return the JSON-able snake_case form (the secret only when asked)."""
        data: dict[str, Any] = {
            "alias": self.alias,
            "auth_uri": self.auth_uri,
            "access_token_uri": self.access_token_uri,
            "refresh_token_uri": self.refresh_token_uri,
            "revoke_token_uri": self.revoke_token_uri,
            "introspection_uri": self.introspection_uri,
            "device_authorization_uri": self.device_authorization_uri,
            "default_scopes": list(self.default_scopes),
            "auth_uri_params": dict(self.auth_uri_params),
            "client_id": self.client_id,
            "client_auth_method": self.client_auth_method,
            "issuer": self.issuer,
            "accepted_issuers": list(self.accepted_issuers),
            "authorization_response_iss_parameter_supported": (
                self.authorization_response_iss_parameter_supported
            ),
            "jwks_uri": self.jwks_uri,
            "revoke_style": self.revoke_style,
            "revoke_url_for_people": self.revoke_url_for_people,
            "dpop": self.dpop,
            "resource": list(self.resource),
            "grant": self.grant,
            "client_key_source": self.client_key_source,
            "origins": dict(self.origins),
        }
        if include_secret:
            data["client_secret"] = self.client_secret
        return data


def _origins(
    given: Mapping[str, str | None],
    values: Mapping[str, Any],
    env: Mapping[str, str],
    alias: object,
    source: str,
    holder: str,
) -> dict[str, str]:
    """Where each credential comes from: an argument, the dict, or an environment variable."""
    origins: dict[str, str] = {}
    for name, what in (("client_id", "CLIENT_ID"), ("client_secret", "CLIENT_SECRET")):
        if given.get(name):
            origins[name] = f"the {name}= argument"
        elif values.get(name):
            origins[name] = f"{source} ({_SEED_NAMES[name]})"
        elif _from_environment(env, alias, what):
            of = f" of {holder}" if holder else ""
            origins[name] = f"the environment variable {env_var_name(str(alias), what)}{of}"
    return origins


def credentials_advice(config: ProviderConfig) -> str:
    """What to change when the provider refused this client's credentials (invalid_client).

    Names where the client id and secret came from, so the person edits the right place.
    """
    cid = config.origins.get("client_id")
    id_from = f" (from {cid})" if cid else ""
    if config.client_auth_method == "none":
        return (
            f"Check the client id {config.client_id!r}{id_from}. This client sends no secret "
            "(client_auth_method='none'): if the provider registered it as confidential, pass "
            f"client_secret= or set {env_var_name(config.alias, 'CLIENT_SECRET')}."
        )
    if config.client_auth_method == "private_key_jwt":
        return _key_advice(config, id_from)
    secret = config.origins.get("client_secret")
    secret_from = f" (it came from {secret})" if secret else ""
    return (
        f"Check the client id {config.client_id!r}{id_from} and the client secret"
        f"{secret_from}: copy it again from the provider's app page. The client "
        f"authenticates by {config.client_auth_method!r}; 'client_secret_basic' and "
        "'client_secret_post' are the two usual ones (client_auth_method=)."
    )


def _key_advice(config: ProviderConfig, id_from: str) -> str:
    """What to check when the provider refused a private_key_jwt client's assertion."""
    from .clientkey import parse_client_key

    try:
        key = parse_client_key(config.client_secret or "")
        which = f" (kid {key.kid!r}, alg {key.alg})"
    except ValueError:
        which = ""
    source = config.client_key_source or config.origins.get("client_secret") or "the stored config"
    return (
        f"The provider refused the client's signed assertion: register the public half of the "
        f"private key from {source}{which} for the client {config.client_id!r}{id_from} at the "
        "provider, with private_key_jwt as its authentication method; or give the key that is "
        "registered."
    )


def with_credentials_advice(exc: E, config: ProviderConfig) -> E:
    """``exc``, its advice naming where the credentials came from if the provider refused them."""
    if exc.error == "invalid_client":
        exc.with_hint(credentials_advice(config))
    return exc


def provider_identity(config: ProviderConfig) -> str:
    """Who issues this config's tokens: the issuer when known, else token endpoint + client id.

    Stored with every token, so a token is never sent to another provider that happens to
    use the same alias. Only URLs and the client id: it may be shown in messages.
    """
    if config.issuer:
        # A label, not an issuer check (those are exact: same_issuer): tokens stored before
        # issuers were kept verbatim carry the form without a trailing slash.
        return config.issuer.rstrip("/")
    return f"{config.access_token_uri} (client_id {config.client_id})"


def _check_dpop(value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(
            "dpop", f"must be True or False (got {value!r})", "Write dpop=True to bind tokens."
        )
    return value


def resource_argument(value: object, field: str = "resource") -> tuple[str, ...]:
    """Normalise a ``resource=`` value (RFC 8707 §2): one absolute URI or a list of them."""
    items = (value,) if isinstance(value, str) else value
    if value is None:
        return ()
    if isinstance(items, Iterable):
        found = tuple(items)
        if all(isinstance(uri, str) and _is_resource_uri(uri) for uri in found):
            return tuple(dict.fromkeys(found))
    raise ConfigurationError(
        field,
        f"must be an absolute URI or a list of them, without a fragment (got {value!r})",
        "Write e.g. resource='https://api.example.com/' (RFC 8707 §2).",
    )


def _is_resource_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    return bool(parts.scheme and parts.netloc) and not parts.fragment and " " not in uri


def _scopes(field: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, Iterable) and all(
        isinstance(s, str) and s and " " not in s for s in value
    ):
        return tuple(value)
    raise ConfigurationError(
        field, f"must be a list of scope strings (got {value!r})", "Write e.g. ['openid', 'email']."
    )


def scopes_argument(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Normalise a ``scopes=`` argument (a space-separated string or a list)."""
    return () if value is None else _scopes("scopes", value)


# Why a metadata fetch got no usable answer, in words (transport.send's failure names).
_FETCH_FAILURES = {
    "too_large": "answered more than {cap} bytes",
    "deadline": "did not finish answering within the {timeout:g} s allowed",
    "timeout": "did not answer within the {timeout:g} s allowed",
}


def _fetch_metadata(http: Any, url: str, deadline: float, timeout: float) -> tuple[Any, str | None]:
    """The metadata document at ``url`` (a dict), or why there is none, through the bounded send."""
    from .oauth.models import MAX_ANSWER_BYTES, HttpRequest
    from .oauth.transport import send

    request = HttpRequest("GET", url, {"Accept": "application/json"}, "")
    # Capped and under a total deadline: a provider serving 5 MB, or one byte a second,
    # must not hold the notebook or fill its memory (the same bound as every token answer).
    answer = send(http, request, deadline=deadline)
    if answer.failure is not None:
        why = _FETCH_FAILURES.get(answer.failure, "could not be reached ({failure})")
        return None, why.format(cap=MAX_ANSWER_BYTES, timeout=timeout, failure=answer.failure)
    if answer.status != 200:
        return None, f"HTTP {answer.status}"
    try:
        return json.loads(answer.content.decode("utf-8")), None
    except (ValueError, UnicodeDecodeError):
        return None, "not JSON"


def _metadata_config(
    metadata: Mapping[str, Any], issuer: str, alias: str, scopes: Iterable[str]
) -> dict[str, Any]:
    """The seed-style config that ``metadata`` (already validated for ``issuer``) describes."""
    config: dict[str, Any] = {
        "alias": alias,
        "issuer": issuer,
        "authUri": metadata["authorization_endpoint"],
        "accessTokenUri": metadata["token_endpoint"],
        "refreshTokenUri": metadata["token_endpoint"],
        "defaultScopes": list(scopes),
    }
    optional = {
        "revokeTokenUri": "revocation_endpoint",
        "introspectionUri": "introspection_endpoint",
        # RFC 8628 §4; Authlib's RFC 8414 model does not check this field's form,
        # ProviderConfig does when the config is built.
        "deviceAuthorizationUri": "device_authorization_endpoint",
        "jwksUri": "jwks_uri",
    }
    for key, field in optional.items():
        if metadata.get(field):
            config[key] = metadata[field]
    if metadata.get("authorization_response_iss_parameter_supported") is True:
        config["authorizationResponseIssParameterSupported"] = True
    return config


def discover_config(
    issuer: str,
    *,
    alias: str,
    default_scopes: Iterable[str] = (),
    timeout: float = 10.0,
    transport: Any = None,
) -> dict[str, Any]:
    """Read the provider's metadata (RFC 8414, else OpenID discovery); return a seed-style config.

    The metadata is validated with Authlib's RFC 8414 model and its ``issuer`` must equal
    ``issuer`` exactly (RFC 8414 §3.3, Discovery §4.3: a trailing '/' counts), so a mistyped
    or impersonated issuer is caught here. Each answer is read up to 64 KiB, all of it within
    ``timeout`` seconds.
    """
    import httpx
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url

    issuer = issuer.strip()
    # RFC 8414 §3.1 and Discovery §4.1: a terminating '/' is dropped to build the address
    # (only there: the issuer itself stays as given).
    base = issuer.rstrip("/")
    candidates = [
        get_well_known_url(base, external=True, suffix="oauth-authorization-server"),
        f"{base}/.well-known/openid-configuration",
    ]
    tried: list[str] = []
    end = time.monotonic() + timeout
    with httpx.Client(timeout=timeout, transport=transport) as http:
        for url in candidates:
            remaining = end - time.monotonic()
            if remaining <= 0:
                tried.append(f"{url}: not tried, the {timeout:g} s allowed were spent")
                continue
            document, why = _fetch_metadata(http, url, remaining, timeout)
            if why is not None:
                tried.append(f"{url}: {why}")
                continue
            try:
                metadata = AuthorizationServerMetadata(document)
                metadata.validate()
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(
                    "issuer",
                    f"serves invalid metadata at {url} ({str(exc)[:200]})",
                    "Ask the provider for its endpoints and pass them in the config dict instead.",
                ) from None
            if not same_issuer(metadata.get("issuer"), issuer):
                raise ConfigurationError(
                    "issuer",
                    f"is {issuer!r}, which is not the metadata's issuer "
                    f"{str(metadata.get('issuer'))[:200]!r}",
                    "Use exactly the issuer URL the provider documents (a trailing '/' counts).",
                )
            return _metadata_config(metadata, issuer, alias, default_scopes)
    raise ConfigurationError(
        "issuer",
        f"has no metadata ({'; '.join(tried)})",
        "Check the issuer URL, or pass the endpoints in the config dict yourself.",
    )
