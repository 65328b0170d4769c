"""The sidebar's REST API (docs/rest-api.md) on a real Jupyter server, against the demo provider.

The server declares the demo provider (its secret only in the server's environment) and a
broken twin (a wrong secret); a person's browser is played by :class:`support.jupyter.Browser`
(the start link's cookie, the provider's consent page, the redirect back). Every answer the
tests receive is kept and scanned for every secret in every encoding.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support.jupyter import Browser, jupyter_client
from support.scan import assert_no_secret
from tornado.httpclient import HTTPClientError

from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.store import open_store

Fetch = Callable[..., Awaitable[Any]]


@pytest.fixture
def jp_server_config(provider: DemoProvider, declared: tuple[str, str]) -> dict[str, Any]:
    broken = {**provider.config(alias="broken"), "clientId": declared[0]}
    broken["clientSecret"] = "not-the-secret-at-all"
    return {
        "ServerApp": {"jpserver_extensions": {"chat_oauth2_nb": True}},
        "ChatOAuth2App": {
            "providers": {
                "demo": {**provider.config(alias="demo"), "clientId": declared[0]},
                "broken": broken,
                "oidc": {
                    **provider.config(alias="oidc", scopes=("openid", "profile")),
                    "clientId": declared[0],
                    "clientSecret": declared[1],
                },
            },
            # Long enough that an answer before it proves the wake-up.
            "changes_timeout": 300.0,
        },
    }


class Api:
    """The API as the sidebar calls it; keeps every answer's raw body for the secret scan."""

    def __init__(self, fetch: Fetch) -> None:
        self.fetch = fetch
        self.bodies: list[bytes] = []

    async def call(self, method: str, *path: str, expect: int = 200, **kw: Any) -> Any:
        if method == "POST":
            kw.setdefault("body", b"")
        response = await self.fetch(
            "chat-oauth2", "api", *path, method=method, raise_error=False, **kw
        )
        self.bodies.append(response.body)
        assert response.code == expect, response.body
        assert response.headers["Cache-Control"] == "no-store"
        return json.loads(response.body)

    async def state(self) -> dict[str, Any]:
        return dict(await self.call("GET", "state"))


@pytest.fixture
def api(jp_fetch: Fetch) -> Api:
    return Api(jp_fetch)


@pytest.fixture
def browser(jp_fetch: Fetch, provider: DemoProvider) -> Browser:
    return Browser(jp_fetch, provider)


def by_alias(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["alias"]: item for item in items}


async def authorize(api: Api, browser: Browser, alias: str = "demo") -> None:
    started = await api.call("POST", "authorize", alias)
    assert "/chat-oauth2/start/" in started["start_url"] and started["expires_in"] > 0
    response = await browser.callback(
        await browser.params(started["start_url"]), alias=alias, raise_error=False
    )
    assert response.code == 200 and b"Authorized" in response.body, response.body


async def test_a_declared_provider_is_listed_before_any_kernel(jp_serverapp: Any, api: Api) -> None:
    state = await api.state()
    assert state["tokens"] == [] and isinstance(state["version"], int) and state["user"]
    demo = by_alias(state["providers"])["demo"]
    assert demo["source"] == "server" and demo["way"] == "jupyter"
    assert demo["redirect_uri"].endswith("/chat-oauth2/callback/demo")
    assert demo["scopes"] == ["profile"] and demo["issuer"]
    assert demo["can_authorize"] and demo["can_refresh"] and demo["can_revoke"]
    assert demo["why_not"] is None


async def test_authorize_refresh_revoke_and_no_secret_in_any_answer(
    jp_serverapp: Any, api: Api, browser: Browser, declared: tuple[str, str]
) -> None:
    await authorize(api, browser)
    state = await api.state()
    token = by_alias(state["tokens"])["demo"]
    assert token["status"] == "authorized" and token["user"] == state["user"]
    assert token["scopes_granted"] == ["profile"] and token["has_refresh_token"]
    assert token["expires_at"] > state["now"] and "…" in token["masked"]
    store = open_store()
    first = store.get_token("demo", state["user"])
    assert first is not None
    held = store.get_held_refresh_token("demo", state["user"], str(first.provider))

    refreshed = (await api.call("POST", "refresh", "demo"))["token"]
    assert refreshed["status"] == "authorized" and refreshed["masked"] != token["masked"]
    second = store.get_token("demo", state["user"])
    assert second is not None and second.data.token != first.data.token

    assert await api.call("POST", "revoke", "demo") == {"revoked": True}
    assert (await api.state())["tokens"] == []
    assert provider_inactive(browser.provider, first.data.token, second.data.token)
    missing = await api.call("POST", "revoke", "demo", expect=404)
    assert missing["error"]["type"] == "NotAuthorizedError"

    secrets = [declared[1], first.data.token, second.data.token, held, first.data.id_token]
    text = b"\n".join(api.bodies).decode()
    assert_no_secret(text, secrets, "the API's answers", client_ids=[declared[0]])


def provider_inactive(provider: DemoProvider, *tokens: str) -> bool:
    return all(provider.introspect(token)["active"] is False for token in tokens)


