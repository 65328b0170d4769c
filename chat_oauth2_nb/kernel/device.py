"""The device authorization grant (RFC 8628) for one client: get a code, poll until it ends.

A part of the client façade. The flow is a store row like any other (its device code sits
where a PKCE verifier would, so it is sealed when the store has a key); polling is single
flight across threads and processes (a lease per flow), and the next poll's time lives in
the store, so the spacing the provider asked for holds whoever polls next.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..config import ProviderConfig, with_credentials_advice
from ..errors import (
    AuthorizationDeniedError,
    DeviceAuthorizationError,
    DeviceCodeExpiredError,
    IdTokenError,
    OAuth2Error,
    ProviderError,
    TokenExchangeError,
)
from ..oauth import (
    AuthData,
    DeviceAuthorization,
    DevicePending,
    HttpRequest,
    ProviderAnswer,
    classify_device_poll,
    device_authorization_request,
    device_code_expired_error,
    device_poll_backoff,
    device_token_request,
    parse_device_authorization,
    utcnow,
)
from ..store import FlowError, FlowErrorKind, PendingFlow, Store
from .flows import belongs_to, new_flow

if TYPE_CHECKING:
    from .authorizations import Authorizations

__all__ = ["DeviceFlows", "Send"]

log = logging.getLogger("chat_oauth2_nb")

#: Sends one request to the provider (recording it in the client's HTTP log).
Send = Callable[[HttpRequest, str, type[ProviderError]], ProviderAnswer]


class DeviceFlows:
    """Start device flows and poll them for one client."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        store: Callable[[], Store],
        send: Send,
        authorizations: Authorizations,
        save_token: Callable[[str, AuthData], object],
        timeout: float,
    ) -> None:
        self.config = config
        self._store = store
        self._send = send
        self._authorizations = authorizations
        self._save_token = save_token
        self._timeout = timeout

    def start(self, key: str, scopes: str | Iterable[str] | None) -> DeviceAuthorization:
        """Ask the provider for a device code for ``key``; record the flow; return the code."""
        wanted = self._authorizations.wanted(key, scopes)
        request = device_authorization_request(self.config, wanted)
        store = self._store()
        store.put_provider(self.config)
        answer = self._send(request, "Device authorization", DeviceAuthorizationError)
        try:
            device = parse_device_authorization(
                answer.status or 0,
                answer.headers,
                answer.content,
                received_at=utcnow(),
                secrets=request.secrets,
                client_id=request.client_id,
            )
        except DeviceAuthorizationError as exc:
            with_credentials_advice(exc, self.config)
            raise
        lifetime = max(1.0, (device.expires_at - utcnow()).total_seconds())
        flow = new_flow(
            self.config,
            user=key,
            redirect_uri="",
            scopes=wanted,
            origin="device",
            client_ref=self._authorizations.ref,
            endpoint="device",
            ttl=lifetime,
        )
        public = {
            "user_code": device.user_code,
            "verification_uri": device.verification_uri,
            "verification_uri_complete": device.verification_uri_complete,
            "interval": device.interval,
            "failures": 0,
            "next_poll_at": time.time() + device.interval,
        }
        # The flow's one secret is the device code: it goes where the PKCE verifier would.
        flow = dataclasses.replace(flow, code_verifier=device.device_code, device=public)
        store.add_flow(flow)
        self._authorizations.follow(key, flow.state)
        log.info(
            "device authorization for %r at %r: code %s", key, self.config.alias, device.user_code
        )
        return device

    def poll(self, flow: PendingFlow) -> None:
        """Poll the token endpoint for ``flow`` once, if it is due; record what happened.

        Only a flow of this client's provider: another provider's is left to its own client.
        """
        store = self._store()
        current = store.get_flow(flow.state)
        if current is None or current.status != "pending" or current.device is None:
            return
        if not belongs_to(current, self.config):
            # Another provider's device code (one alias, two providers): sent here it would
            # leak to this provider and end the other notebook's flow with its error.
            log.debug("not polling a device flow of another provider at %r", self.config.alias)
            return
        now = time.time()
        if now >= current.expires_at:
            expired = device_code_expired_error(
                expired_at=dt.datetime.fromtimestamp(current.expires_at, dt.timezone.utc)
            )
            store.finish_flow(flow.state, error=FlowError.of(expired, "device_expired"))
            return
        if now < float(current.device.get("next_poll_at", 0)):
            return
        lease, owner = f"device:{flow.state}", f"{os.getpid()}:{uuid.uuid4().hex}"
        if not store.acquire_lease(self.config.alias, lease, owner, 2 * self._timeout + 10):
            return
        try:
            self._poll_once(store, flow.state)
        finally:
            store.release_lease(self.config.alias, lease, owner)

    def _poll_once(self, store: Store, state: str) -> None:
        # Re-read under the lease: another poller may have just finished or polled.
        current = store.get_flow(state)
        if current is None or current.status != "pending" or current.device is None:
            return
        info = current.device
        if time.time() < float(info.get("next_poll_at", 0)):
            return
        outcome = self._ask(current, float(info["interval"]), int(info.get("failures", 0)))
        if isinstance(outcome, AuthData):
            outcome = self._verified(outcome)
        if isinstance(outcome, DevicePending):
            store.update_device(
                state,
                interval=outcome.interval,
                failures=outcome.failures,
                next_poll_at=time.time() + outcome.wait,
            )
        elif isinstance(outcome, AuthData):
            self._save_token(current.user, outcome)
            store.finish_flow(state)
            log.info(
                "stored a new token for %r at %r (device code)", current.user, self.config.alias
            )
        else:
            with_credentials_advice(outcome, self.config)
            kind: FlowErrorKind = (
                "id_token"
                if isinstance(outcome, IdTokenError)
                else "denied"
                if isinstance(outcome, AuthorizationDeniedError)
                else "device_expired"
                if isinstance(outcome, DeviceCodeExpiredError)
                else "exchange"
            )
            store.finish_flow(state, error=FlowError.of(outcome, kind))

    def _verified(self, data: AuthData) -> AuthData | IdTokenError:
        """``data`` with its id_token verified (Core §3.1.3.7; no nonce in RFC 8628), or why not."""
        from ..oauth.oidc import with_verified_claims

        try:
            return with_verified_claims(self.config, data, timeout=self._timeout)
        except IdTokenError as exc:
            log.warning("the device flow's id_token for %r was refused", self.config.alias)
            return exc

    def _ask(
        self, flow: PendingFlow, interval: float, failures: int
    ) -> AuthData | DevicePending | OAuth2Error:
        """One poll of the token endpoint, read as approved, pending (and how long) or ended."""
        request = device_token_request(self.config, flow.code_verifier)
        try:
            answer = self._send(request, "Polling for the device authorization", TokenExchangeError)
        except ProviderError as exc:
            return device_poll_backoff(interval, failures, exc)
        return classify_device_poll(
            answer.status or 0,
            answer.headers,
            answer.content,
            interval=interval,
            received_at=utcnow(),
            failures=failures,
            requested_scopes=flow.scopes,
            secrets=request.secrets,
            client_id=request.client_id,
        )
