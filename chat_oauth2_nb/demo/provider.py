"""``DemoProvider``: a real OAuth2 authorization server on 127.0.0.1, for tutorials and tests."""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urljoin, urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error

from ._authserver import (
    AUTHORIZE_PATH,
    DEVICE_AUTHORIZATION_PATH,
    DEVICE_PATH,
    DemoAuthorizationServer,
    DemoRequest,
    DemoResponse,
    RawRequest,
    token_claims,
)
from ._dpop import DPoPProblem, DPoPVerifier
from ._http import DemoHTTPServer
from ._models import (
    AUTH_METHODS,
    DEVICE_CODE_GRANT_TYPE,
    DemoClient,
    DemoUser,
    DeviceCredential,
    MemoryStore,
)
from ._pages import (
    HTML_HEADERS,
    consent_page,
    device_consent_page,
    device_done_page,
    device_entry_page,
    error_page,
    index_page,
)
from ._quirks import KEYCLOAK_REALM, Quirks

if TYPE_CHECKING:
    import httpx

__all__ = ["FAULT_ENDPOINTS", "DemoProvider", "start_demo_provider"]

log = logging.getLogger("chat_oauth2_nb.demo")

FAULT_ENDPOINTS = frozenset(
    {"token", "revoke", "introspect", "authorize", "metadata", "api", "device_authorization"}
)
_PATH_ENDPOINTS = {
    AUTHORIZE_PATH: "authorize",
    DEVICE_AUTHORIZATION_PATH: "device_authorization",
    "/token": "token",
    "/revoke": "revoke",
    "/introspect": "introspect",
    "/.well-known/oauth-authorization-server": "metadata",
    "/.well-known/openid-configuration": "metadata",
    "/api/me": "api",
}
_JSON_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_MAX_USERNAME = 200


@dataclass
class _Fault:
    status: int
    body: bytes
    headers: list[tuple[str, str]]
    delay: float
    times: int
    trickle: float = 0.0


def _json(
    status: int, body: Mapping[str, Any], headers: list[tuple[str, str]] | None = None
) -> DemoResponse:
    return DemoResponse(status, json.dumps(body).encode(), [*_JSON_HEADERS, *(headers or [])])


def _as_form(response: DemoResponse) -> DemoResponse:
    """The same token answer, form-encoded (GitHub's default without Accept: JSON)."""
    data = json.loads(response.body or b"{}")
    pairs = [
        (key, value if isinstance(value, str) else json.dumps(value)) for key, value in data.items()
    ]
    headers = [(k, v) for k, v in response.headers if k.lower() != "content-type"]
    headers.append(("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"))
    return DemoResponse(response.status, urlencode(pairs).encode(), headers)


def _html(status: int, text: str) -> DemoResponse:
    return DemoResponse(status, text.encode(), list(HTML_HEADERS))


def _check_loopback_host(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"The demo provider only listens on a loopback address, not {host!r}: "
            "use '127.0.0.1' (or '::1', 'localhost')."
        )


def _check_seconds(name: str, seconds: float, *, positive: bool = False) -> float:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not seconds >= 0
        or seconds == float("inf")
        or (positive and seconds == 0)
    ):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, not {seconds!r}")
    return seconds


