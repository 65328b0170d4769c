"""Quirk profiles: the demo provider behaving as a real provider documents it does.

``DemoProvider(quirks="github")`` and friends: each profile changes only what that provider
does differently from the RFCs (paths, answer format, when refresh tokens come back, how
revocation works), so the presets and the client's handling of each quirk are tested offline.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._authserver import AUTHORIZE_PATH, DEVICE_AUTHORIZATION_PATH, DemoResponse, RawRequest
from ._models import IssuedToken, MemoryStore

__all__ = ["KEYCLOAK_REALM", "QUIRK_PROFILES", "Quirks"]

QUIRK_PROFILES = frozenset({"google", "github", "microsoft", "gitlab", "keycloak", "rocketchat"})
#: The realm a ``keycloak`` profile serves.
KEYCLOAK_REALM = "demo"
_KC = f"/realms/{KEYCLOAK_REALM}/protocol/openid-connect"

# Each provider's own paths -> the demo's paths (the presets build the former).
_PATHS: dict[str, dict[str, str]] = {
    "gitlab": {
        "/oauth/authorize": AUTHORIZE_PATH,
        "/oauth/token": "/token",
        "/oauth/revoke": "/revoke",
        "/oauth/authorize_device": DEVICE_AUTHORIZATION_PATH,
        "/oauth/discovery/keys": "/jwks.json",
    },
    "keycloak": {
        f"{_KC}/auth": AUTHORIZE_PATH,
        f"{_KC}/token": "/token",
        f"{_KC}/revoke": "/revoke",
        f"{_KC}/auth/device": DEVICE_AUTHORIZATION_PATH,
        f"{_KC}/certs": "/jwks.json",
    },
    "rocketchat": {"/oauth/authorize": AUTHORIZE_PATH, "/oauth/token": "/token"},
}
_GITHUB_REVOKE = re.compile(r"^/applications/([^/]+)/token$")
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


def _json(status: int, body: object) -> DemoResponse:
    return DemoResponse(status, json.dumps(body).encode(), list(_JSON))


def _code_of(location: str) -> str | None:
    return dict(parse_qsl(urlsplit(location).query)).get("code")


class Quirks:
    """One provider's documented deviations, applied around the demo's standard behaviour."""

    def __init__(self, profile: str | None, store: MemoryStore) -> None:
        if profile is not None and profile not in QUIRK_PROFILES:
            raise ValueError(
                f"quirks must be one of {sorted(QUIRK_PROFILES)} or None, not {profile!r}"
            )
        self.profile = profile
        self._store = store
        self._lock = threading.Lock()
        # Google: codes issued for access_type=offline&prompt=consent (a refresh token comes back).
        self._offline_codes: set[str] = set()
        #: GitHub: issue expiring user tokens with refresh tokens (a GitHub App that opted in);
        #: else tokens never expire and no refresh token comes back (an OAuth app).
        self.github_expiring_tokens = False
        #: Seconds a refresh token lives, as the answer says (GitHub's
        #: ``refresh_token_expires_in``: six months; Keycloak's ``refresh_expires_in``: its
        #: SSO session idle time, 30 minutes by default).
        self.refresh_lifetime = {"github": 15897600, "keycloak": 1800}.get(profile or "", 0)

    # -- paths ----------------------------------------------------------------------------

    def rewrite_path(self, path: str) -> str:
        """The demo's path for one of this provider's own paths (else ``path`` itself)."""
        return _PATHS.get(self.profile or "", {}).get(path, path)

    def rewrite(self, raw: RawRequest) -> RawRequest:
        """The request with the provider's own path mapped onto the demo's."""
        mapped = _PATHS.get(self.profile or "", {}).get(raw.path)
        if mapped is None:
            return raw
        return RawRequest(raw.method, mapped, raw.query, raw.headers, raw.body)

    def route(self, raw: RawRequest) -> Callable[[RawRequest], DemoResponse] | None:
        """A handler that replaces the standard one for this request, if the profile has one."""
        if self.profile == "github" and raw.method == "DELETE" and _GITHUB_REVOKE.match(raw.path):
            return self._github_revoke
        if raw.path == "/revoke" and raw.method == "POST":
            if self.profile == "google":
                return self._google_revoke
            if self.profile in ("microsoft", "rocketchat", "github"):
                return lambda _raw: _json(404, {"error": "not_found"})  # no such endpoint
        return None

    # -- authorization and token answers --------------------------------------------------

    def authorized(self, raw: RawRequest, response: DemoResponse) -> None:
        """Note what the authorization request asked for, by the code it produced."""
        if self.profile != "google":
            return
        params = dict(parse_qsl(raw.query))
        location = next((v for k, v in response.headers if k.lower() == "location"), "")
        code = _code_of(location)
        # https://developers.google.com/identity/protocols/oauth2/web-server#offline
        if code and params.get("access_type") == "offline" and params.get("prompt") == "consent":
            with self._lock:
                self._offline_codes.add(code)

    def token_answer(self, raw: RawRequest, response: DemoResponse) -> DemoResponse:
        """The token endpoint's answer as this provider shapes it."""
        if self.profile is None or response.status != 200:
            return response
        data = json.loads(response.body or b"{}")
        form = dict(parse_qsl(raw.body.decode("utf-8", "replace")))
        code_grant = form.get("grant_type") == "authorization_code"
        if self.profile == "google" and code_grant:
            with self._lock:
                offline = form.get("code", "") in self._offline_codes
            if not offline:
                data.pop("refresh_token", None)
        elif (
            self.profile == "microsoft"
            and "offline_access" not in str(data.get("scope", "")).split()
        ):
            data.pop("refresh_token", None)
        elif self.profile == "keycloak" and data.get("refresh_token"):
            data["refresh_expires_in"] = self.refresh_lifetime
        elif self.profile == "github":
            data["scope"] = ",".join(str(data.get("scope", "")).split())
            if self.github_expiring_tokens:
                data["refresh_token_expires_in"] = self.refresh_lifetime
            else:
                data.pop("refresh_token", None)
                data.pop("expires_in", None)
            accept = raw.headers.get("Accept") or ""
            if "json" not in accept:
                # GitHub answers form-encoded unless asked for JSON.
                pairs = [(k, str(v)) for k, v in data.items()]
                headers = [(k, v) for k, v in response.headers if k.lower() != "content-type"]
                headers.append(("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"))
                return DemoResponse(200, urlencode(pairs).encode(), headers)
        return DemoResponse(200, json.dumps(data).encode(), list(response.headers))

    # -- revocation -----------------------------------------------------------------------

    def _active(self, value: str) -> IssuedToken | None:
        with self._store.lock:
            token = self._store.tokens.get(value)
            return token if token is not None and token.is_active() else None

    def _google_revoke(self, raw: RawRequest) -> DemoResponse:
        # One `token` parameter; either token ends the whole grant; a token that is already
        # revoked (or unknown) gets 400 invalid_token, unlike RFC 7009's 200.
        form = dict(parse_qsl(raw.body.decode("utf-8", "replace")))
        token = self._active(form.get("token", ""))
        if token is None:
            return _json(
                400, {"error": "invalid_token", "error_description": "Token expired or revoked"}
            )
        self._store.revoke_grant(token.grant)
        return _json(200, {})

    def _github_revoke(self, raw: RawRequest) -> DemoResponse:
        # https://docs.github.com/en/rest/apps/oauth-applications#delete-an-app-token
        match = _GITHUB_REVOKE.match(raw.path)
        assert match is not None
        client_id = match.group(1)
        scheme, _, encoded = (raw.headers.get("Authorization") or "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        with self._store.lock:
            client = self._store.clients.get(client_id)
        if (
            scheme.lower() != "basic"
            or client is None
            or user != client_id
            or not client.client_secret
            or not hmac.compare_digest(password, client.client_secret)
        ):
            return _json(404, {"message": "Not Found"})
        try:
            body = json.loads(raw.body or b"{}")
        except ValueError:
            body = None
        value = body.get("access_token") if isinstance(body, dict) else None
        token = self._active(value) if isinstance(value, str) else None
        if token is None or token.client_id != client_id or token.kind != "access_token":
            return _json(422, {"message": "Validation Failed"})
        self._store.revoke_grant(token.grant)
        return DemoResponse(204, b"", [("Cache-Control", "no-store")])