async def test_unknown_alias_is_a_typed_404_with_a_guess(jp_serverapp: Any, api: Api) -> None:
    answer = await api.call("POST", "refresh", "dmeo", expect=404)
    error = answer["error"]
    assert error["type"] == "UnknownProviderError"
    assert "'dmeo'" in error["what_failed"] and error["what_to_change"] == "Did you mean 'demo'?"
    assert error["provider_said"] is None
    claims = await api.call("GET", "claims", "demo", expect=404)
    assert claims["error"]["type"] == "NotAuthorizedError"


async def test_check_reports_a_broken_config_failures_first(jp_serverapp: Any, api: Api) -> None:
    report = await api.call("POST", "check", "broken")
    assert report["ok"] is False
    statuses = [row["status"] for row in report["rows"]]
    assert statuses[0] == "fail" and statuses == sorted(
        statuses, key=["fail", "warn", "ok", "skip"].index
    )
    credentials = next(row for row in report["rows"] if row["id"] == "credentials")
    assert credentials["status"] == "fail" and credentials["todo"]
    assert "not-the-secret-at-all" not in json.dumps(report)
    healthy = await api.call("POST", "check", "demo")
    assert healthy["ok"] is True, healthy


async def test_a_long_poll_wakes_when_a_callback_lands(
    jp_serverapp: Any, api: Api, browser: Browser
) -> None:
    version = (await api.state())["version"]
    assert (await api.call("GET", "changes", params={"since": str(version - 1)}))[
        "version"
    ] == version
    waiting = asyncio.ensure_future(api.call("GET", "changes", params={"since": str(version)}))
    started = await api.call("POST", "authorize", "demo")
    params = await browser.params(started["start_url"])
    moved = await asyncio.wait_for(waiting, 60)
    assert moved["version"] != version  # the flow's start moved it (changes_timeout is 300 s)
    waiting = asyncio.ensure_future(
        api.call("GET", "changes", params={"since": str(moved["version"])})
    )
    await asyncio.sleep(0)
    assert (await browser.callback(params)).code == 200
    after = await asyncio.wait_for(waiting, 60)
    assert after["version"] != moved["version"]
    assert by_alias((await api.state())["tokens"])["demo"]["status"] == "authorized"


async def test_a_kernels_provider_is_listed_and_acted_on_from_the_server(
    jp_serverapp: Any, api: Api, provider: DemoProvider, browser: Browser
) -> None:
    # setup() registers the provider, with its secret, in the store.
    client = await jupyter_client(provider, alias="mine", mode="jupyter")
    try:
        mine = by_alias((await api.state())["providers"])["mine"]
        assert mine["source"] == "kernel" and mine["way"] == "jupyter"
        assert mine["redirect_uri"].endswith("/chat-oauth2/callback/mine")
        assert mine["can_authorize"] and mine["can_refresh"] and mine["why_not"] is None
        await authorize(api, browser, alias="mine")
        user = (await api.state())["user"]
        data = await asyncio.to_thread(client.get_access_token_for_user, user)
        assert data is not None
        refreshed = (await api.call("POST", "refresh", "mine"))["token"]
        assert refreshed["status"] == "authorized"
        newer = await asyncio.to_thread(client.get_access_token_for_user, user)
        assert newer is not None
        assert newer.token != data.token  # the kernel reads what the server refreshed
        text = b"\n".join(api.bodies).decode()
        assert_no_secret(text, [data.token, newer.token, data.refresh_token], "the answers")
    finally:
        client.close()


async def test_claims_are_the_verified_ones_and_the_id_token_stays_inside(
    jp_serverapp: Any, api: Api, browser: Browser
) -> None:
    await authorize(api, browser, alias="oidc")
    state = await api.state()
    token = by_alias(state["tokens"])["oidc"]
    assert token["has_id_token"] and token["scopes_granted"] == ["openid", "profile"]
    claims = (await api.call("GET", "claims", "oidc"))["claims"]
    assert claims["sub"] == "demo-user" and claims["iss"] == browser.provider.issuer
    record = open_store().get_token("oidc", state["user"])
    assert record is not None and record.data.id_token
    text = b"\n".join(api.bodies).decode()
    assert_no_secret(text, [record.data.id_token, record.data.token], "the claims answers")


async def test_a_loopback_kernel_provider_says_where_to_authorize_it(
    jp_serverapp: Any, api: Api, provider: DemoProvider
) -> None:
    client = create_oauth2_client(
        provider.config(alias="lo"),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        mode="loopback",
    )
    try:
        user = (await api.state())["user"]
        await asyncio.to_thread(client.get_user_authorization_url, user)
        lo = by_alias((await api.state())["providers"])["lo"]
        assert lo["source"] == "kernel" and lo["way"] == "loopback"
        assert lo["can_authorize"] is False and lo["can_refresh"] is True
        assert "loopback" in lo["why_not"] and "notebook that set it up" in lo["why_not"]
        refused = await api.call("POST", "authorize", "lo", expect=403)
        assert refused["error"]["type"] == "ActionUnavailableError"
        assert refused["error"]["what_to_change"] == lo["why_not"]
    finally:
        client.close()


async def test_no_login_no_answer(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str
) -> None:
    for path, method in (("state", "GET"), ("refresh/demo", "POST")):
        with pytest.raises(HTTPClientError) as refused:
            await http_server_client.fetch(
                f"{jp_base_url}chat-oauth2/api/{path}",
                method=method,
                body=b"" if method == "POST" else None,
            )
        assert refused.value.code == 403
