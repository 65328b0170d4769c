"""The adapters with the real libraries against the demo provider's /api/me.

requests (a real ``Session``), google-auth (``AuthorizedSession`` over ``Credentials`` whose
refresh_handler goes through our store) and azure-core (``BearerTokenCredentialPolicy`` in a
real ``PipelineClient``). Every refresh is counted at the provider, so "refreshed through
our store, once" is what the provider saw, not what a mock recorded.
"""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests
from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import BearerTokenCredentialPolicy
from azure.core.rest import HttpRequest
from google.auth.transport.requests import AuthorizedSession

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.errors import NotAuthorizedError, TokenRefreshError
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import AuthData
from tests.support.scan import assert_no_secret

Authorized = Callable[..., OAuth2Client]


def stored(client: OAuth2Client, user: str = "ada") -> AuthData:
    data = client.get_access_token_for_user(user)
    assert data is not None
    return data


def revoke_at_provider(provider: DemoProvider, token: str) -> None:
    """Revoke one token behind the client's back: the API will answer 401 to it."""
    answer = httpx.post(
        provider.issuer + "/revoke",
        data={"token": token},
        auth=(provider.client_id, provider.client_secret),
    )
    assert answer.status_code == 200


def held_by(adapter: object) -> str:
    """Everything an adapter object holds itself (not the client it asks for tokens).

    AuthData's repr hides its secrets, so dataclasses are dumped field by field.
    """
    return repr(
        {
            k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
            for k, v in vars(adapter).items()
            if k != "_client"
        }
    )


# requests ----------------------------------------------------------------------------------


def test_requests_session_sends_the_bearer_and_retries_once_after_a_401(
    authorized: Authorized, provider: DemoProvider
) -> None:
    client = authorized()
    auth = client.requests_auth("ada")
    assert isinstance(auth, requests.auth.AuthBase)
    with requests.Session() as session:
        session.auth = auth
        me = session.get(provider.api_url, timeout=10)
        assert me.status_code == 200 and me.json()["user"]
        first = stored(client)
        revoke_at_provider(provider, first.token)
        again = session.get(provider.api_url, timeout=10)
    # The API refused the revoked token once; the auth refreshed and sent the request again.
    assert again.status_code == 200
    assert [r.status_code for r in again.history] == [401]
    assert provider.token_requests["refresh_token"] == 1
    assert stored(client).token != first.token
    assert again.request.headers["Authorization"] == f"Bearer {stored(client).token}"
    assert_no_secret(
        repr(auth) + held_by(auth),
        [first.refresh_token or "", stored(client).refresh_token or "", provider.client_secret],
        "the requests auth",
    )


