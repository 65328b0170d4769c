"""The callback logic shared by the Jupyter handler and the loopback server.

One state, used once: look up the pending flow, exchange the code with its PKCE verifier,
store the token, and report an outcome that a page can show and the kernel can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ..config import provider_identity
from ..errors import (
    AuthorizationDeniedError,
    OAuth2Error,
    StateError,
    StoreError,
    TokenExchangeError,
)
from ..protocol import (
    HttpExchange,
    HttpRequest,
    code_exchange_request,
    parse_token_response,
    utcnow,
)
from ..store import Store

__all__ = ["CallbackOutcome", "complete_authorization"]

log = logging.getLogger("chat_oauth2_nb.server")

# Longer values are not from any real provider; refusing them keeps pages and logs small.
_MAX_PARAM = 4096
# How long a token already obtained waits for a store another process holds locked.
_STORE_PATIENCE = 30.0


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
    )


def _exchange(
    request: HttpRequest,
    status: int | None,
    content: bytes,
    started: float,
    t0: float,
    failure: str | None,
) -> dict[str, Any]:
    # The kernel adds this to its HTTP log: the exchange is the request that most often
    # fails while a provider is being set up.
    elapsed = (time.perf_counter() - t0) * 1000
    return dataclasses.asdict(
        HttpExchange.of(
            request, status, content, started_at=started, elapsed_ms=elapsed, error=failure
        )
    )


def _record(exc: OAuth2Error, kind: str) -> dict[str, object]:
    return {
        "kind": kind,
        "message": exc.message,
        "error": exc.error,
        "error_description": exc.error_description,
        "status_code": exc.status_code,
        "retry_after": getattr(exc, "retry_after", None),
    }


async def complete_authorization(
    store: Store, params: Mapping[str, Sequence[str]], http: httpx.AsyncClient
) -> CallbackOutcome:
    """Finish the flow named by ``params['state']``; never raises for bad input."""
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
        # Store calls run in a worker thread: a store locked by another process must not
        # stall the Jupyter server's event loop for the busy timeout.
        flow = await asyncio.to_thread(store.consume_flow, state)
    except StateError as exc:
        return _failure(400, "Authorization failed", exc)
    except StoreError as exc:
        # Nothing was consumed: reloading this page once the store is free finishes the flow.
        return _failure(503, "Authorization is waiting for the token store", exc)
    where = {"alias": flow.alias, "user": flow.user}

    error = _one(params, "error")
    if error is not None or "error" in params:
        exc_denied = AuthorizationDeniedError(
            f"The provider did not authorize {flow.alias!r}",
            error=error or "invalid_request",
            error_description=_one(params, "error_description"),
        )
        await asyncio.to_thread(store.finish_flow, flow.state, error=_record(exc_denied, "denied"))
        return _failure(400, "Authorization was not granted", exc_denied, **where)

    code = _one(params, "code")
    if code is None:
        exc_code = TokenExchangeError(
            "The callback has no single authorization code",
            hint="Check authUri points at the provider's authorization endpoint.",
        )
        await asyncio.to_thread(store.finish_flow, flow.state, error=_record(exc_code, "exchange"))
        return _failure(400, "Authorization failed", exc_code, **where)

    config = flow.provider or await asyncio.to_thread(store.get_provider, flow.alias)
    if config is None:
        exc_cfg = TokenExchangeError(
            f"The provider {flow.alias!r} is not registered in the store",
            hint="Run client.setup() in the notebook, then authorize again.",
        )
        await asyncio.to_thread(store.finish_flow, flow.state, error=_record(exc_cfg, "exchange"))
        return _failure(500, "Authorization failed", exc_cfg, **where)

    request = code_exchange_request(
        config, code=code, redirect_uri=flow.redirect_uri, code_verifier=flow.code_verifier
    )
    what = "Exchanging the authorization code"
    started, t0 = time.time(), time.perf_counter()
    status: int | None = None
    content = b""
    failure: str | None = None
    try:
        try:
            response = await http.request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        except httpx.TimeoutException:
            failure = "timeout"
            raise TokenExchangeError(
                f"{what} failed: the token endpoint did not answer in time ({request.url})",
                hint="Check accessTokenUri and the network, then authorize again.",
            ) from None
        except httpx.HTTPError as exc:
            failure = type(exc).__name__
            raise TokenExchangeError(
                f"{what} failed: could not reach {request.url} ({type(exc).__name__})",
                hint="Check accessTokenUri and that the provider is up, then authorize again.",
            ) from None
        status, content = response.status_code, response.content
        data = parse_token_response(
            TokenExchangeError,
            what,
            response.status_code,
            response.headers,
            response.content,
            received_at=utcnow(),
            requested_scopes=flow.scopes,
            secrets=request.secrets,
        )
    except TokenExchangeError as exc:
        exchange = _exchange(request, status, content, started, t0, failure)
        await asyncio.to_thread(
            store.finish_flow, flow.state, error=_record(exc, "exchange"), exchange=exchange
        )
        log.warning("code exchange for %r failed: %s", flow.alias, exc)
        return _failure(502, "Authorization failed", exc, **where)

    exchange = _exchange(request, status, content, started, t0, None)
    try:
        # The code is used up at the provider: this token cannot be fetched again.
        # Off the event loop, and patient: a locked store must not lose this token.
        await asyncio.to_thread(
            store.patiently,
            lambda: store.put_token(
                flow.alias, flow.user, data, provider=provider_identity(config)
            ),
            _STORE_PATIENCE,
        )
        await asyncio.to_thread(
            store.patiently,
            lambda: store.finish_flow(flow.state, exchange=exchange),
            _STORE_PATIENCE,
        )
    except StoreError as exc:
        log.warning(
            "the new token for %r at %r could not be stored: %s", flow.user, flow.alias, exc
        )
        lost = StoreError(
            f"The provider issued a token, but it could not be stored: {exc.message}",
            hint="End the process holding the token store, then authorize again.",
        )
        with contextlib.suppress(StoreError):
            await asyncio.to_thread(
                store.finish_flow, flow.state, error=_record(lost, "store"), exchange=exchange
            )
        return _failure(503, "Authorization failed", lost, **where)
    log.info("stored a new token for %r at %r", flow.user, flow.alias)
    return CallbackOutcome(
        status=200,
        title="Authorized",
        message=f"{flow.alias} is authorized for {flow.user}. You can close this tab and "
        "go back to your notebook.",
        **where,
    )
