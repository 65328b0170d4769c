"""The one completion of a redirect: the Jupyter handler, the loopback listener and paste-back.

One state, used once: look up the pending flow, check where and from whom it arrived, exchange
the code with its PKCE verifier through the grants, store the token, and report an outcome
that a page can show and the kernel can read. Synchronous: callers on an event loop run it
once in a worker thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

from ..config import ProviderConfig, provider_identity, same_issuer
from ..errors import (
    AuthorizationDeniedError,
    BrowserBindingError,
    IdTokenError,
    IssuerMismatchError,
    OAuth2Error,
    StateError,
    StoreError,
    TokenExchangeError,
)
from ..oauth import redact
from ..store import FlowError, FlowErrorKind, PendingFlow, Store
from .grants import AuthorizationCode, Connections, Grants, patiently

__all__ = [
    "ROUTE_VALUE",
    "SECURITY_HEADERS",
    "Arrival",
    "CallbackOutcome",
    "binding_cookie",
    "binding_cookie_name",
    "complete_authorization",
    "complete_with_registered",
    "open_start_link",
    "route_cookie_name",
    "scrub_uri",
]

log = logging.getLogger("chat_oauth2_nb.server")

# Longer values are not from any real provider; refusing them keeps pages and logs small.
_MAX_PARAM = 4096


#: Headers on every answer of the start and callback endpoints.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_SCRUBBED = re.compile(r"(?i)(?<=[?&;])((?:code|state|iss)=)[^&;#]*")


def scrub_uri(uri: str) -> str:
    """``uri`` with the values of ``code``, ``state`` and ``iss`` replaced (names kept), for logs."""
    return _SCRUBBED.sub(r"\1[scrubbed]", uri)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def binding_cookie_name(state: str) -> str:
    """The cookie that binds the flow of ``state`` to a browser: one per flow, so flows coexist."""
    return f"chat_oauth2_{_digest(state)[:20]}"


#: A server name the route cookie may carry: JupyterHub's URL-safe names, nothing that could
#: leave the user's own ``/user/<name>/`` prefix (no slash, no dot-only segment).
ROUTE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,254}")


def route_cookie_name(state: str) -> str:
    """The cookie that tells the hub's router which of the user's servers holds this flow."""
    return f"chat_oauth2_route_{_digest(state)[:20]}"


def binding_cookie(name: str, value: str, path: str, *, secure: bool) -> str:
    """A Set-Cookie value: HttpOnly, SameSite=Lax (it must survive the provider's redirect back)."""
    flags = "; Secure" if secure else ""
    return f"{name}={value}; Path={quote(path)}; HttpOnly; SameSite=Lax; Max-Age=3600{flags}"


def open_start_link(
    store: Store,
    start_id: str,
    *,
    owner: str | None,
    accepts: Callable[[PendingFlow], bool],
    cookies: Mapping[str, str] | None = None,
    refusal: Callable[[PendingFlow, list[str | None]], OAuth2Error | None] | None = None,
) -> tuple[str, str, str] | str:
    """Bind the flow of ``start_id`` to this browser: (provider URL, cookie name, cookie value).

    A start link binds the first browser that opens it, once: a later open from another
    browser is refused (the link may have leaked, e.g. through a command line any local user
    can read) and rebinds nothing; the browser that holds the binding (``cookies``) may open
    it again. Returns the reason (words for a page) when the link is unknown, used, expired,
    opened already, another Jupyter user's, or was issued for another endpoint.

    ``refusal(flow, secrets)`` asks the provider first (:class:`~chat_oauth2_nb.lifecycle.probe.
    RedirectProbe`): a refused redirect URI ends the flow with that error at once, so the
    notebook says what to register instead of waiting, and the browser is not sent on.
    """

    if not 0 < len(start_id) <= 128:
        return "This authorization link is malformed. Start again from your notebook's link."
    try:
        flow = store.flow_by_start_id(start_id)
        if flow is None or not accepts(flow) or flow.provider is None:
            return (
                "This authorization link is unknown here. Start again from the link your "
                "notebook shows."
            )
        again = _same_browser(flow, owner, cookies or {})
        if again is not None:
            return again
        refused = None
        if refusal is not None and flow.status == "pending" and flow.provider is not None:
            held = store.get_provider(flow.alias, provider_identity(flow.provider))
            refused = refusal(flow, [held.client_secret if held is not None else None])
        if refused is not None:
            store.finish_flow(flow.state, error=FlowError.of(refused, "redirect_uri"))
            return str(refused)
        value = secrets.token_urlsafe(32)
        flow = store.bind_flow(start_id, _digest(value), owner)
    except OAuth2Error as exc:
        return f"{exc.message}. {exc.hint or ''}".strip()
    return flow.authorization_url(), binding_cookie_name(flow.state), value


def _same_browser(
    flow: PendingFlow, owner: str | None, cookies: Mapping[str, str]
) -> tuple[str, str, str] | None:
    """The provider URL again, for the browser (and Jupyter user) the flow is bound to already."""
    name = binding_cookie_name(flow.state)
    cookie = cookies.get(name)
    if flow.binding is None or cookie is None or flow.owner != owner or flow.status != "pending":
        return None
    if not hmac.compare_digest(_digest(cookie), flow.binding) or flow.expires_at <= time.time():
        return None
    return flow.authorization_url(), name, cookie


@dataclasses.dataclass(frozen=True)
class Arrival:
    """Where and how a redirect arrived: which endpoint, the browser's cookies, the Jupyter user."""

    kind: Literal["server", "loopback", "paste"]
    #: The alias named by the path (``…/callback/<alias>``); None at the plain ``…/callback``.
    path_alias: str | None
    cookies: Mapping[str, str]
    #: The logged-in Jupyter user (None on the loopback, which has no login).
    user: str | None
    #: Whether a flow with this redirect URI may finish here.
    accepts: Callable[[str], bool]

    def check(self, flow: PendingFlow) -> None:
        """Refuse a flow not issued for this endpoint or not started in this browser by this user."""
        wrong_place = (
            # Each flow finishes only where it was issued for: the server's callback, a
            # loopback listener, or an address pasted into the notebook that started it.
            flow.endpoint != self.kind
            or not self.accepts(flow.redirect_uri)
            or (self.path_alias is not None and self.path_alias != flow.alias)
        )
        if wrong_place:
            # Mix-up or a redirect replayed at another listener: the flow stays usable.
            raise StateError(
                "This redirect arrived at an address the authorization was not started for",
                hint="Start again from the link your notebook shows, and register exactly the "
                "redirect URI the client reports (client.redirect_uri) at the provider.",
            )
        if self.kind == "paste":
            return  # no browser came back here: the person pasting is the binding
        # The user first: a guest on a shared server gets the clear answer (403), not "this
        # browser" (the guest's browser has no binding cookie either).
        if flow.owner is not None and flow.owner != self.user:
            raise BrowserBindingError(
                "Another Jupyter user started this authorization",
                status_code=403,
                hint="Each person authorizes from a link their own notebook shows.",
            )
        cookie = self.cookies.get(binding_cookie_name(flow.state))
        if (
            flow.binding is None
            or cookie is None
            or not hmac.compare_digest(_digest(cookie), flow.binding)
        ):
            raise BrowserBindingError(
                "This browser did not start this authorization",
                hint="Start again from the Authorize link your notebook shows (or the URL "
                "client.get_user_authorization_url() returned), in this browser.",
            )


@dataclasses.dataclass(frozen=True)
class CallbackOutcome:
    """What happened at the callback: an HTTP status and words for the page (no secrets)."""

    status: int
    title: str
    message: str
    alias: str | None = None
    user: str | None = None
    error: str | None = None
    error_description: str | None = None
    hint: str | None = None
    #: The typed error behind a failure, for callers in Python (paste-back).
    exception: OAuth2Error | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        """True when a token was stored."""
        return self.status == 200


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) != 1:
        # Missing, or given twice: an attacker's URL, never a provider's.
        return None
    value = values[0]
    return value if 0 < len(value) <= _MAX_PARAM else None