def test_requests_auth_refreshes_an_expired_token_once_for_many_threads(
    authorized: Authorized, provider: DemoProvider
) -> None:
    provider.set_token_lifetime(2)
    client = authorized()
    auth = client.requests_auth("ada")
    first = stored(client)
    time.sleep(1.2)  # the leeway is capped at half the lifetime: expired for the client now
    statuses: list[int] = []

    def call() -> None:
        with requests.Session() as session:
            statuses.append(session.get(provider.api_url, auth=auth, timeout=10).status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    assert provider.token_requests["refresh_token"] == 1  # single flight
    assert stored(client).token != first.token


def test_requests_auth_without_authorization_says_to_authorize(
    make_client: Callable[..., OAuth2Client], provider: DemoProvider
) -> None:
    client = make_client()
    with pytest.raises(NotAuthorizedError, match="Authorize first"):
        requests.get(provider.api_url, auth=client.requests_auth("nobody"), timeout=10)


def test_requests_auth_gives_up_after_one_retry(
    authorized: Authorized, provider: DemoProvider
) -> None:
    """A token the API keeps refusing is not retried forever: one retry, then the 401."""
    client = authorized()
    auth = client.requests_auth("ada")
    provider.inject_fault("api", status=401, body='{"error": "invalid_token"}', times=2)
    with requests.Session() as session:
        refused = session.get(provider.api_url, auth=auth, timeout=10)
    assert refused.status_code == 401
    assert [r.status_code for r in refused.history] == [401]
    assert provider.token_requests["refresh_token"] == 1


# google-auth -------------------------------------------------------------------------------


def test_google_credentials_refresh_through_the_store_and_never_hold_the_refresh_token(
    authorized: Authorized, provider: DemoProvider
) -> None:
    # google-auth calls a token expired 3 min 45 s before it expires: 228 s tokens are
    # fresh to it for 3 s.
    provider.set_token_lifetime(228)
    client = authorized()
    provider.set_token_lifetime(3600)
    first = stored(client)
    credentials = client.google_credentials("ada")
    assert credentials.token == first.token and credentials.valid
    assert credentials.refresh_token is None
    assert credentials.client_secret is None and credentials.token_uri is None
    session = AuthorizedSession(credentials)
    me = session.get(provider.api_url, timeout=10)
    assert me.status_code == 200 and me.json()["user"]
    assert provider.token_requests["refresh_token"] == 0

    time.sleep(3.5)
    assert not credentials.valid  # expired, as google-auth sees it
    me = session.get(provider.api_url, timeout=10)
    assert me.status_code == 200
    # google-auth refreshed through our store: one refresh at the provider, stored by us.
    assert provider.token_requests["refresh_token"] == 1
    second = stored(client)
    assert second.token != first.token and credentials.token == second.token
    assert credentials.valid and credentials.refresh_token is None

    # A 401 makes AuthorizedSession refresh too: again through the store.
    revoke_at_provider(provider, second.token)
    me = session.get(provider.api_url, timeout=10)
    assert me.status_code == 200
    assert provider.token_requests["refresh_token"] == 2
    assert credentials.token == stored(client).token != second.token

    # What google-auth keeps, serialises or pickles holds no refresh token and no secret.
    secrets = [
        first.refresh_token or "",
        second.refresh_token or "",
        stored(client).refresh_token or "",
        provider.client_secret,
    ]
    handler = credentials.refresh_handler
    kept = {k: v for k, v in vars(credentials).items() if k != "_refresh_handler"}
    assert_no_secret(repr(kept), secrets, "the google-auth credentials")
    assert_no_secret(held_by(handler), secrets, "the google-auth refresh handler")
    assert_no_secret(credentials.to_json(), secrets, "Credentials.to_json()")
    assert_no_secret(
        pickle.dumps(credentials).decode("latin-1"), secrets, "the pickled credentials"
    )
    session.close()


def test_google_credentials_say_when_tokens_are_too_short_lived_for_google_auth(
    authorized: Authorized, provider: DemoProvider
) -> None:
    provider.set_token_lifetime(60)
    client = authorized()
    credentials = client.google_credentials("ada")
    assert not credentials.valid  # 60 s is inside google-auth's 3 min 45 s threshold
    with AuthorizedSession(credentials) as session, pytest.raises(TokenRefreshError) as info:
        session.get(provider.api_url, timeout=10)
    assert "refresh threshold" in str(info.value) and "client.auth()" in str(info.value)


# azure-core --------------------------------------------------------------------------------

SCOPE = "api://demo/.default"


def test_azure_credential_in_a_bearer_token_policy_refreshes_through_the_store(
    authorized: Authorized, provider: DemoProvider
) -> None:
    provider.set_token_lifetime(4)
    # The grant carries the scope azure-core asks for: its own token serves (no other resource).
    client = authorized(config={**provider.config(alias="demo"), "defaultScopes": [SCOPE]})
    first = stored(client)
    credential = client.azure_credential("ada")
    assert isinstance(credential, TokenCredential)
    policy = BearerTokenCredentialPolicy(credential, SCOPE)
    with PipelineClient(provider.issuer, policies=[policy]) as pipeline:

        def me() -> Any:
            # The demo provider is plain http on 127.0.0.1; azure-core insists on https.
            return pipeline.send_request(HttpRequest("GET", provider.api_url), enforce_https=False)

        answer = me()
        assert answer.status_code == 200 and answer.json()["user"]
        assert answer.request.headers["Authorization"] == f"Bearer {first.token}"
        assert provider.token_requests["refresh_token"] == 0
        time.sleep(2.2)  # past half the 4 s lifetime: expired for the client
        answer = me()
    assert answer.status_code == 200
    assert provider.token_requests["refresh_token"] == 1
    second = stored(client)
    assert second.token != first.token
    assert answer.request.headers["Authorization"] == f"Bearer {second.token}"
    token = credential.get_token(SCOPE)
    assert token.token == second.token
    assert second.expires_at is not None
    assert token.expires_on == int(second.expires_at.timestamp())
    assert_no_secret(
        repr(credential) + held_by(credential),
        [first.refresh_token or "", second.refresh_token or "", provider.client_secret],
        "the azure credential",
    )


# packaging ---------------------------------------------------------------------------------


def test_the_libraries_load_only_when_an_adapter_is_made() -> None:
    code = (
        "import sys, chat_oauth2_nb, chat_oauth2_nb.notebook.client\n"
        "print(sorted(m for m in ('requests', 'google.auth', 'azure.core', "
        "'chat_oauth2_nb.kernel.adapters') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
