"""The grants of whoever holds the client secret: requests to the provider, tokens in the store.

One class for every holder: a kernel with its own credentials keeps the refresh token in the
token row, which it alone reads; the Jupyter server (declared providers) and the hub's service
keep it apart (``hold_refresh_tokens=True``), where the kernels' clients never read.

Refreshes are single flight: a lock per (alias, user) inside the process and a lease row in
the shared store across processes, because providers that rotate refresh tokens revoke the
whole grant when a used one comes back.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..config import ProviderConfig, with_credentials_advice
from ..errors import (
    ConfigurationError,
    IdTokenError,
    ProviderError,
    ProviderMismatchError,
    StoreLockedError,
    TokenExchangeError,
    TokenRefreshError,
    TokenRevokeError,
)
from ..oauth import (
    AuthData,
    HttpExchange,
    HttpRequest,
    client_credentials_request,
    code_exchange_request,
    introspection_request,
    parse_error_response,
    parse_introspection,
    refresh_request,
    revoke_request,
    token_from_answer,
    transport_error,
)
from ..store import HeldTokenStore, TokenRecord
from .grants import (
    POLL,
    AuthorizationCode,
    Connections,
    Noter,
    TokenShelf,
    digest,
    grant_ended,
    is_dead,
    lease_ttl,
    nothing_stored,
    patiently,
    replaced_grant_kept,
    revocations,
    warn_if_local_only,
)
from .proofs import bind, holder_proof, key_for, send_token_request
from .resources import Target

__all__ = ["LocalGrants", "explained"]

log = logging.getLogger("chat_oauth2_nb")

_ASK_FOR_REFRESH = (
    "Authorize again; some providers only issue refresh tokens when asked "
    "(Google: authUriParams={'access_type': 'offline', 'prompt': 'consent'}; "
    "Microsoft: the offline_access scope; GitHub: only GitHub Apps with expiring "
    "user tokens, whose tokens then need no refresh while they do not expire)."
)
#: What a provider answers to revoking a token it no longer knows (Google: 400
#: invalid_token; RFC 7009 §2.2 answers 200): already revoked, so it counts as revoked.
_GONE = frozenset({"invalid_token", "invalid_grant"})
_ASK_THE_ADMINISTRATOR = (
    "Authorize again; the administrator may need to ask the provider for refresh tokens in "
    "the declaration (Google: authUriParams {'access_type': 'offline', 'prompt': 'consent'})."
)


def explained(config: ProviderConfig, exc: ProviderError) -> ProviderError:
    """``exc`` with advice that fits this client: where its secret or key came from
    (``invalid_client``), or the grant to allow (``unauthorized_client``)."""
    with_credentials_advice(exc, config)
    if exc.error == "unauthorized_client" and config.grant == "client_credentials":
        exc.with_hint("Allow the client credentials grant for this client at the provider.")
    return exc


class LocalGrants(TokenShelf):
    """Grants with the client secret at hand: exchange, refresh, revoke, introspect."""

    def __init__(
        self,
        config: ProviderConfig,
        store: Callable[[], HeldTokenStore],
        *,
        connections: Connections,
        leeway: float = 30.0,
        hold_refresh_tokens: bool = False,
    ) -> None:
        """``hold_refresh_tokens``: keep them apart from the token row (declared providers)."""
        super().__init__(config, store, leeway=leeway, hold_refresh_tokens=hold_refresh_tokens)
        self._connections = connections

    @property
    def timeout(self) -> float:
        """Seconds for each request to the provider."""
        return self._connections.timeout

    def _refresh_token(self, user: str, record: TokenRecord) -> str | None:
        if self.hold_refresh_tokens:
            return self._store().get_held_refresh_token(self.alias, user, self._identity)
        return record.data.refresh_token

    # refresh ------------------------------------------------------------------------------

    def token(self, user: str, *, leeway: float | None = None) -> TokenRecord | None:
        """The user's token, refreshed first (single flight) when it is stale.

        Stale is :meth:`AuthData.is_expired` with ``leeway`` (this grants' own by default):
        decided here, by whoever holds the refresh token. A stale token that cannot be
        refreshed comes back as it is; None when nothing is stored.
        """
        record = self.stored(user)
        fresh = record is not None and not record.data.is_expired(
            self.leeway if leeway is None else leeway
        )
        if self._config.grant == "client_credentials":
            # No person and no refresh token: the client asks for a new token itself.
            return record if fresh else self._refresh(user, record)
        if record is None or fresh:
            return record
        if self._refresh_token(user, record) is None:
            return record
        return self._refresh(user, record)

    def refresh(
        self, user: str, *, have: str | None = None, optional: bool = False
    ) -> TokenRecord | None:
        """Refresh the user's token now, joining a refresh in flight; None when nothing is stored.

        ``have`` is the digest of the caller's token: when the stored one differs, it is
        newer and comes back without a request. Without a refresh token: None with
        ``optional``, else TokenRefreshError.
        """
        record = self.stored(user)
        if record is None and self._config.grant != "client_credentials":
            return None
        if (
            record is not None
            and have is not None
            and not hmac.compare_digest(digest(record.data.token), have)
        ):
            return record  # refreshed (or re-authorized) since the caller read its copy
        if self._config.grant == "client_credentials":
            return self._refresh(user, record)
        assert record is not None
        if self._refresh_token(user, record) is None:
            if optional:
                return None
            raise self._no_refresh_token()
        return self._refresh(user, record)

    def _no_refresh_token(self) -> TokenRefreshError:
        return TokenRefreshError(
            "No refresh token is stored, so the token cannot be refreshed",
            hint=_ASK_THE_ADMINISTRATOR if self.hold_refresh_tokens else _ASK_FOR_REFRESH,
        )

    def _reread(self, user: str, seen: TokenRecord | None) -> TokenRecord | None:
        """The stored token, if it moved past ``seen`` (None: renew it)."""
        if self._config.grant == "client_credentials":
            current = self.stored(user)  # gone meanwhile: the client simply asks again
        else:
            current = self._current(user)
        if current is None or (seen is not None and current.version == seen.version):
            return None
        return current

    def _refresh(self, user: str, seen: TokenRecord | None) -> TokenRecord:
        """Renew ``user``'s token unless someone else already did: single flight.

        The invariant: a refresh token is sent to the provider at most once, and a client
        credentials token is asked for once per expiry however many processes want it.
        Whoever gets the lease re-reads the token first: if its version moved, the renewal
        already happened and the newer token is returned without a request. A failed
        renewal releases the lease and leaves the stored token as it was.
        """

        def work() -> TokenRecord:
            if self._config.grant == "client_credentials":
                return self._do_client_credentials(user)
            return self._do_refresh(user, self._current(user))

        # Someone renewed (or re-authorized) meanwhile: theirs is the newer token.
        return self._under_lease(user, lambda: self._reread(user, seen), work)

    def _under_lease(
        self,
        user: str,
        settled: Callable[[], TokenRecord | None],
        work: Callable[[], TokenRecord],
    ) -> TokenRecord:
        """``work()`` under the grant's lease, unless ``settled()`` (asked before and under it)."""
        store = self._store()
        owner = f"{os.getpid()}:{uuid.uuid4().hex}"
        with self._connections.lock(self.alias, user):
            while True:
                done = settled()
                if done is not None:
                    return done
                if store.acquire_lease(self.alias, user, owner, lease_ttl(self.timeout)):
                    break
                time.sleep(POLL)
            try:
                # Re-read under the lease: another process may have finished just before.
                done = settled()
                return done if done is not None else work()
            finally:
                store.release_lease(self.alias, user, owner)

    def _do_client_credentials(self, user: str) -> TokenRecord:
        """Ask for a token with the client's own credentials (RFC 6749 §4.4); store it."""
        scopes = self._config.default_scopes
        request = client_credentials_request(self._config, scopes=scopes)
        what = "Getting a token with the client credentials grant"
        key = key_for(self._config, None)  # no refresh token to bind: a fresh key per token
        request, answer = send_token_request(self._connections.send, request, key)
        try:
            data = token_from_answer(
                TokenRefreshError,
                what,
                request,
                answer,
                timeout=self.timeout,
                requested_scopes=scopes,
            )
        except ProviderError as exc:
            raise explained(self._config, exc) from None
        if key is not None:
            data = bind(data, key, what)
        # RFC 6749 §4.4.3: no refresh token is expected; the client asks again instead.
        data = dataclasses.replace(data, refresh_token=None)
        stored = self._write(user, data, None)
        log.info("got a client credentials token at %r", self.alias)
        return stored

    def _do_refresh(self, user: str, record: TokenRecord) -> TokenRecord:
        refresh_token = self._refresh_token(user, record)
        if refresh_token is None:  # gone from the held table since refresh() looked
            raise self._no_refresh_token()
        request = refresh_request(self._config, refresh_token=refresh_token)
        previous = dataclasses.replace(record.data, refresh_token=refresh_token)
        data = self._refreshed(user, record, request, previous)
        data = self._continued(dataclasses.replace(data, resource=record.data.resource), record)
        try:
            # The provider already rotated the refresh token: dropping its answer because
            # the store is briefly locked would lose the grant, so keep trying a while.
            stored = self._write(user, data, record.version)
        except StoreLockedError:
            raise StoreLockedError(
                f"The provider issued a new token for {user!r}, but the token store "
                f"({self._store()!r}) stayed locked by another process, so it was lost",
                hint="End the process holding the store, then authorize again: "
                "client.get_user_authorization_url().",
            ) from None
        log.info("refreshed the token for %r at %r", user, self.alias)
        return stored

    def _refreshed(
        self, user: str, record: TokenRecord, request: HttpRequest, previous: AuthData | None
    ) -> AuthData:
        """Send a refresh of ``record``'s grant and read the answer: the one reading of it.

        A grant the provider ended (``invalid_grant`` to its own refresh) is buried where it
        is found; refused for another resource, the grant may still be alive (Entra answers
        ``invalid_grant`` when a resource needs more consent), so the error is only raised.
        """
        what = "Refreshing the token"
        # RFC 9449 §5.2: a bound refresh token is refreshed with the same key.
        key = key_for(self._config, record.data)
        request, answer = send_token_request(self._connections.send, request, key)
        try:
            data = token_from_answer(
                TokenRefreshError, what, request, answer, timeout=self.timeout, previous=previous
            )
        except TokenRefreshError as exc:
            if answer.status != 400 or exc.error != "invalid_grant" or previous is None:
                # A provider that failed (5xx, network, garbage) may answer next time.
                raise explained(self._config, exc) from None
            # RFC 6749 §5.2: the refresh token is invalid, expired or revoked: the grant is
            # over (the person removed the app, the provider revoked it). Its token must
            # stop being used, here and in every process that shares the store.
            self.bury(user, record)
            raise grant_ended(user, self.alias, exc) from None
        return data if key is None else bind(data, key, what)

    # tokens for other resources (RFC 8707; Entra's multi-resource refresh) ------------------

    def token_for(self, user: str, target: Target) -> TokenRecord | None:
        """A token for ``target`` from the user's grant; None when nothing is stored.

        The grant's own token when it serves; else the one kept for that resource while it is
        fresh; else (and always for a claims challenge) a new one from the refresh token,
        under the grant's lease: a rotated refresh token goes back to the grant.
        """
        main = self.stored(user)
        if main is None:
            return None
        if target.served_by(main.data):
            return self.token(user)

        def settled() -> TokenRecord | None:
            held = self._store().get_resource_token(self.alias, user, target.key)
            return target.still_good(held, self._identity, self.leeway)

        return self._under_lease(user, settled, lambda: self._do_refresh_for(user, target))

    def _do_refresh_for(self, user: str, target: Target) -> TokenRecord:
        record = self._current(user)
        refresh_token = self._refresh_token(user, record)
        if refresh_token is None:
            raise self._no_refresh_token()
        request = target.refresh_request(self._config, refresh_token)
        data = self._refreshed(user, record, request, None)
        if data.refresh_token is not None and data.refresh_token != refresh_token:
            # Rotated: the grant keeps the new refresh token, its own access token unchanged.
            rotated = dataclasses.replace(record.data, refresh_token=data.refresh_token)
            self._write(user, rotated, record.version)
        store = self._store()
        put = store.put_resource_token
        stored = patiently(
            store, lambda: put(self.alias, user, target.key, data, provider=self._identity)
        )
        log.info("got a token for %r of %r at %r", target.key, user, self.alias)
        return stored

    def _continued(self, data: AuthData, record: TokenRecord) -> AuthData:
        """A refreshed answer whose id_token continues the grant's first one (Core §12.2).

        A new id_token is verified like the first and must name the same ``iss``, ``sub``
        and ``aud``; an IdTokenError means the answer is not stored (the refresh token it
        carries is then lost, which is right: the grant can no longer be trusted).
        """
        from ..oauth.oidc import with_verified_claims

        try:
            return with_verified_claims(
                self._config, data, previous=record.data, timeout=self.timeout
            )
        except IdTokenError:
            log.warning("a refreshed id_token for %r was refused", self.alias)
            raise

    # exchange, revoke, introspect ---------------------------------------------------------

    def exchange(
        self, user: str, code: AuthorizationCode, note: Noter | None = None
    ) -> TokenRecord:
        """Exchange ``code`` with its PKCE verifier, verify any id_token, store the token.

        ``note`` gets the redacted exchange, failed or not (the kernel's HTTP log shows it:
        the exchange is the request that most often fails while a provider is being set up).
        Raises TokenExchangeError (or IdTokenError) with the provider's words.
        """
        request = code_exchange_request(
            self._config,
            code=code.code,
            redirect_uri=code.redirect_uri,
            code_verifier=code.code_verifier,
        )
        key = key_for(self._config, None)
        request, answer = send_token_request(self._connections.send, request, key)
        if note is not None:
            note(dataclasses.asdict(HttpExchange.of(request, answer)))
        try:
            data = token_from_answer(
                TokenExchangeError,
                "Exchanging the authorization code",
                request,
                answer,
                timeout=self.timeout,
                requested_scopes=code.scopes,
            )
        except TokenExchangeError as exc:
            raise explained(self._config, exc) from None
        if key is not None:
            data = bind(data, key, "Exchanging the authorization code")
        # RFC 8707: the code exchange names the first configured resource (if any).
        data = dataclasses.replace(data, resource=next(iter(self._config.resource), ""))
        if data.id_token is not None:
            from ..oauth.oidc import verify_for_config  # joserfc loads when an id_token comes

            claims = verify_for_config(
                self._config, data.id_token, code.nonce, timeout=self.timeout
            )
            data = dataclasses.replace(data, claims=claims)
        # The code is used up at the provider: this token cannot be fetched again.
        return self.keep(user, data)

    def keep(self, user: str, data: AuthData) -> TokenRecord:
        """Store a token just issued; then revoke the grant it replaces (best effort).

        Each new authorization is a new grant at most providers: left alone, the older one
        would stay active there for as long as its refresh token lives. It is revoked only
        after the new token is safely stored, and a failure is only logged.
        """
        try:
            old = self._mine(user)
        except ProviderMismatchError:
            old = None  # another provider's token: this configuration cannot revoke it
        replaced = (
            None
            if old is None or is_dead(old.data)
            else dataclasses.replace(old.data, refresh_token=self._refresh_token(user, old))
        )
        stored = self._write(user, data, None)
        if replaced is not None and replaced.token != data.token:
            self._revoke_replaced(user, replaced, data)
        return stored

    def _revoke_replaced(self, user: str, old: AuthData, new: AuthData) -> None:
        why = replaced_grant_kept(self._config)
        if why is not None:
            log.warning(
                "the new authorization of %r at %r replaced a grant that stays active at the "
                "provider: %s",
                user,
                self.alias,
                why,
            )
            return
        fresh = {new.token, new.refresh_token}
        for token, hint in revocations(self._config, old):
            if token in fresh:
                continue  # the provider handed the same token out again
            failure = self._revoke_one(token, hint)
            if failure is not None:
                log.warning(
                    "the grant the new authorization of %r at %r replaced could not be revoked "
                    "there: %s",
                    user,
                    self.alias,
                    failure.message,
                )
                return
        log.info("revoked the grant the new authorization of %r at %r replaced", user, self.alias)

    def _revoke_one(self, token: str, hint: str | None) -> ProviderError | None:
        """Revoke one token; None once revoked (or already invalid there), else the failure."""
        request = revoke_request(self._config, token=token, token_type_hint=hint)
        what = "Revoking the token"
        answer = self._connections.send(request)
        if answer.failure is not None:
            return transport_error(
                TokenRevokeError, what, request.url, answer.failure, self.timeout
            )
        status = answer.status or 0
        if 200 <= status < 300:
            return None
        failure = parse_error_response(
            TokenRevokeError,
            what,
            status,
            answer.headers,
            answer.content,
            request.secrets,
            request.client_id,
        )
        gone = status == 400 and failure.error in _GONE
        return None if gone else with_credentials_advice(failure, self._config)

    def revoke(self, user: str) -> bool:
        """Revoke the user's tokens at the provider, then delete them; False when none is stored.

        Where the kit cannot revoke (no ``revokeTokenUri``; GitHub without the client secret)
        the token is only deleted here (and the log says where the person can end the app's
        access). A token the provider says is already invalid counts as revoked; what is
        revoked is deleted here even when another token fails, and the TokenRevokeError then
        says what remains.
        """
        record = self._mine(user)
        if record is None:
            return False
        if not is_dead(record.data) and not warn_if_local_only(self._config):
            held = dataclasses.replace(record.data, refresh_token=self._refresh_token(user, record))
            failures = [
                (hint, failure)
                for token, hint in revocations(self._config, held)
                if (failure := self._revoke_one(token, hint)) is not None
            ]
            if failures:
                self._keep_what_remains(user, record, held, failures)
        self._store().delete_token(self.alias, user)
        log.info("revoked the token for %r at %r", user, self.alias)
        return True

    def _keep_what_remains(
        self,
        user: str,
        record: TokenRecord,
        held: AuthData,
        failures: list[tuple[str | None, ProviderError]],
    ) -> None:
        """Raise the first failure; when only the access token remains, keep only that."""
        hints = {hint for hint, _ in failures}
        _, first = failures[0]
        if hints != {"access_token"} or held.refresh_token is None:
            raise first  # the grant itself (its refresh token) is still alive: keep it all
        # The refresh token is revoked (so the grant is), but the access token may live on
        # until it expires: keep it alone, so a second call can end it too.
        self._write(user, dataclasses.replace(record.data, refresh_token=None), record.version)
        raise TokenRevokeError(
            f"The refresh token of {user!r} was revoked at {self.alias!r}, but the access token "
            f"could not be: {first.message}",
            error=first.error,
            error_description=first.error_description,
            status_code=first.status_code,
            hint="The access token stays stored (without its refresh token) and valid at the "
            "provider until it expires; call revoke_user_access_token() again to end it.",
        )

    def introspect(self, user: str) -> dict[str, Any]:
        """What the provider says of the user's access token (RFC 7662), no token in it."""
        if self._config.introspection_uri is None:
            raise ConfigurationError(
                "introspectionUri",
                "is missing, so the provider cannot be asked about a token",
                "Put the provider's RFC 7662 introspection endpoint there "
                "(discover_config() fills it when the provider advertises one).",
            )
        record = self.stored(user)
        if record is None:
            raise nothing_stored(user, self.alias)
        request = introspection_request(self._config, token=record.data.token)
        answer = self._connections.call(request, "Introspecting the token", ProviderError)
        try:
            return parse_introspection(
                ProviderError,
                answer.status or 0,
                answer.headers,
                answer.content,
                request.secrets,
                request.client_id,
            )
        except ProviderError as exc:
            raise explained(self._config, exc) from None

    def needs_secret(self, what: str) -> None:
        """Nothing to refuse: the secret is here."""

    def proof(self, user: str, request: Mapping[str, object]) -> str:
        """A DPoP proof with the key held here, for a caller that has the user's token."""
        return holder_proof(self.stored(user), user, self.alias, request)
