"""Typed errors raised by chat_oauth2_nb.

Every error derives from :class:`OAuth2Error`, carries the provider's ``error``,
``error_description`` and HTTP ``status_code`` when there was a provider answer, and says
what to do next. No error message ever contains a token, code, verifier or secret::

    OAuth2Error
    ├── ConfigurationError          a config field is missing or malformed
    ├── NotAuthorizedError          nothing is stored for this (alias, user)
    │   ├── ProviderMismatchError   the stored token belongs to another provider
    │   └── GrantRevokedError       the provider ended the grant: authorize again (also a
    │                               TokenRefreshError when a refresh found it so)
    ├── AuthorizationDeniedError    the provider redirected back with error=...
    ├── StateError                  unknown, used, expired or missing state
    │   └── BrowserBindingError     the redirect came from another browser or Jupyter user
    ├── IssuerMismatchError         the redirect's iss is not the provider's (RFC 9207)
    ├── AuthorizationTimeoutError   wait_for_authorization() gave up waiting
    │   └── DeviceCodeExpiredError  the device code expired before anyone approved it
    ├── AuthorizationCancelledError client.close() ended a wait
    ├── StoreError                  the on-disk store cannot be used
    │   └── StoreLockedError        another process holds the store locked for too long
    └── ProviderError               the provider answered badly or not at all
        ├── DeviceAuthorizationError  the device authorization endpoint refused (RFC 8628)
        ├── TokenExchangeError      the authorization code could not be exchanged
        │   └── IdTokenError        the id_token failed OpenID Connect verification
        ├── TokenRefreshError       the refresh token grant failed
        └── TokenRevokeError        the revocation endpoint failed
"""

from __future__ import annotations

__all__ = [
    "ActionUnavailableError",
    "AuthorizationCancelledError",
    "AuthorizationDeniedError",
    "AuthorizationTimeoutError",
    "ConfigurationError",
    "DeviceAuthorizationError",
    "DeviceCodeExpiredError",
    "GrantRevokedError",
    "IdTokenError",
    "NotAuthorizedError",
    "OAuth2Error",
    "ProviderError",
    "ProviderMismatchError",
    "StateError",
    "StoreError",
    "StoreLockedError",
    "TokenExchangeError",
    "TokenRefreshError",
    "TokenRevokeError",
    "UnknownProviderError",
    "UntrustedPeer",
    "hint_for",
]

# What a person should change for the provider errors people meet most often.
_HINTS: dict[str, str] = {
    "redirect_uri_mismatch": (
        "Register the redirect URI shown by client.setup() at the provider exactly "
        "(scheme, host, port and path), or pass redirect_uri= to create_oauth2_client()."
    ),
    "invalid_client": (
        "Check the client id and secret and the client authentication method "
        "(client_auth_method='client_secret_basic', 'client_secret_post' or 'none')."
    ),
    "unauthorized_client": (
        "Allow the authorization code grant (and refresh tokens) for this client at the provider."
    ),
    "invalid_grant": (
        "The code or refresh token is expired, used or revoked: authorize again with "
        "client.get_user_authorization_url()."
    ),
    "invalid_scope": (
        "Request only scopes the provider knows and the client is allowed: "
        "check defaultScopes and the scopes= argument."
    ),
    "access_denied": "The person declined, or the provider refused: authorize again if that was a mistake.",
    "invalid_request": "The provider rejected the request's parameters: check the endpoints and extra parameters.",
    "expired_token": (
        "The device code expired before the person approved it: start again with "
        "client.start_device_authorization() and enter the new code before it expires."
    ),
    "temporarily_unavailable": "The provider is overloaded: try again in a moment.",
    "server_error": "The provider failed: try again later, or check its status page.",
}


def hint_for(error: str | None) -> str | None:
    """Return what to change for a provider ``error`` code, if it is a common one."""
    return _HINTS.get(error or "")


