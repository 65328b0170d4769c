"""Attacks on the sidebar's REST API and its change feed, on a real server with the demo provider.

A hostile provider quotes stored tokens in its error texts; a flood of long-polls tries to
take the extension's workers; another Jupyter user opens a start link it did not request;
another local user tries to wake the store watchers. Each test performs the attack.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from jupyter_server.auth.identity import IdentityProvider, User
from support.jupyter import Browser
from support.scan import assert_no_secret
from test_rest_api import Api, authorize

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.store import open_store


class TwoPeople(IdentityProvider):
    """Jupyter's token login, naming the person "bob" when the request says so, else "alice".

    Two people on one server (a hub's shared server with access granted to bob).
    """

    async def get_user(self, handler: Any) -> User | None:
        user = super().get_user(handler)
        if inspect.isawaitable(user):
            user = await user
        if user is None:
            return None
        name = "bob" if handler.request.headers.get("X-Person") == "bob" else "alice"
        return User(name, name, name, name[0].upper(), None, None)


@pytest.fixture
def jp_server_config(provider: DemoProvider, declared: tuple[str, str]) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"chat_oauth2_nb": True},
            "identity_provider_class": TwoPeople,
        },
        "ChatOAuth2App": {
            "providers": {
                "demo": {
                    **provider.config(alias="demo", scopes=("openid", "profile")),
                    "clientId": declared[0],
                }
            },
            # One worker: a long-poll that held one would stop every other request.
            "workers": 1,
            "changes_timeout": 300.0,
        },
    }


@pytest.fixture
def api(jp_fetch: Any) -> Api:
    return Api(jp_fetch)


@pytest.fixture
def browser(jp_fetch: Any, provider: DemoProvider) -> Browser:
    return Browser(jp_fetch, provider)


def quoted(*secrets: str) -> str:
    """The secrets as a careless provider's page would quote them, in several encodings."""
    forms = [f(s) for s in secrets for f in (str, quote_plus, lambda s: quote(s, safe=""))]
    forms += [base64.b64encode(s.encode()).decode() for s in secrets]
    return " | ".join(forms) + " <script>alert(1)</script>"


async def test_a_provider_quoting_secrets_in_errors_and_claims_reaches_the_browser_masked(
    jp_serverapp: Any, api: Api, browser: Browser, provider: DemoProvider, declared: tuple[str, str]
) -> None:
    # The provider puts markup and the client secret in the id_token's claims.
    started = await api.call("POST", "authorize", "demo")
    hostile = f"<img src=x onerror=alert(1)> {declared[1]}"
    params = await browser.params(started["start_url"], username=hostile)
    assert (await browser.callback(params)).code == 200
    claims = (await api.call("GET", "claims", "demo"))["claims"]
    assert claims["name"].startswith("<img src=x onerror=alert(1)> ")  # text for the front end
    user = (await api.state())["user"]
    record = open_store().get_token("demo", user)
    assert record is not None and record.provider
    held = open_store().get_held_refresh_token("demo", user, record.provider)
    assert held is not None
    # A refresh sends the refresh token, not the access token: the provider quotes that one.
    echo = {"error": "temporarily_unavailable", "error_description": quoted(record.data.token)}
    provider.inject_fault(
        "token", status=400, body=json.dumps(echo), content_type="application/json"
    )
    failed = await api.call("POST", "refresh", "demo", expect=502)
    said = failed["error"]["provider_said"]
    # The rest of the text is there, markup included: the front end renders it as text.
    assert said.startswith("temporarily_unavailable: ") and "<script>" in said
    # The doctor reads the refresh token held apart (it is no longer "missing") and masks it.
    report = await api.call("POST", "check", "demo")
    assert next(r for r in report["rows"] if r["id"] == "refresh")["status"] == "ok", report
    text = b"\n".join(api.bodies).decode()
    secrets = [record.data.token, held, record.data.id_token, declared[1]]
    assert_no_secret(text, secrets, "the API's answers", client_ids=[declared[0]])


async def test_a_flood_of_long_polls_holds_no_worker(
    jp_serverapp: Any, api: Api, browser: Browser, jp_base_url: str, jp_auth_header: dict[str, str]
) -> None:
    version = (await api.state())["version"]
    request = (
        f"GET {jp_base_url}chat-oauth2/api/changes?since={version} HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: {jp_auth_header['Authorization']}\r\n\r\n"
    ).encode()
    polls = []
    try:
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", jp_serverapp.port)
            writer.write(request)
            polls.append((reader, writer))
        # The extension has one worker and 50 sidebars wait on it: a person still authorizes.
        await asyncio.wait_for(authorize(api, browser), 60)
        # And every poll is answered: the callback moved the version.
        answers = [await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 60) for r, _ in polls]
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    finally:
        for _, writer in polls:
            writer.close()


async def test_a_start_link_is_refused_to_another_jupyter_user(
    jp_serverapp: Any, api: Api, browser: Browser, jp_fetch: Any, provider: DemoProvider
) -> None:
    started = await api.call("POST", "authorize", "demo")
    params = await browser.params(started["start_url"])  # alice's browser opened it
    start_id = started["start_url"].rsplit("/", 1)[1]
    as_bob = {"headers": {"X-Person": "bob"}, "raise_error": False}
    opened = await jp_fetch("chat-oauth2", "start", start_id, follow_redirects=False, **as_bob)
    assert opened.code == 400 and b"another Jupyter user" in opened.body
    # Bob replays alice's redirect, with and without her binding cookie: refused both times.
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    for headers in ({"X-Person": "bob"}, {"X-Person": "bob", "Cookie": cookie}):
        replay = await jp_fetch(
            "chat-oauth2", "callback", "demo", params=params, headers=headers, raise_error=False
        )
        assert replay.code != 200 and b"Authorized" not in replay.body
    assert (await api.state())["tokens"] == []
    assert (await browser.callback(params)).code == 200  # alice's own redirect still lands