def _check_lifetime(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise ValueError(f"token lifetime must be a whole number of seconds >= 0, not {seconds!r}")
    return seconds


def _with_iss(response: DemoResponse, iss: str) -> DemoResponse:
    # RFC 9207 §2: the authorization response (success or error) names its issuer.
    headers = []
    for name, value in response.headers:
        if name.lower() == "location":
            value += ("&" if "?" in value else "?") + urlencode({"iss": iss})
        headers.append((name, value))
    return DemoResponse(response.status, response.body, headers)


class DemoProvider:
    """A local OAuth2 authorization server (Authlib's protocol, stdlib HTTP, memory storage).

    It offers the authorization code grant with PKCE (S256), the device authorization grant
    (RFC 8628: ``/device_authorization``, a verification page at ``/device``, ``slow_down``
    for devices that poll too fast), refresh tokens with rotation and reuse detection, RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata,
    OpenID Connect id_tokens (RS256) when the scope has ``openid``, and a protected
    resource at ``/api/me``. A default confidential client is registered at construction.

    Example::

        with DemoProvider() as provider:
            config = provider.config(alias="demo")
            ...
    """

    def __init__(
        self,
        port: int = 0,
        token_lifetime: int = 3600,
        host: str = "127.0.0.1",
        value_style: str = "google",
        device_code_lifetime: float = 1800,
        device_interval: float = 5,
        quirks: str | None = None,
    ) -> None:
        if value_style not in ("google", "plain"):
            raise ValueError(f"value_style must be 'google' or 'plain', not {value_style!r}")
        _check_loopback_host(host)
        self._host = host
        self._port = port
        self._token_lifetime = _check_lifetime(token_lifetime)
        self._store = MemoryStore()
        self._auth = DemoAuthorizationServer(self._store, lambda: self._token_lifetime)
        self._auth.value_style = value_style
        #: A real provider's documented behaviour ("google", "github", "microsoft", "gitlab",
        #: "keycloak", "rocketchat"), see :mod:`chat_oauth2_nb.demo._quirks`; None: the RFCs.
        self.quirks = Quirks(quirks, self._store)
        if quirks == "keycloak":
            self._auth.issuer_path = f"/realms/{KEYCLOAK_REALM}"
        self.device_code_lifetime = device_code_lifetime
        self.device_interval = device_interval
        self._faults: dict[str, deque[_Fault]] = {}
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()
        self._httpd: DemoHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: Requests received at /token, by ``grant_type`` (counted on arrival, faults included).
        self.token_requests: Counter[str] = Counter()
        #: Seconds /token waits before it answers (keeps requests in flight for concurrency tests).
        self.token_delay: float = 0.0
        #: How /token answers: "json", or "form" (application/x-www-form-urlencoded, as
        #: GitHub does unless asked for JSON).
        self.answer_format: str = "json"
        #: Add RFC 9207 ``iss`` to authorization redirects (and advertise it in the metadata).
        self.send_iss: bool = False
        #: Send this ``iss`` instead of the real issuer (a mix-up for tests); implies send_iss.
        self.wrong_iss: str | None = None
        #: How /device_authorization answers: "rfc8628", or "google" (``verification_url``
        #: and no ``verification_uri_complete``, as Google's device endpoint does).
        self.device_style: str = "rfc8628"
        #: Seconds added to the Date header of every answer (a provider whose clock is off).
        self.date_offset: float = 0.0
        #: Serve RFC 8414 / OpenID metadata (False: both well-known paths answer 404).
        self.publish_metadata: bool = True
        #: RFC 9449: DPoP proofs checked, the jti seen, nonces (``dpop.require_nonce``).
        self.dpop = DPoPVerifier()
        #: Metadata fields to change (a value of None removes the field): metadata that
        #: disagrees with the config handed out by :meth:`config`.
        self.metadata_overrides: dict[str, Any] = {}
        client_id, client_secret = self.register_client(
            client_id=f"demo-{secrets.token_hex(6)}",
            auth_method="client_secret_basic",
            scopes=None,
            client_name="chat_oauth2_nb demo client",
        )
        # Real providers let a client pick either way of sending its secret; so does this one.
        self._store.clients[client_id].auth_methods = frozenset(
            {"client_secret_basic", "client_secret_post"}
        )
        self.client_id: str = client_id
        self.client_secret: str = client_secret or ""

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> DemoProvider:
        """Bind the socket and serve in a daemon thread (no-op when already serving)."""
        with self._lifecycle:
            if self._httpd is not None:
                return self
            httpd = DemoHTTPServer(
                self._host,
                self._port,
                self._handle,
                self._stopping.wait,
                date_offset=lambda: self.date_offset,
            )
            # Keep the port: a restart after stop() serves the same issuer again.
            self._port = httpd.port
            self._auth.issuer = self.issuer
            self._stopping.clear()
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"chat-oauth2-demo-provider:{self._port}",
                daemon=True,
            )
            thread.start()
            self._httpd, self._thread = httpd, thread
        log.info("demo OAuth2 provider serving at %s", self.issuer)
        return self

    def stop(self) -> None:
        """Stop serving, join the thread and free the port (no-op when not serving)."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
            if httpd is None or thread is None:
                return
            # Wakes handlers sleeping on a fault delay: they drop their connection unanswered.
            self._stopping.set()
            httpd.shutdown()
            thread.join()
            httpd.server_close()
        log.info("demo OAuth2 provider at %s stopped", self.issuer)

    @property
    def running(self) -> bool:
        """Whether the provider is serving."""
        return self._httpd is not None

    def __enter__(self) -> DemoProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.issuer if self._port else f"{self._host}:<not started>"
        return f"<DemoProvider {where} running={self.running} client_id={self.client_id!r}>"

    # -- addresses and configuration -----------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer URL, e.g. ``http://127.0.0.1:8765`` (known once the socket is bound)."""
        if not self._port:
            raise RuntimeError("The demo provider has no port yet: call start() first.")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def api_url(self) -> str:
        """The protected resource: Bearer token in, JSON about its user out."""
        return f"{self.issuer}/api/me"

    @property
    def metadata_url(self) -> str:
        """The RFC 8414 metadata document."""
        return f"{self.issuer}/.well-known/oauth-authorization-server"

    def config(
        self, alias: str = "demo", scopes: tuple[str, ...] | list[str] = ("profile",)
    ) -> dict[str, Any]:
        """Return a provider config with the seed's keys (``authUri``, ``accessTokenUri`` ...)."""
        issuer = self.issuer
        return {
            "alias": alias,
            "authUri": f"{issuer}{AUTHORIZE_PATH}",
            "accessTokenUri": f"{issuer}/token",
            "refreshTokenUri": f"{issuer}/token",
            "revokeTokenUri": f"{issuer}/revoke",
            "introspectionUri": f"{issuer}/introspect",
            "deviceAuthorizationUri": f"{issuer}{DEVICE_AUTHORIZATION_PATH}",
            # Who signs its id_tokens, and with which keys: the client verifies them.
            "issuer": issuer,
            "jwksUri": f"{issuer}/jwks.json",
            "defaultScopes": list(scopes),
        }

    def register_client(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        auth_method: str = "client_secret_basic",
        redirect_uris: list[str] | tuple[str, ...] | None = None,
        scopes: str | list[str] | tuple[str, ...] | None = "openid profile email",
        client_name: str | None = None,
        jwks: dict[str, Any] | None = None,
    ) -> tuple[str, str | None]:
        """Register a client and return ``(client_id, client_secret)``.

        Args:
            client_id: Chosen id, or None for a random one.
            client_secret: Chosen secret, or None for a random one (must stay None for
                ``auth_method="none"``).
            auth_method: ``client_secret_basic``, ``client_secret_post`` (the only method
                this client may use at the token endpoint) or ``none`` (a public client:
                no secret, PKCE required).
            redirect_uris: Exact redirect URIs; None allows any http(s) URI on
                127.0.0.1, localhost or [::1] (any port, any path).
            scopes: Scopes the client may ask for; None allows any scope.
            client_name: Name shown on the consent page (default: the client id).
            jwks: With ``auth_method="private_key_jwt"``: the client's public keys (a JWK
                set); the client has no secret and signs assertions (RFC 7523).

        Returns:
            The client id and its secret (None for a public client).

        Raises:
            ValueError: for an unknown method, a taken id or a secret for a public client.
        """
        if auth_method not in AUTH_METHODS:
            raise ValueError(
                f"auth_method must be one of {sorted(AUTH_METHODS)}, not {auth_method!r}"
            )
        if (auth_method == "private_key_jwt") != (jwks is not None):
            raise ValueError("jwks= goes with auth_method='private_key_jwt', and only there.")
        if auth_method in ("none", "private_key_jwt"):
            if client_secret is not None:
                raise ValueError(f"A client with auth_method={auth_method!r} has no client_secret.")
            secret = None
        else:
            secret = (
                client_secret if client_secret is not None else self._auth.new_value("GOCSPX-", 24)
            )
            if not secret:
                raise ValueError("client_secret must not be empty.")
        allowed = scopes.split() if isinstance(scopes, str) else scopes
        cid = client_id if client_id is not None else f"client-{secrets.token_hex(6)}"
        if not cid:
            raise ValueError("client_id must not be empty.")
        client = DemoClient(
            client_id=cid,
            client_secret=secret,
            auth_methods=frozenset({auth_method}),
            redirect_uris=tuple(redirect_uris) if redirect_uris is not None else None,
            scopes=tuple(allowed) if allowed is not None else None,
            client_name=client_name if client_name is not None else cid,
            jwks=jwks,
        )
        with self._store.lock:
            if cid in self._store.clients:
                raise ValueError(f"client_id {cid!r} is already registered.")
            self._store.clients[cid] = client
        return cid, secret

    # -- knobs for tests -----------------------------------------------------------------

    @property
    def device_code_lifetime(self) -> float:
        """Seconds a device code and its user code live (``expires_in``; Authlib's default 1800)."""
        return float(self._auth.device_code_lifetime)

    @device_code_lifetime.setter
    def device_code_lifetime(self, seconds: float) -> None:
        self._auth.device_code_lifetime = _check_seconds(
            "device_code_lifetime", seconds, positive=True
        )

    @property
    def device_interval(self) -> float:
        """Seconds a device must wait between polls (``interval``); faster polls get slow_down."""
        return float(self._auth.device_interval)

    @device_interval.setter
    def device_interval(self, seconds: float) -> None:
        self._auth.device_interval = _check_seconds("device_interval", seconds)

    @property
    def device_slow_down_step(self) -> float:
        """Seconds added to a device's required interval at each slow_down (RFC 8628: 5)."""
        return float(self._auth.device_slow_down_step)

    @device_slow_down_step.setter
    def device_slow_down_step(self, seconds: float) -> None:
        self._auth.device_slow_down_step = _check_seconds("device_slow_down_step", seconds)

    @property
    def device_polls(self) -> dict[str, list[float]]:
        """``time.monotonic()`` of every token poll, by user code (faults included)."""
        with self._store.lock:
            return {d.user_code: list(d.polls) for d in self._store.devices.values()}

    @property
    def device_slow_downs(self) -> dict[str, int]:
        """How many slow_down answers each user code's device got."""
        with self._store.lock:
            return {d.user_code: d.slow_downs for d in self._store.devices.values()}

    def set_token_lifetime(self, seconds: int) -> None:
        """Set ``expires_in`` for access tokens issued from now on."""
        self._token_lifetime = _check_lifetime(seconds)

    def inject_fault(
        self,
        endpoint: str,
        *,
        status: int = 500,
        body: str | bytes = "",
        content_type: str = "text/html",
        delay: float = 0.0,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        trickle: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests to ``endpoint`` with this raw response instead.

        ``endpoint`` is one of ``token``, ``revoke``, ``introspect``, ``authorize``,
        ``metadata``, ``api`` or ``device_authorization``. The answer comes after ``delay`` seconds, which may exceed
        a client's timeout to simulate one; with ``trickle``, its body then comes one byte
        every ``trickle`` seconds. Faults queue up in the order they are injected.
        """
        if endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"endpoint must be one of {sorted(FAULT_ENDPOINTS)}, not {endpoint!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        if delay < 0 or trickle < 0:
            raise ValueError("delay and trickle must be >= 0")
        raw_body = body.encode() if isinstance(body, str) else bytes(body)
        fault_headers = [("Content-Type", content_type), *(headers or {}).items()]
        with self._store.lock:
            self._faults.setdefault(endpoint, deque()).append(
                _Fault(status, raw_body, fault_headers, delay, times, trickle)
            )

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 view of a token, in process: ``{"active": False}`` unless it is usable."""
        with self._store.lock:
            record = self._store.tokens.get(token)
            if record is None or not record.is_active():
                return {"active": False}
            return token_claims(record, self._auth.issuer)

    def grants_active(self, username: str | None = None) -> int:
        """Number of grants that are not revoked (of ``username`` only, when given)."""
        if username is None:
            return self._store.active_grants()
        with self._store.lock:
            return sum(
                not g.revoked and g.user.username == username for g in self._store.grants.values()
            )

    def remove_app(self, username: str = "demo-user", client_id: str | None = None) -> int:
        """Do what a person does on the provider's "connected apps" page: end every grant.

        Every grant ``username`` gave ``client_id`` (default: the demo client) is revoked, so
        its refresh tokens answer ``invalid_grant`` and its access tokens 401. Returns how
        many grants were active.
        """
        wanted = client_id or self.client_id
        with self._store.lock:
            grants = [
                g
                for g in self._store.grants.values()
                if not g.revoked and g.client_id == wanted and g.user.username == username
            ]
            for grant in grants:
                self._store.revoke_grant(grant)
        return len(grants)

    # -- the person at the browser -------------------------------------------------------

    def approve(
        self,
        authorization_url: str,
        *,
        deny: bool = False,
        username: str | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        follow_redirect: bool = True,
        timeout: float = 10,
    ) -> httpx.Response:
        """Do what a person in a browser does: open the page, click Approve (or Deny).

        Args:
            authorization_url: The client's authorization URL (must point at this provider).
            deny: Click Deny instead of Approve.
            username: Type this name instead of the prefilled ``demo-user``.
            headers: Headers for the request to the client's callback only.
            cookies: Cookies for the request to the client's callback only.
            follow_redirect: Request the redirect target (the client's callback) and return
                its response; when False, return the provider's redirect itself.
            timeout: Seconds per request.

        Returns:
            The callback's response; or the provider's 302 (``follow_redirect=False``); or
            the provider's page when it shows an error instead of a consent form.
        """
        import httpx

        # The client's origin (start link, callback) gets the caller's headers and cookies and
        # keeps the cookies it sets, as a browser does; the provider gets none of them.
        client_side = httpx.Client(
            timeout=timeout,
            trust_env=False,
            headers=dict(headers or {}),
            cookies=dict(cookies or {}),
        )
        with client_side:
            if not self._is_authorization_url(authorization_url):
                start = client_side.get(authorization_url)
                target = start.headers.get("Location", "")
                if not start.is_redirect or not self._is_authorization_url(target):
                    raise ValueError(
                        f"Neither an authorization URL of this provider ({self.issuer}) nor a "
                        f"start link that redirects to one (it answered {start.status_code})."
                    )
                authorization_url = target
            answer = self._consent(authorization_url, deny, username, timeout)
            if not isinstance(answer, httpx.Response) or not follow_redirect:
                return answer
            if not answer.is_redirect:
                return answer
            location = urljoin(str(answer.url), answer.headers["Location"])
            return client_side.get(location)

    def _is_authorization_url(self, url: str) -> bool:
        # The quirk profiles serve the authorization endpoint at the provider's own path too.
        if not url.startswith(self.issuer + "/"):
            return False
        path = urlsplit(url).path
        return self.quirks.rewrite_path(path) == AUTHORIZE_PATH

    def approve_device(
        self,
        user_code: str,
        *,
        deny: bool = False,
        username: str | None = None,
        timeout: float = 10,
    ) -> httpx.Response:
        """Do what a person does with a device code: open the verification page, type the
        code, click Approve (or Deny).

        Args:
            user_code: The code the notebook shows (any case; dashes and spaces optional).
            deny: Click Deny instead of Approve.
            username: Type this name instead of the prefilled ``demo-user``.
            timeout: Seconds per request.

        Returns:
            The page shown after the answer (200); or the verification page with its error
            (400) when the code is unknown, expired or already answered.
        """
        import httpx

        with httpx.Client(timeout=timeout, trust_env=False) as http:
            page = http.get(f"{self.issuer}{DEVICE_PATH}", params={"user_code": user_code})
            form = _ConsentForm.parse(page.text) if page.status_code == 200 else None
            if form is None:
                return page
            fields = dict(form.fields)
            if username is not None:
                fields["username"] = username
            fields["decision"] = "deny" if deny else "approve"
            return http.post(urljoin(str(page.url), form.action), data=fields)

    def _consent(
        self, authorization_url: str, deny: bool, username: str | None, timeout: float
    ) -> httpx.Response:
        import httpx

        with httpx.Client(timeout=timeout, trust_env=False) as http:
            page = http.get(authorization_url)
            if page.is_redirect:  # an error the provider redirected straight away
                answer = page
            else:
                form = _ConsentForm.parse(page.text) if page.status_code == 200 else None
                if form is None:
                    return page
                fields = dict(form.fields)
                if username is not None:
                    fields["username"] = username
                fields["decision"] = "deny" if deny else "approve"
                answer = http.post(urljoin(str(page.url), form.action), data=fields)
        return answer

    # -- request handling (called on the server's handler threads) -----------------------

    def _handle(self, raw: RawRequest) -> DemoResponse | None:
        raw = self.quirks.rewrite(raw)
        endpoint = _PATH_ENDPOINTS.get(raw.path)
        if endpoint == "token" and raw.method == "POST":
            form = dict(reversed(raw.form_pairs()))
            with self._store.lock:
                self.token_requests[form.get("grant_type", "")] += 1
                if form.get("grant_type") == DEVICE_CODE_GRANT_TYPE:
                    device = self._store.devices.get(form.get("device_code", ""))
                    if device is not None:
                        device.polls.append(time.monotonic())
        if endpoint is not None:
            fault = self._take_fault(endpoint)
            if fault is not None:
                if fault.delay and self._stopping.wait(fault.delay):
                    return None
                return DemoResponse(fault.status, fault.body, list(fault.headers), fault.trickle)
        special = self.quirks.route(raw)
        if special is not None:
            return special(raw)
        route = self._routes.get((raw.method, raw.path))
        if route is not None:
            return route(self, raw)
        if any(path == raw.path for _, path in self._routes):
            return _json(
                405,
                {
                    "error": "invalid_request",
                    "error_description": f"{raw.method} is not allowed here.",
                },
            )
        return _json(404, {"error": "not_found", "error_description": "No such endpoint."})

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._store.lock:
            queue = self._faults.get(endpoint)
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
            return fault

    def _authorize_get(self, raw: RawRequest) -> DemoResponse:
        with self._store.lock:
            try:
                grant = self._auth.get_consent_grant(raw, end_user=None)
            except OAuth2Error as error:
                return self._authorization_error(raw, error)
            ticket = self._store.new_ticket(raw.query)
            client: DemoClient = grant.request.client
            page = consent_page(
                client_name=client.client_name,
                client_id=client.client_id,
                scopes=(grant.request.scope or "").split(),
                redirect_uri=grant.redirect_uri,
                action=f"{AUTHORIZE_PATH}?{raw.query}",
                ticket=ticket,
            )
        return _html(200, page)

    def _authorize_post(self, raw: RawRequest) -> DemoResponse:
        form = dict(reversed(raw.form_pairs()))
        decision = form.get("decision")
        username = form.get("username", "").strip() or "demo-user"
        if decision not in ("approve", "deny"):
            return _html(
                400,
                error_page(
                    error="invalid_request",
                    description="The consent form must say approve or deny.",
                    hint="Go back to the application and start the authorization again.",
                ),
            )
        if len(username) > _MAX_USERNAME:
            return _html(
                400,
                error_page(
                    error="invalid_request",
                    description="The user name is too long.",
                    hint="Go back and type a shorter name.",
                ),
            )
        with self._store.lock:
            if not self._store.take_ticket(form.get("consent_ticket", ""), raw.query):
                return _html(
                    400,
                    error_page(
                        error="invalid_request",
                        description="This consent form expired or was already answered.",
                        hint="Go back to the application and start the authorization again.",
                    ),
                )
            user = DemoUser(username)
            try:
                grant = self._auth.get_consent_grant(raw, end_user=user)
            except OAuth2Error as error:
                return self._authorization_error(raw, error)
            response: DemoResponse = self._auth.create_authorization_response(
                grant.request, grant_user=user if decision == "approve" else None, grant=grant
            )
        if decision == "approve":
            self.quirks.authorized(raw, response)
        if self.send_iss or self.wrong_iss:
            response = _with_iss(response, self.wrong_iss or self.issuer)
        log.info(
            "user %s %s client %s",
            username,
            "approved" if decision == "approve" else "denied",
            grant.request.client.client_id,
        )
        return response

    def _authorization_error(self, raw: RawRequest, error: OAuth2Error) -> DemoResponse:
        if error.redirect_uri:
            # The client and its redirect URI are known good: RFC 6749 §4.1.2.1 redirects.
            request: DemoRequest = self._auth.create_oauth2_request(raw)
            response: DemoResponse = self._auth.handle_error_response(request, error)
            return response
        # Unknown client or bad redirect URI: tell the person, never redirect.
        return _html(
            400,
            error_page(
                error=str(error.error),
                description=str(error.get_error_description() or ""),
                hint="The application that sent you here is misconfigured; tell its developer. "
                "You were not sent back to it, as OAuth 2.0 requires in this case.",
            ),
        )

    def _token(self, raw: RawRequest) -> DemoResponse | None:
        content_type = raw.headers.get("Content-Type") or ""
        if raw.body and not content_type.startswith("application/x-www-form-urlencoded"):
            return _json(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Send application/x-www-form-urlencoded parameters.",
                },
                [("Pragma", "no-cache")],
            )
        if self.token_delay > 0 and self._stopping.wait(self.token_delay):
            return None
        jkt: str | None = None
        proof = raw.headers.get("DPoP")
        if proof is not None:
            try:
                jkt = self.dpop.check(proof, "POST", f"{self.issuer}/token")
            except DPoPProblem as problem:
                return self._dpop_refusal(400, problem)
        resources = tuple(value for name, value in raw.form_pairs() if name == "resource")
        with self._store.lock:
            self._auth.pending_jkt, self._auth.pending_resources = jkt, resources
            try:
                response: DemoResponse = self._auth.create_token_response(raw)
            finally:
                self._auth.pending_jkt, self._auth.pending_resources = None, ()
        if jkt is not None:
            response.headers.append(("DPoP-Nonce", self.dpop.nonce))
        response = self.quirks.token_answer(raw, response)
        if self.answer_format == "form":
            return _as_form(response)
        return response

    def _device_authorization(self, raw: RawRequest) -> DemoResponse:
        with self._store.lock:
            response: DemoResponse = self._auth.create_endpoint_response(
                "device_authorization", raw
            )
        if self.device_style == "google" and response.status == 200:
            data = json.loads(response.body)
            data["verification_url"] = data.pop("verification_uri")
            data.pop("verification_uri_complete", None)
            response = DemoResponse(200, json.dumps(data).encode(), list(_JSON_HEADERS))
        return response

    def _device_page(self, raw: RawRequest) -> DemoResponse:
        typed = dict(reversed(raw.query_pairs())).get("user_code", "")[:64]
        if not typed.strip():
            return _html(200, device_entry_page(action=DEVICE_PATH))
        with self._store.lock:
            device = self._store.device_by_user_code(typed)
            problem = _device_problem(device)
            if device is None or problem is not None:
                page = device_entry_page(action=DEVICE_PATH, user_code=typed, error=problem)
                return _html(400, page)
            client = self._store.clients[device.client_id]
            ticket = self._store.new_ticket(_device_ticket_key(device))
            page = device_consent_page(
                client_name=client.client_name,
                client_id=client.client_id,
                scopes=device.scope.split(),
                user_code=device.user_code,
                action=DEVICE_PATH,
                ticket=ticket,
            )
        return _html(200, page)

    def _device_answer(self, raw: RawRequest) -> DemoResponse:
        form = dict(reversed(raw.form_pairs()))
        decision = form.get("decision")
        username = form.get("username", "").strip() or "demo-user"
        if decision not in ("approve", "deny") or len(username) > _MAX_USERNAME:
            return _html(
                400,
                error_page(
                    error="invalid_request",
                    description="The form must say approve or deny, with a short user name.",
                    hint="Go back, check the name, and click Approve or Deny.",
                ),
            )
        with self._store.lock:
            device = self._store.device_by_user_code(form.get("user_code", "")[:64])
            problem = _device_problem(device)
            if device is None or problem is not None:
                page = device_entry_page(action=DEVICE_PATH, error=problem)
                return _html(400, page)
            if not self._store.take_ticket(
                form.get("consent_ticket", ""), _device_ticket_key(device)
            ):
                return _html(
                    400,
                    error_page(
                        error="invalid_request",
                        description="This form expired or was already answered.",
                        hint="Open the verification page again and enter the code.",
                    ),
                )
            device.approved = decision == "approve"
            device.user = DemoUser(username)
            client_name = self._store.clients[device.client_id].client_name
        log.info(
            "user %s %s device code %s of client %s",
            username,
            "approved" if device.approved else "denied",
            device.user_code,
            device.client_id,
        )
        return _html(200, device_done_page(client_name=client_name, approved=device.approved))

    def _revoke(self, raw: RawRequest) -> DemoResponse:
        with self._store.lock:
            response: DemoResponse = self._auth.create_endpoint_response("revocation", raw)
        return response

    def _introspect(self, raw: RawRequest) -> DemoResponse:
        with self._store.lock:
            response: DemoResponse = self._auth.create_endpoint_response("introspection", raw)
        return response

    def _metadata(self, raw: RawRequest) -> DemoResponse:
        if not self.publish_metadata:
            return _json(404, {"error": "not_found", "error_description": "No such endpoint."})
        metadata = self._auth.metadata()
        if self.send_iss or self.wrong_iss:
            metadata["authorization_response_iss_parameter_supported"] = True
        for name, value in self.metadata_overrides.items():
            if value is None:
                metadata.pop(name, None)
            else:
                metadata[name] = value
        return DemoResponse(
            200, json.dumps(metadata).encode(), [("Content-Type", "application/json")]
        )

    def _jwks(self, raw: RawRequest) -> DemoResponse:
        return DemoResponse(
            200, json.dumps(self._auth.jwks()).encode(), [("Content-Type", "application/json")]
        )

    def _dpop_refusal(self, status: int, problem: DPoPProblem) -> DemoResponse:
        """A refused proof: 400 at the token endpoint, 401 with a DPoP challenge at the API."""
        body = {"error": problem.error, "error_description": problem.description}
        headers = [("DPoP-Nonce", self.dpop.nonce)]
        if status == 401:
            headers.append(
                (
                    "WWW-Authenticate",
                    f'DPoP error="{problem.error}", algs="ES256", '
                    f'error_description="{problem.description}"',
                )
            )
        return _json(status, body, headers)

    def _api_me(self, raw: RawRequest) -> DemoResponse:
        scheme, _, value = (raw.headers.get("Authorization") or "").partition(" ")
        token = value.strip()
        with self._store.lock:
            issued = self._store.tokens.get(token)
        bound = issued.jkt if issued is not None else None
        if bound is not None or scheme.lower() == "dpop":
            # RFC 9449 §7.1: a bound token only as DPoP, with a proof of its own key.
            if scheme.lower() != "dpop":
                unproven = DPoPProblem("invalid_token", "This token is DPoP-bound: send a proof.")
                return self._dpop_refusal(401, unproven)
            try:
                jkt = self.dpop.check(
                    raw.headers.get("DPoP") or "", "GET", self.api_url, access_token=token
                )
            except DPoPProblem as problem:
                return self._dpop_refusal(401, problem)
            if jkt != bound:
                other = DPoPProblem("invalid_token", "The proof is from another key.")
                return self._dpop_refusal(401, other)
            scheme = "bearer"  # from here on, the same checks as a bearer token's
        if scheme.lower() != "bearer" or not token:
            # RFC 6750 §3.1: no credentials at all gets a challenge without an error code.
            return _json(
                401,
                {"error": "invalid_request", "error_description": "Send a Bearer access token."},
                [("WWW-Authenticate", 'Bearer realm="demo"')],
            )
        with self._store.lock:
            record = self._store.tokens.get(token)
            if record is None or record.kind != "access_token" or not record.is_active():
                return _json(
                    401,
                    {
                        "error": "invalid_token",
                        "error_description": "The access token is expired, revoked or unknown.",
                    },
                    [
                        (
                            "WWW-Authenticate",
                            'Bearer realm="demo", error="invalid_token", '
                            'error_description="The access token is expired, revoked or unknown"',
                        )
                    ],
                )
            body = {
                "user": record.grant.user.username,
                "scope": record.scope,
                "client_id": record.client_id,
            }
        return _json(200, body)

    def _index(self, raw: RawRequest) -> DemoResponse:
        return _html(200, index_page(self._auth.issuer))

    _routes: ClassVar[
        dict[tuple[str, str], Callable[[DemoProvider, RawRequest], DemoResponse | None]]
    ] = {
        ("GET", AUTHORIZE_PATH): _authorize_get,
        ("POST", AUTHORIZE_PATH): _authorize_post,
        ("POST", "/token"): _token,
        ("POST", DEVICE_AUTHORIZATION_PATH): _device_authorization,
        ("GET", DEVICE_PATH): _device_page,
        ("POST", DEVICE_PATH): _device_answer,
        ("POST", "/revoke"): _revoke,
        ("POST", "/introspect"): _introspect,
        ("GET", "/.well-known/oauth-authorization-server"): _metadata,
        ("GET", "/.well-known/openid-configuration"): _metadata,
        ("GET", "/jwks.json"): _jwks,
        ("GET", "/api/me"): _api_me,
        ("GET", "/"): _index,
    }


