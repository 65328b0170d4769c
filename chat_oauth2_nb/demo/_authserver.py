"""Authlib's authorization server wired to our HTTP layer and in-memory store.

Authlib supplies the protocol (RFC 6749 grants, RFC 7636 PKCE, RFC 7009 revocation,
RFC 7662 introspection, OpenID Connect id_tokens); this module supplies what Authlib
leaves to a web framework: request and response objects, client and token storage.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    JsonPayload,
    JsonRequest,
    OAuth2Payload,
    OAuth2Request,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from authlib.oidc.core import OpenIDCode, OpenIDToken, UserInfo
from joserfc.jwk import RSAKey

from ._models import (
    CODE_LIFETIME,
    DEVICE_CODE_GRANT_TYPE,
    AuthorizationCode,
    DemoClient,
    DemoUser,
    DeviceCredential,
    IssuedToken,
    MemoryStore,
)

__all__ = [
    "AUTHORIZE_PATH",
    "DEVICE_AUTHORIZATION_PATH",
    "DEVICE_PATH",
    "DemoAuthorizationServer",
    "DemoRequest",
    "DemoResponse",
    "Headers",
    "RawRequest",
    "google_like",
    "token_claims",
]

log = logging.getLogger("chat_oauth2_nb.demo")

AUTHORIZE_PATH = "/authorize"
DEVICE_AUTHORIZATION_PATH = "/device_authorization"
# The verification page where a person types the user code (RFC 8628 §3.3).
DEVICE_PATH = "/device"
SIGNING_ALG = "RS256"  # the one algorithm OpenID Connect requires every provider to offer
_TOKEN_KEYS = frozenset({"access_token", "refresh_token", "id_token"})


class _HideIssuedTokens(logging.Filter):
    """Masks token values in records of Authlib's grant loggers.

    Authlib logs every token response at DEBUG ("Issue token {...} to client"); a notebook
    with DEBUG logging on would print live tokens. The filter keeps the record, not them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                {k: "<hidden>" if k in _TOKEN_KEYS else v for k, v in arg.items()}
                if isinstance(arg, dict) and _TOKEN_KEYS & arg.keys()
                else arg
                for arg in record.args
            )
        return True


for _name in (
    "authlib.oauth2.rfc6749.grants.authorization_code",
    "authlib.oauth2.rfc6749.grants.refresh_token",
    "authlib.oauth2.rfc8628.device_code",
):
    logging.getLogger(_name).addFilter(_HideIssuedTokens())


class Headers(Protocol):
    """Case-insensitive header lookup (``http.client.HTTPMessage`` or a plain mapping)."""

    def get(self, name: str, /) -> str | None:
        """Return a header's value, or None."""


@dataclass(frozen=True)
class RawRequest:
    """An HTTP request as the stdlib server parsed it: the 'framework request' for Authlib."""

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes

    def form_pairs(self) -> list[tuple[str, str]]:
        """Decode an ``application/x-www-form-urlencoded`` body."""
        return parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def query_pairs(self) -> list[tuple[str, str]]:
        """Decode the query string."""
        return parse_qsl(self.query, keep_blank_values=True)