def _failure(
    status: int, title: str, exc: OAuth2Error, alias: str | None = None, user: str | None = None
) -> CallbackOutcome:
    return CallbackOutcome(
        status=status,
        title=title,
        message=exc.message,
        alias=alias,
        user=user,
        error=exc.error,
        error_description=exc.error_description,
        hint=exc.hint,
        exception=exc,
    )


def _issuer_problem(
    flow: PendingFlow, params: Mapping[str, Sequence[str]]
) -> IssuerMismatchError | None:
    # RFC 9207: the provider names itself in the redirect; a different name means the browser
    # was bounced here by another provider (mix-up, RFC 9700 §4.4).
    config = flow.provider
    issuer = config.issuer if config is not None else None
    if "iss" not in params:
        if config is not None and config.authorization_response_iss_parameter_supported:
            return IssuerMismatchError(
                f"The redirect for {flow.alias!r} has no iss, but its provider always sends one",
                hint="Someone may have mixed up providers: start again from your notebook's "
                "link. If it happens again, check the provider's metadata.",
            )
        return None
    iss = _one(params, "iss")
    if issuer is None:
        return None  # nothing to compare with: the config has no issuer
    if iss is None or not same_issuer(iss, issuer):  # RFC 9207 §2.4: exact
        return IssuerMismatchError(
            f"The redirect for {flow.alias!r} names another issuer than {issuer}",
            hint="Another provider sent your browser here (a mix-up attack, RFC 9700 §4.4), or "
            "the config's issuer is wrong. Start again from your notebook's link.",
        )
    return None