def _device_problem(device: DeviceCredential | None) -> str | None:
    """Why the verification page cannot take an answer for this code (None: it can)."""
    if device is None:
        return "That code is not known here: check it against the one your notebook shows."
    if device.used or device.approved is not None:
        return "That code was already answered. Start again in your notebook for a new one."
    if device.is_expired():
        return "That code has expired. Start again in your notebook for a new one."
    return None


def _device_ticket_key(device: DeviceCredential) -> str:
    # A consent ticket answers for one user code only.
    return f"device:{device.user_code}"


class _ConsentForm(HTMLParser):
    """Reads our own consent page: the form's action and its inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: list[tuple[str, str]] = []
        self._inside = False

    @classmethod
    def parse(cls, text: str) -> _ConsentForm | None:
        parser = cls()
        parser.feed(text)
        parser.close()
        return parser if parser.action is not None else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and values.get("id") == "consent":
            self.action = values.get("action", "")
            self._inside = True
        elif tag == "input" and self._inside and values.get("name"):
            self.fields.append((values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def start_demo_provider(
    port: int = 0, token_lifetime: int = 3600, host: str = "127.0.0.1"
) -> DemoProvider:
    """Create a ``DemoProvider`` and start it; call ``stop()`` when done."""
    return DemoProvider(port=port, token_lifetime=token_lifetime, host=host).start()