class OAuth2Error(Exception):
    """Base class of every error raised by chat_oauth2_nb."""

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        status_code: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.error = error
        self.error_description = error_description
        self.status_code = status_code
        self.hint = hint if hint is not None else hint_for(error)
        parts = [message.rstrip(".") + "."]
        if error:
            said = f"The provider said {error!r}"
            if error_description:
                said += f": {error_description}"
            parts.append(said.rstrip(".") + ".")
        if status_code is not None:
            parts.append(f"(HTTP {status_code})")
        if self.hint:
            parts.append(self.hint)
        super().__init__(" ".join(parts))
        self.message = message


class ConfigurationError(OAuth2Error, ValueError):
    """A configuration field is missing or malformed."""

    def __init__(self, field: str, problem: str, what_to_do: str) -> None:
        self.field = field
        super().__init__(f"Config field {field!r} {problem}", hint=what_to_do)


class NotAuthorizedError(OAuth2Error):
    """Nothing is stored for this (alias, user): authorize first."""


class UnknownProviderError(NotAuthorizedError):
    """An alias names no provider known here (the message lists them, the hint may guess one)."""


class ActionUnavailableError(NotAuthorizedError):
    """This process cannot do that for this provider (another one holds what it needs)."""


class ProviderMismatchError(NotAuthorizedError):
    """The token stored under this alias was issued by another provider: it is not sent here."""


class AuthorizationDeniedError(OAuth2Error):
    """The provider redirected back with ``error=`` instead of a code."""


class StateError(OAuth2Error):
    """The callback's ``state`` is unknown, already used, expired or missing."""


class BrowserBindingError(StateError):
    """The redirect came from a browser (or Jupyter user) other than the one that started the flow."""


class IssuerMismatchError(OAuth2Error):
    """The redirect's ``iss`` is not the flow's provider (RFC 9207): a mix-up attempt."""


class AuthorizationTimeoutError(OAuth2Error, TimeoutError):
    """No callback completed the pending authorization in time."""


class AuthorizationCancelledError(OAuth2Error):
    """client.close() was called while a wait for an authorization was running."""


class DeviceCodeExpiredError(AuthorizationTimeoutError):
    """The device code (RFC 8628) expired before the person approved it: start again."""


class StoreError(OAuth2Error):
    """The on-disk store cannot be used."""


class StoreLockedError(StoreError):
    """Another process held the store locked for longer than the busy timeout."""


class ProviderError(OAuth2Error):
    """The provider answered with an error, an unreadable answer, or not at all."""

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        status_code: int | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        if retry_after is not None and hint is None:
            hint = f"The provider asks to retry after {retry_after:g} s."
        super().__init__(
            message,
            error=error,
            error_description=error_description,
            status_code=status_code,
            hint=hint,
        )


class DeviceAuthorizationError(ProviderError):
    """The device authorization endpoint (RFC 8628 §3.1) refused or answered badly."""


class TokenExchangeError(ProviderError):
    """The authorization code could not be exchanged for a token."""


class IdTokenError(TokenExchangeError):
    """The id_token failed OpenID Connect verification (signature, iss, aud, exp or nonce)."""


class TokenRefreshError(ProviderError):
    """The refresh token grant failed; the stored token is unchanged."""


class GrantRevokedError(NotAuthorizedError, TokenRefreshError):
    """The provider ended the stored grant (revoked or expired there): authorize again.

    A TokenRefreshError too: code that caught a refused refresh still catches it.
    """


class TokenRevokeError(ProviderError):
    """The revocation endpoint failed; the stored token is kept."""


class UntrustedPeer(Exception):
    """The service's address could be anyone's: the token was not sent (the message says why).

    Not an OAuth2Error: the caller that asked (a store key fetch, a broker call) turns it into
    its own typed error. Here, not in store/hubpeer.py, so that raising and catching it does
    not load httpcore's network backends (and trio with them) into every kernel.
    """