def complete_authorization(
    store: Store,
    params: Mapping[str, Sequence[str]],
    arrival: Arrival,
    grants_for: Callable[[ProviderConfig], Grants],
) -> CallbackOutcome:
    """Finish the flow named by ``params['state']``; never raises for bad input.

    Every way a redirect arrives (the Jupyter server's callback, the loopback listener, an
    address pasted back) comes here, once, in a worker thread: store and provider I/O block.
    Before the state is used up, the flow must have been issued for this endpoint and alias
    and started by this browser (and Jupyter user); otherwise it stays pending. A redirect
    whose ``iss`` is not the flow's provider (RFC 9207) ends the flow with an error and sends
    no code anywhere. The code is exchanged by ``grants_for(the flow's provider)``: the
    Jupyter server gives the grants of a provider declared on it (whose secret only it, or
    the hub's service, holds) when the flow's provider is one.
    """
    state = _one(params, "state")
    if state is None:
        return _failure(
            400,
            "Authorization failed",
            StateError(
                "The callback has no single valid state parameter",
                hint="Open the authorization link from your notebook again; this address was "
                "not produced by it.",
            ),
        )
    try:
        flow = store.consume_flow(state, arrival.check)
    except BrowserBindingError as exc:
        return _failure(exc.status_code or 400, "Authorization failed", exc)
    except StateError as exc:
        return _failure(400, "Authorization failed", exc)
    except StoreError as exc:
        # Nothing was consumed: reloading this page once the store is free finishes the flow.
        return _failure(503, "Authorization is waiting for the token store", exc)
    try:
        return _settle(store, flow, params, grants_for)
    except Exception as exc:
        # The state is used up: whatever broke, the flow must end with an error the kernel
        # can read, or its wait hangs to the timeout. Only the type is logged: a foreign
        # exception's message was never checked for secrets.
        log.warning("the callback for %r failed with %s", flow.alias, type(exc).__name__)
        failed = TokenExchangeError(
            f"The callback failed unexpectedly ({type(exc).__name__})",
            hint="Authorize again; if it fails the same way, the provider sent something this "
            "client does not expect: check its token endpoint's answer in the HTTP log.",
        )
        with contextlib.suppress(Exception):
            store.finish_flow(flow.state, error=FlowError.of(failed, "exchange"))
        return _failure(502, "Authorization failed", failed, alias=flow.alias, user=flow.user)


def _refusal(
    flow: PendingFlow, params: Mapping[str, Sequence[str]], known: Sequence[str | None]
) -> tuple[int, str, OAuth2Error, FlowErrorKind] | None:
    """Why a consumed flow cannot go on to the token endpoint, if it cannot."""
    mixup = _issuer_problem(flow, params)
    if mixup is not None:
        log.warning("refused a redirect for %r: %s", flow.alias, mixup.message)
        return 400, "Authorization refused", mixup, "mixup"
    error = _one(params, "error")
    if error is not None or "error" in params:
        description = _one(params, "error_description")
        denied = AuthorizationDeniedError(
            f"The provider did not authorize {flow.alias!r}",
            error=redact(error, known) if error else "invalid_request",
            error_description=redact(description, known) if description else None,
        )
        return 400, "Authorization was not granted", denied, "denied"
    if _one(params, "code") is None:
        no_code = TokenExchangeError(
            "The callback has no single authorization code",
            hint="Check authUri points at the provider's authorization endpoint.",
        )
        return 400, "Authorization failed", no_code, "exchange"
    return None


