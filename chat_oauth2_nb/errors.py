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
    ├── RedirectUriError            the provider refuses the redirect URI: register it exactly
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

In IPython (a notebook) an error shows as its short form, the three parts above and a
pointer to ``%tb``; ``%tb`` then shows IPython's full traceback (see
:meth:`OAuth2Error._render_traceback_`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

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
    "RedirectUriError",
    "StateError",
    "StoreError",
    "StoreLockedError",
    "TokenExchangeError",
    "TokenRefreshError",
    "TokenRevokeError",
    "UnknownProviderError",
    "UntrustedPeer",
    "did_you_mean",
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


def did_you_mean(word: str, known: Iterable[str], *, suffix: str = "") -> str:
    """A "Did you mean 'x'?" for the known name closest to ``word`` (difflib), else "".

    Case is ignored when comparing (``clientid`` is ``clientId``'s typo); names as close as
    the closest are offered too; ``suffix`` is written after each (``=`` for keywords).
    """
    by_folded: dict[str, str] = {}
    for name in sorted(set(known)):
        by_folded.setdefault(name.lower(), name)
    folded = word.lower()
    close = difflib.get_close_matches(folded, list(by_folded), n=3, cutoff=0.6)
    if not close:
        return ""
    best = difflib.SequenceMatcher(None, folded, close[0]).ratio()
    ties = [c for c in close if difflib.SequenceMatcher(None, folded, c).ratio() >= best - 0.02]
    return "Did you mean " + " or ".join(f"'{by_folded[c]}{suffix}'" for c in ties) + "?"


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
        self.message = message
        self._shown_short = False
        super().__init__(" ".join(self._parts()))

    def _said(self) -> str:
        """What the provider said, in one sentence ("" when it said nothing)."""
        if not self.error and self.status_code is None:
            return ""
        said = ""
        if self.error:
            said = f"The provider said {self.error!r}"
            if self.error_description:
                said += f": {self.error_description}"
            said = said.rstrip(".") + "."
        if self.status_code is not None:
            said = f"{said} (HTTP {self.status_code})".strip()
        return said

    def _parts(self) -> list[str]:
        """What failed, what the provider said, what to change: the message's three parts."""
        return [p for p in (self.message.rstrip(".") + ".", self._said(), self.hint) if p]

    def with_hint(self, hint: str) -> OAuth2Error:
        """This error with ``hint`` as what to change (its message rebuilt); returns it."""
        self.hint = hint
        self.args = (" ".join(self._parts()),)
        return self

    def _short_traceback(self) -> list[str]:
        """The lines IPython shows for this error: the three parts, then where the rest is."""
        self._shown_short = True
        lines = [f"{type(self).__name__}: {self.message.rstrip('.')}."]
        if self._said():
            lines.append(self._said())
        if self.hint:
            lines.append(f"What to change: {self.hint}")
        lines.append("(The full traceback: run %tb in the next cell.)")
        return lines

    @property
    def _render_traceback_(self) -> Callable[[], list[str]]:
        """IPython's hook: the short form the first time, IPython's full traceback after.

        IPython asks ``hasattr(error, "_render_traceback_")`` each time it shows an error,
        and ``%tb`` shows the last one again: once the short form was shown, this attribute
        is absent, so ``%tb`` prints IPython's own full traceback.
        """
        if self._shown_short:
            raise AttributeError("_render_traceback_")
        return self._short_traceback


class ConfigurationError(OAuth2Error, ValueError):
    """A configuration field is missing or malformed."""

    def __init__(
        self, field: str, problem: str, what_to_do: str, *, label: str = "Config field"
    ) -> None:
        self.field = field
        super().__init__(f"{label} {field!r} {problem}", hint=what_to_do)


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


class RedirectUriError(OAuth2Error):
    """The provider refuses the redirect URI: it is not registered for this client, exactly.

    Found when the browser opened the start link (the Jupyter server asks the provider's
    authorization page first); the fix is at the provider, never another way to authorize.
    """


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