@dataclass(frozen=True)
class DemoResponse:
    """What the HTTP layer writes back."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]
    # Seconds between bytes of the body: a provider that trickles its answer.
    trickle: float = 0.0


def google_like(prefix: str, nbytes: int = 32) -> str:
    """A random credential shaped like Google's: ``1//0g…``, ``4/0A…``, with ``/ + = ~ %``.

    Real tokens, codes and client secrets carry characters that change under every
    encoding; the demo issues such values so that tutorials and tests meet them too. The
    ``%`` is followed by a non-hex letter, so a server that percent-decodes Basic
    credentials (RFC 6749 §2.3.1) reads the secret back unchanged.
    """
    body = secrets.token_urlsafe(nbytes)
    third = max(1, len(body) // 3)
    # Random at both ends, so that masks (head…tail) still tell two values apart.
    return f"{prefix}{body[:third]}+~%z=={body[third : 2 * third]}/{body[2 * third :]}"


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class DemoRequest(OAuth2Request):  # type: ignore[misc]
    """Authlib's view of a request: parameters come from the query or the form body."""

    def __init__(self, issuer: str, raw: RawRequest) -> None:
        uri = issuer + raw.path + (f"?{raw.query}" if raw.query else "")
        super().__init__(method=raw.method, uri=uri, headers=raw.headers)
        query = raw.query_pairs()
        form = raw.form_pairs() if raw.method == "POST" else []
        self._args = dict(reversed(query))  # first value wins, as in every framework
        self._form = dict(reversed(form))
        # The consent form posts back to the authorization URL: its OAuth parameters stay
        # in the query while the form body carries only the person's decision.
        from_query = raw.method == "GET" or raw.path == AUTHORIZE_PATH
        self.payload = _Payload(query if from_query else form)

    @property
    def args(self) -> dict[str, str]:
        """Query parameters (first value of each)."""
        return self._args

    @property
    def form(self) -> dict[str, str]:
        """Form body parameters (first value of each)."""
        return self._form


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, body: bytes) -> None:
        self._body = body

    @property
    def data(self) -> Any:
        return json.loads(self._body or b"{}")


def _json_body(body: Any) -> bytes:
    if isinstance(body, (dict, list)):
        return json.dumps(body).encode()
    if isinstance(body, bytes):
        return body
    return str(body or "").encode()


def token_claims(token: IssuedToken, issuer: str) -> dict[str, Any]:
    """RFC 7662 §2.2 members for an active token (``token_type`` says which kind it is)."""
    claims: dict[str, Any] = {
        "active": True,
        "scope": token.scope,
        "client_id": token.client_id,
        "username": token.grant.user.username,
        "sub": token.grant.user.username,
        "token_type": token.kind,
        "iat": token.issued_at,
        "iss": issuer,
    }
    if token.expires_at is not None:
        claims["exp"] = token.expires_at
    if token.jkt is not None:
        claims["cnf"] = {"jkt": token.jkt}
    if token.audience:
        claims["aud"] = list(token.audience)
    return claims


def _scope_audience(scope: str) -> tuple[str, ...]:
    """Entra-style scopes name their resource ("https://storage.example/.default")."""
    found = []
    for item in scope.split():
        if "://" in item:
            resource = item.rsplit("/", 1)[0]
            if resource not in found:
                found.append(resource)
    return tuple(found)


# -- grants --------------------------------------------------------------------------------

_ALL_METHODS = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = _ALL_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request: DemoRequest, client: DemoClient) -> str:
        # Authlib's own messages quote the URI, and a '"' in it would make OAuth2Error
        # raise ValueError: our messages carry no request data.
        uri = request.payload.redirect_uri
        if uri:
            if not client.check_redirect_uri(uri):
                raise InvalidRequestError(
                    "The redirect_uri is not registered for this client; the provider will "
                    "not send you back to it."
                )
            return str(uri)
        default = client.get_default_redirect_uri()
        if not default:
            raise InvalidRequestError("Missing 'redirect_uri' in request.")
        return default

    def generate_authorization_code(self) -> str:
        """A fresh code, shaped like Google's ``4/0A…`` unless the style is plain."""
        return str(self.server.new_value("4/0A", 48))

    def save_authorization_code(self, code: str, request: DemoRequest) -> None:
        data = request.payload.data
        self.server.store.add_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                user=request.user,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                nonce=data.get("nonce"),
                auth_time=int(time.time()),
                expires_at=time.time() + CODE_LIFETIME,
            )
        )

    def query_authorization_code(self, code: str, client: DemoClient) -> AuthorizationCode | None:
        store: MemoryStore = self.server.store
        record = store.codes.get(code)
        if record is None or record.client_id != client.client_id:
            return None
        if record.used:
            # RFC 6749 §4.1.2: a code used twice may have leaked; revoke what it produced.
            if record.grant is not None:
                store.revoke_grant(record.grant)
            log.warning(
                "authorization code reuse by client %s: its grant is revoked", client.client_id
            )
            raise InvalidGrantError(
                "The authorization code was already used; the tokens issued for it are now revoked."
            )
        if record.is_expired():
            raise InvalidGrantError("The authorization code has expired.")
        return record

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Kept (marked used) until it expires, so a second use can be detected.
        authorization_code.used = True

    def authenticate_user(self, authorization_code: AuthorizationCode) -> DemoUser:
        return authorization_code.user