def _settle(
    store: Store,
    flow: PendingFlow,
    params: Mapping[str, Sequence[str]],
    grants_for: Callable[[ProviderConfig], Grants],
) -> CallbackOutcome:
    """Finish a consumed flow: the provider's error, or the code exchanged and stored."""
    where = {"alias": flow.alias, "user": flow.user}
    config = flow.provider or store.get_provider(flow.alias)
    grants = grants_for(config) if config is not None else None
    secret = grants.config.client_secret if grants is not None else None
    refusal = _refusal(flow, params, (flow.code_verifier, secret))
    code = _one(params, "code")
    if refusal is None and grants is not None and code is not None:
        return _exchange(store, flow, code, grants)
    status, title, exc, kind = refusal or _unregistered(flow)
    store.finish_flow(flow.state, error=FlowError.of(exc, kind))
    return _failure(status, title, exc, **where)


def _unregistered(flow: PendingFlow) -> tuple[int, str, OAuth2Error, FlowErrorKind]:
    missing = TokenExchangeError(
        f"The provider {flow.alias!r} is not registered in the store",
        hint="Run client.setup() in the notebook, then authorize again.",
    )
    return 500, "Authorization failed", missing, "exchange"


def _exchange(store: Store, flow: PendingFlow, code: str, grants: Grants) -> CallbackOutcome:
    """Exchange the code through ``grants`` (which store the token), then finish the flow."""
    where = {"alias": flow.alias, "user": flow.user}
    noted: list[dict[str, Any]] = []
    try:
        grants.exchange(flow.user, AuthorizationCode.of(flow, code), note=noted.append)
        # The kernel shows the exchange in its HTTP log, read from the finished flow.
        patiently(store, lambda: store.finish_flow(flow.state, exchange=_first(noted)))
    except StoreError as exc:
        log.warning(
            "the new token for %r at %r could not be stored: %s", flow.user, flow.alias, exc
        )
        lost = StoreError(
            f"The provider issued a token, but it could not be stored: {exc.message}",
            hint="End the process holding the token store, then authorize again.",
        )
        with contextlib.suppress(StoreError):
            store.finish_flow(flow.state, error=FlowError.of(lost, "store"), exchange=_first(noted))
        return _failure(503, "Authorization failed", lost, **where)
    except OAuth2Error as exc:
        refused = isinstance(exc, IdTokenError)
        store.finish_flow(
            flow.state,
            error=FlowError.of(exc, "id_token" if refused else "exchange"),
            exchange=_first(noted),
        )
        log.warning("code exchange for %r failed: %s", flow.alias, exc.message)
        return _failure(
            502, "Authorization refused" if refused else "Authorization failed", exc, **where
        )
    log.info("stored a new token for %r at %r", flow.user, flow.alias)
    return CallbackOutcome(
        status=200,
        title="Authorized",
        message=f"{flow.alias} is authorized for {flow.user}. You can close this tab and "
        "go back to your notebook.",
        alias=flow.alias,
        user=flow.user,
    )


def _first(noted: list[dict[str, Any]]) -> dict[str, Any] | None:
    return noted[0] if noted else None


def complete_with_registered(
    store: Store, params: Mapping[str, Sequence[str]], arrival: Arrival, timeout: float
) -> CallbackOutcome:
    """The one completion, the code exchanged with the config (and secret) a kernel registered.

    For redirects that reach a kernel (its loopback listener, a pasted address): the flow's
    provider is the one its client wrote into the store, so the exchange needs no server.
    """
    from .local import LocalGrants

    connections = Connections(timeout)

    def grants_for(config: ProviderConfig) -> Grants:
        return LocalGrants(config, lambda: store, connections=connections)

    try:
        return complete_authorization(store, params, arrival, grants_for)
    finally:
        connections.close()