class _ClientGrant(ClientCredentialsGrant):  # type: ignore[misc]
    """RFC 6749 §4.4: the client's own token; its subject is the client (no person)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self.request.user = DemoUser(self.request.client.client_id)


class _RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = _ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        store: MemoryStore = self.server.store
        record = store.tokens.get(refresh_token)
        if record is None or record.kind != "refresh_token":
            return None
        if not record.check_client(self.request.client):
            return None
        if record.used:
            # Reuse detection: either the client lost a race with itself or the token
            # leaked; real providers cannot tell which, so the whole grant dies.
            store.revoke_grant(record.grant)
            log.warning("refresh token reuse by client %s: its grant is revoked", record.client_id)
            raise InvalidGrantError(
                "The refresh token was already used (rotated); every token of this grant is "
                "now revoked. Authorize again."
            )
        if record.is_revoked():
            raise InvalidGrantError("The refresh token was revoked. Authorize again.")
        if record.jkt is not None and record.jkt != self.server.pending_jkt:
            # RFC 9449 §5: a bound refresh token is refreshed with a proof of its own key.
            raise InvalidGrantError("The refresh token is bound to another DPoP key.")
        return record

    def authenticate_user(self, refresh_token: IssuedToken) -> DemoUser:
        return refresh_token.grant.user

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        refresh_token.used = True


class _S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only, and mandatory for public clients already at /authorize."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: _CodeGrant, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        challenge = data.get("code_challenge")
        if not challenge:
            if grant.request.client.is_public:
                raise InvalidRequestError(
                    "PKCE is required for public clients: send code_challenge and "
                    "code_challenge_method=S256."
                )
            return
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")


# -- device authorization grant (RFC 8628) -------------------------------------------------


class _DeviceEndpoint(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    """Issues device and user codes; lifetime and interval are the provider's knobs."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = _ALL_METHODS

    @property
    def EXPIRES_IN(self) -> float:
        return _json_number(self.server.device_code_lifetime)

    @property
    def INTERVAL(self) -> float:
        return _json_number(self.server.device_interval)

    def generate_device_code(self) -> str:
        """A fresh device code, shaped like Google's ``AH-1Ng…`` unless the style is plain."""
        return str(self.server.new_value("AH-1Ng", 32))

    def get_verification_uri(self) -> str:
        return f"{self.server.issuer}{DEVICE_PATH}"

    def save_device_credential(
        self, client_id: str, scope: str | None, data: dict[str, Any]
    ) -> None:
        client: DemoClient = self.server.store.clients[client_id]
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("This client may not use the device code grant.")
        allowed = client.get_allowed_scope(scope)
        if allowed is None:
            raise InvalidScopeError()
        interval = float(data["interval"])
        self.server.store.add_device(
            DeviceCredential(
                device_code=data["device_code"],
                user_code=data["user_code"],
                client_id=client_id,
                scope=allowed,
                expires_at=time.time() + float(data["expires_in"]),
                interval=interval,
                required_interval=interval,
            )
        )


def _json_number(value: float) -> float:
    # 5.0 goes out as 5: RFC 8628 examples (and strict clients) expect whole seconds.
    return int(value) if float(value).is_integer() else value


class _DeviceGrant(DeviceCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = _ALL_METHODS

    def query_device_credential(self, device_code: str) -> DeviceCredential | None:
        credential: DeviceCredential | None = self.server.store.devices.get(device_code)
        if credential is not None and credential.used:
            raise InvalidGrantError("The device code was already used; start again.")
        return credential

    def query_user_grant(self, user_code: str) -> tuple[DemoUser | None, bool] | None:
        credential = self.request.credential or self.server.store.device_by_user_code(user_code)
        if credential is None or credential.approved is None:
            return None
        return credential.user, credential.approved

    def should_slow_down(self, credential: DeviceCredential) -> bool:
        polls = credential.polls
        if len(polls) < 2:
            return False
        required = credential.required_interval
        # Requests reach the server with some jitter: a poller that waits exactly the
        # interval must not be told to slow down.
        tolerance = min(0.5, max(0.05, required / 10))
        if polls[-1] - polls[-2] >= required - tolerance:
            return False
        # RFC 8628 §3.5: the interval grows for this and all later requests.
        credential.required_interval += self.server.device_slow_down_step
        credential.slow_downs += 1
        return True

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        response: tuple[int, dict[str, Any], list[tuple[str, str]]] = (
            super().create_token_response()
        )
        # One token per device code: a second poll after success is refused.
        self.request.credential.used = True
        return response


# -- OpenID Connect id_token ---------------------------------------------------------------

_key_lock = threading.Lock()
_key: RSAKey | None = None


def signing_key() -> RSAKey:
    """The RSA key that signs id_tokens: made on first use, shared by the process's providers.

    Generating a 2048-bit key takes tens of milliseconds; test suites start hundreds of
    providers, and a demo key needs no per-provider identity.
    """
    global _key
    with _key_lock:
        if _key is None:
            _key = RSAKey.generate_key(2048, auto_kid=True)
        return _key


class _IdTokenSigner:
    """What Authlib's OIDC extensions ask of us: key, algorithm, claims, user info."""

    def __init__(self, server: DemoAuthorizationServer) -> None:
        self._server = server

    def resolve_client_private_key(self, client: DemoClient) -> RSAKey:
        return signing_key()

    def get_client_algorithm(self, client: DemoClient) -> str:
        return SIGNING_ALG

    def get_encode_header(self, client: DemoClient) -> dict[str, str]:
        return {"alg": SIGNING_ALG, "kid": str(signing_key().kid)}

    def get_client_claims(self, client: DemoClient) -> dict[str, Any]:
        return {"iss": self._server.issuer + self._server.issuer_path, "aud": [client.client_id]}

    def generate_user_info(self, user: DemoUser, scope: str) -> Any:
        info = UserInfo(
            sub=user.username,
            name=user.username,
            preferred_username=user.username,
            email=f"{user.username}@example.com",
            email_verified=False,
        )
        return info.filter(scope)


class _OpenIDCode(_IdTokenSigner, OpenIDCode):  # type: ignore[misc]
    def __init__(self, server: DemoAuthorizationServer) -> None:
        OpenIDCode.__init__(self, require_nonce=False)
        _IdTokenSigner.__init__(self, server)

    def exists_nonce(self, nonce: str, request: DemoRequest) -> bool:
        return self._server.store.nonce_seen(request.payload.client_id, nonce)


class _OpenIDRefresh(_IdTokenSigner, OpenIDToken):  # type: ignore[misc]
    """A fresh id_token on refresh too, as Google and others do."""


# -- revocation and introspection ----------------------------------------------------------


def _require_token(request: DemoRequest) -> None:
    # RFC 7009 §2.1: "An invalid token type hint value is ignored by the authorization
    # server"; Authlib answers unsupported_token_type instead, so only the token is checked.
    if not request.form.get("token"):
        raise InvalidRequestError("Missing 'token' in request.")


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = _ALL_METHODS

    def check_params(self, request: DemoRequest, client: DemoClient) -> None:
        _require_token(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        # One table holds both kinds, so the hint is not needed to find the token.
        return cast("IssuedToken | None", self.server.store.tokens.get(token_string))

    def revoke_token(self, token: IssuedToken, request: DemoRequest) -> None:
        self.server.store.revoke_token(token)


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]

    def check_params(self, request: DemoRequest, client: DemoClient) -> None:
        _require_token(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return cast("IssuedToken | None", self.server.store.tokens.get(token_string))

    def check_permission(
        self, token: IssuedToken, client: DemoClient, request: DemoRequest
    ) -> bool:
        # Any confidential client may ask, as a resource server would.
        return True

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        return token_claims(token, self.server.issuer)


class _ClientAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 §2.2 client authentication: a JWT signed with a key the client registered."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: DemoAuthorizationServer) -> None:
        super().__init__(leeway=5)
        self._server = server

    def get_audiences(self) -> list[str]:
        return [f"{self._server.issuer}/token", self._server.issuer]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        # Each assertion is good once: a replayed one (from a log) is refused.
        store = self._server.store
        with store.lock:
            if jti in store.assertion_ids:
                return False
            store.assertion_ids.add(jti)
            return True

    def resolve_client_public_key(self, client: DemoClient) -> Any:
        if not client.jwks:
            raise InvalidClientError(description="The client registered no keys.")
        from joserfc.jwk import KeySet

        return KeySet.import_key_set(cast(Any, client.jwks))


# -- the server ----------------------------------------------------------------------------


class DemoAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's ``AuthorizationServer`` with the framework glue for the stdlib HTTP server."""

    def __init__(self, store: MemoryStore, token_lifetime: Callable[[], int]) -> None:
        super().__init__(scopes_supported=None)
        self.store = store
        self.issuer = ""  # set once the socket is bound
        #: Appended to the issuer in id_tokens (a Keycloak realm names itself in its issuer).
        self.issuer_path = ""
        self._token_lifetime = token_lifetime
        #: The key thumbprint of the token request being answered (set under the store's
        #: lock by the provider once its DPoP proof checked out), and its RFC 8707 resources.
        self.pending_jkt: str | None = None
        self.pending_resources: tuple[str, ...] = ()
        #: "google": credentials with / + = ~ % as real providers issue; "plain": urlsafe.
        self.value_style = "google"
        #: RFC 8628 knobs: device code lifetime, polling interval, slow_down increment (s).
        self.device_code_lifetime: float = 1800
        self.device_interval: float = 5
        self.device_slow_down_step: float = 5
        self.register_token_generator("default", self._generate_token)
        self.register_grant(_CodeGrant, [_S256Only(required=True), _OpenIDCode(self)])
        self.register_grant(_RefreshGrant, [_OpenIDRefresh(self)])
        self.register_grant(_DeviceGrant)
        self.register_grant(_ClientGrant)
        self.register_endpoint(_DeviceEndpoint(self))
        self.register_endpoint(_Revocation(self))
        self.register_endpoint(_Introspection(self))
        self.register_client_auth_method("private_key_jwt", _ClientAssertion(self))

    # framework glue that Authlib requires

    def get_authorization_grant(self, request: DemoRequest) -> Any:
        """Find the grant for the request's response_type (Authlib's, made robust)."""
        try:
            return super().get_authorization_grant(request)
        except ValueError:
            # Authlib quotes the response_type in its error message, and characters that
            # OAuth forbids in messages make that message raise ValueError.
            raise InvalidRequestError(
                "The response_type contains characters OAuth 2.0 does not allow."
            ) from None

    def query_client(self, client_id: str) -> DemoClient | None:
        """Look a client up by id."""
        with self.store.lock:
            return self.store.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: DemoRequest) -> None:
        """Record the tokens of a token response under their grant (new or refreshed)."""
        store = self.store
        with store.lock:
            previous: IssuedToken | None = request.refresh_token
            if previous is not None:
                grant = previous.grant
            else:
                # The grant keeps all that was consented to, even when this access token is
                # for one resource of it only (RFC 8707: the others come by refresh).
                code = request.authorization_code
                consented = code.scope if code is not None else token["scope"]
                grant = store.new_grant(request.client.client_id, request.user, consented)
                if request.authorization_code is not None:
                    request.authorization_code.grant = grant
            now = int(time.time())
            store.add_token(
                IssuedToken(
                    value=token["access_token"],
                    kind="access_token",
                    grant=grant,
                    client_id=grant.client_id,
                    scope=token["scope"],
                    issued_at=now,
                    expires_in=int(token["expires_in"]),
                    jkt=self.pending_jkt,
                    audience=self.pending_resources or _scope_audience(token["scope"]),
                )
            )
            if "refresh_token" in token:
                store.add_token(
                    IssuedToken(
                        value=token["refresh_token"],
                        kind="refresh_token",
                        grant=grant,
                        client_id=grant.client_id,
                        # RFC 6749 §6: a refresh may narrow the access token's scope, but
                        # later refreshes may ask again for anything originally granted.
                        scope=grant.scope,
                        issued_at=now,
                        expires_in=None,
                        jkt=self.pending_jkt,
                    )
                )

    def create_oauth2_request(self, request: RawRequest | DemoRequest) -> DemoRequest:
        """Wrap the stdlib request for Authlib (idempotent)."""
        if isinstance(request, DemoRequest):
            return request
        return DemoRequest(self.issuer, request)

    def create_json_request(self, request: RawRequest) -> JsonRequest:
        """Wrap a JSON request for Authlib (no endpoint here takes JSON, but the hook exists)."""
        wrapped = JsonRequest(request.method, self.issuer + request.path, request.headers)
        wrapped.payload = _JsonPayload(request.body)
        return wrapped

    def handle_response(
        self, status: int, body: Any, headers: Sequence[tuple[str, str]]
    ) -> DemoResponse:
        """Turn Authlib's (status, body, headers) into our response object."""
        return DemoResponse(int(status), _json_body(body), list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's signal hook: only noted in the debug log (never with token values)."""
        client = kwargs.get("client")
        log.debug("%s (client %s)", name, getattr(client, "client_id", None))

    # token issuance

    def new_value(self, prefix: str, nbytes: int) -> str:
        """A fresh credential in this server's :attr:`value_style`."""
        if self.value_style == "plain":
            return secrets.token_urlsafe(nbytes)
        return google_like(prefix, nbytes)

    def _generate_token(
        self,
        grant_type: str,
        client: DemoClient,
        user: DemoUser | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        allowed = client.get_allowed_scope(scope)
        if allowed is None:
            raise InvalidScopeError()
        if self.pending_resources:
            # Entra-like: one access token is for its resource's scopes only.
            allowed = " ".join(
                item
                for item in allowed.split()
                if "://" not in item or item.rsplit("/", 1)[0] in self.pending_resources
            )
        token: dict[str, Any] = {
            "access_token": self.new_value("ya29.", 32),
            "token_type": "DPoP" if self.pending_jkt else "Bearer",
            "expires_in": self._token_lifetime() if expires_in is None else expires_in,
            "scope": allowed,
        }
        if include_refresh_token:
            token["refresh_token"] = self.new_value("1//0g", 48)
        return token

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata (also served as OIDC discovery)."""
        issuer = self.issuer
        auth_methods = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}{AUTHORIZE_PATH}",
            "token_endpoint": f"{issuer}/token",
            "revocation_endpoint": f"{issuer}/revoke",
            "introspection_endpoint": f"{issuer}/introspect",
            "device_authorization_endpoint": f"{issuer}{DEVICE_AUTHORIZATION_PATH}",
            "jwks_uri": f"{issuer}/jwks.json",
            "scopes_supported": ["openid", "profile", "email"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                DEVICE_CODE_GRANT_TYPE,
                "client_credentials",
            ],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": [auth_methods[i] for i in (0, 1, 3)],
            # RFC 8414 §2: a JWT method at an endpoint needs its signing algorithms listed.
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
            "revocation_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
            "introspection_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [SIGNING_ALG],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "name",
                "preferred_username",
                "email",
                "email_verified",
            ],
        }

    def jwks(self) -> dict[str, Any]:
        """The public key that signs id_tokens."""
        key = signing_key().as_dict(private=False)
        return {"keys": [{**key, "use": "sig", "alg": SIGNING_ALG}]}
