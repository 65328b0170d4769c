"""Providers declared in the Jupyter server's config: the secret and refresh tokens stay there.

A real Jupyter server (pytest-jupyter) declares the demo provider with
``c.ChatOAuth2App.providers`` and its secret in the server's environment; kernels (this test
process, and a real ipykernel the server starts) use ``create_oauth2_client("demo")``.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from support.jupyter import Browser
from support.scan import assert_no_secret

from chat_oauth2_nb import NotAuthorizedError, create_oauth2_client, providers
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.lifecycle.remote import RemoteGrants
from chat_oauth2_nb.routes import SERVER_API_ENV, SERVER_API_TOKEN_ENV
from chat_oauth2_nb.store import open_store

Fetch = Callable[..., Awaitable[Any]]
SECRET_ENV = "CHAT_OAUTH2_DEMO_CLIENT_SECRET"


@pytest.fixture
def jp_server_config(provider: DemoProvider, declared: tuple[str, str]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"chat_oauth2_nb": True}},
        "ChatOAuth2App": {
            "providers": {"demo": {**provider.config(alias="demo"), "clientId": declared[0]}}
        },
    }


@pytest.fixture
def browser(jp_fetch: Fetch, provider: DemoProvider) -> Browser:
    return Browser(jp_fetch, provider)


async def test_declared_provider_end_to_end_without_the_secret(
    jp_serverapp: Any,
    http_server_client: Any,  # the kernel-side client calls the server over HTTP
    provider: DemoProvider,
    browser: Browser,
    declared: tuple[str, str],
) -> None:
    client_id, secret = declared
    listed = await asyncio.to_thread(providers)
    assert list(listed) == ["demo"]
    assert listed["demo"]["default_scopes"] == ["profile"]
    assert listed["demo"]["client_id"] == client_id

    client = await asyncio.to_thread(create_oauth2_client, "demo")
    assert isinstance(client.grants, RemoteGrants)
    assert client.config.client_secret is None
    url = await asyncio.to_thread(client.get_user_authorization_url, "ada")
    response = await browser.callback(await browser.params(url))
    assert response.code == 200 and b"Authorized" in response.body
    data = await client.await_for_authorization("ada", timeout=5)
    assert provider.introspect(data.token)["active"] is True
    # The kernel's view has no refresh token; the server holds it apart.
    assert data.refresh_token is None
    store = open_store()
    record = store.get_token("demo", "ada")
    assert record is not None and record.data.refresh_token is None
    held = store.get_held_refresh_token("demo", "ada", client.provider)
    assert held is not None

    # A valid token is read from the store: no request to the server or the provider.
    before = sum(provider.token_requests.values())
    assert (await client.aget_access_token_for_user("ada")) == data
    assert sum(provider.token_requests.values()) == before

    refreshed = await client.arefresh_user_access_token("ada")
    assert refreshed.token != data.token and refreshed.refresh_token is None
    assert provider.token_requests["refresh_token"] == 1
    assert provider.introspect(refreshed.token)["active"] is True
    assert (await client.aget_access_token_for_user("ada")) == refreshed

    assert await client.arevoke_user_access_token("ada") is True
    assert provider.introspect(refreshed.token)["active"] is False
    assert store.get_token("demo", "ada") is None
    assert store.get_held_refresh_token("demo", "ada", client.provider) is None
    assert await client.arevoke_user_access_token("ada") is False

    seen = "\n".join(
        [repr(client), repr(client.config), json.dumps(listed), repr(data), repr(refreshed)]
        + [json.dumps(exchange.__dict__, default=str) for exchange in client.http_log]
    )
    assert_no_secret(seen, [secret, held], "the kernel side", client_ids=[client_id])
    # The server took the secret out of its environment: kernels it starts never inherit it.
    assert SECRET_ENV not in os.environ


async def test_the_server_api_refuses_requests_without_its_kernel_token(
    jp_serverapp: Any, http_server_client: Any
) -> None:
    # Another local user (or a web page) knows the URL but not the token of this server.
    url = os.environ[SERVER_API_ENV]
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer guessed"}, {"Cookie": "x=y"}):
            listing = await http.get(f"{url}/providers", headers=headers)
            assert listing.status_code == 403
            token = await http.post(f"{url}/token/demo", json={"user": "ada"}, headers=headers)
            assert token.status_code == 403
            revoke = await http.post(f"{url}/revoke/demo", json={"user": "ada"}, headers=headers)
            assert revoke.status_code == 403
        good = {"Authorization": f"Bearer {os.environ[SERVER_API_TOKEN_ENV]}"}
        listing = await http.get(f"{url}/providers", headers=good)
        assert listing.status_code == 200 and "demo" in listing.json()["providers"]
        missing = await http.post(f"{url}/token/demo", json={"user": "ada"}, headers=good)
        assert missing.status_code == 404


async def test_not_authorized_is_the_typed_error_from_the_server(
    jp_serverapp: Any, http_server_client: Any
) -> None:
    client = await asyncio.to_thread(create_oauth2_client, "demo")
    assert await client.aget_access_token_for_user("bob") is None
    with pytest.raises(NotAuthorizedError):
        await client.arefresh_user_access_token("bob")


async def _run(client: Any, code: str, timeout: float = 60.0) -> str:
    """Execute ``code`` in a kernel; return its stdout (a failed cell fails the test)."""
    msg_id = client.execute(code, store_history=False)
    out: list[str] = []
    while True:
        msg = await client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            out.append(json.dumps(content["data"]))
        elif kind == "error":
            raise AssertionError("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out)


_KERNEL_START = """
import dataclasses, json, logging, os, sys
import chat_oauth2_nb
from chat_oauth2_nb import create_oauth2_client
logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, force=True)
client = create_oauth2_client("demo")
url = client.get_user_authorization_url("ada")
print(json.dumps({"url": str(url), "providers": chat_oauth2_nb.providers()}))
print(repr(client), repr(client.config))
"""

_KERNEL_FINISH = """
data = client.wait_for_authorization("ada", timeout=20)
newer = client.refresh_user_access_token("ada")
print(repr(data), repr(newer))
print("NEW TOKEN", newer.token != data.token)
print("REVOKED", client.revoke_user_access_token("ada"))
for exchange in client.http_log:
    print(json.dumps(dataclasses.asdict(exchange), default=str))
print(json.dumps(dict(os.environ)))
"""


@pytest.mark.timeout(180)
async def test_a_real_kernel_never_holds_the_secret_or_refresh_token(
    jp_serverapp: Any,
    http_server_client: Any,
    provider: DemoProvider,
    browser: Browser,
    declared: tuple[str, str],
) -> None:
    client_id, secret = declared
    manager = jp_serverapp.kernel_manager
    kernel_id = await manager.start_kernel()
    # The server's own async client: the server keeps serving this event loop meanwhile.
    kernel = manager.get_kernel(kernel_id).client()
    kernel.start_channels()
    try:
        await kernel.wait_for_ready(timeout=90)
        started = await _run(kernel, _KERNEL_START)
        first = json.loads(next(ln for ln in started.splitlines() if ln.startswith('{"url"')))
        assert first["providers"]["demo"]["client_id"] == client_id
        held: list[str] = []

        async def person() -> None:
            response = await browser.callback(await browser.params(first["url"]))
            assert response.code == 200
            # What the server holds apart, to look for in everything the kernel printed.
            store = open_store()
            for _ in range(200):
                record = store.get_token("demo", "ada")
                if record is not None:
                    value = store.get_held_refresh_token("demo", "ada", record.provider or "")
                    if value:
                        held.append(value)
                        return
                await asyncio.sleep(0.05)

        finish = asyncio.create_task(_run(kernel, _KERNEL_FINISH))
        await person()
        finished = await finish
    finally:
        kernel.stop_channels()
        await manager.shutdown_kernel(kernel_id, now=True)
    assert "NEW TOKEN True" in finished and "REVOKED True" in finished, finished
    assert held, "the server held no refresh token"
    env = json.loads([ln for ln in finished.splitlines() if ln.startswith("{")][-1])
    assert SECRET_ENV not in env
    assert_no_secret(
        started + finished, [secret, *held], "the kernel's outputs", client_ids=[client_id]
    )


async def test_an_expired_token_is_refreshed_by_the_server_once_for_concurrent_callers(
    jp_serverapp: Any, http_server_client: Any, provider: DemoProvider, browser: Browser
) -> None:
    provider.set_token_lifetime(2)
    client = await asyncio.to_thread(create_oauth2_client, "demo")
    url = await asyncio.to_thread(client.get_user_authorization_url, "ada")
    assert (await browser.callback(await browser.params(url))).code == 200
    data = await client.await_for_authorization("ada", timeout=5)
    provider.set_token_lifetime(3600)
    await asyncio.sleep(1.2)  # past half its lifetime: expired for the client
    provider.token_delay = 0.3  # keeps the refresh in flight while the others ask
    results = await asyncio.gather(*[client.aget_access_token_for_user("ada") for _ in range(4)])
    tokens = {r.token for r in results if r is not None}
    assert len(tokens) == 1 and data.token not in tokens
    assert provider.token_requests["refresh_token"] == 1


# -- the panel of a declared provider ---------------------------------------------------------


def _one(root: Any, css_class: str) -> Any:
    """The one widget under ``root`` carrying ``css_class``."""
    found = [root] if css_class in getattr(root, "_dom_classes", ()) else []
    stack = list(getattr(root, "children", ()))
    while stack:
        child = stack.pop()
        if css_class in getattr(child, "_dom_classes", ()):
            found.append(child)
        stack.extend(getattr(child, "children", ()))
    assert len(found) == 1, f"{len(found)} widgets with class {css_class!r}"
    return found[0]


def _read(panel: Any, css_class: str) -> str:
    """A widget's text as a person reads it: tags stripped, entities decoded."""
    value = str(_one(panel, css_class).value)
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", value).split()))


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    # The server runs on this event loop: wait without blocking it.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def panels() -> Iterator[list[Any]]:
    """Panels and clients to close after the test (closed in reverse)."""
    made: list[Any] = []
    yield made
    for thing in reversed(made):
        thing.close()


async def _authorized_panel(browser: Browser, panels: list[Any]) -> Any:
    """A panel of the declared demo provider, for ada, authorized through its own link."""
    client = await asyncio.to_thread(create_oauth2_client, "demo")
    assert isinstance(client.grants, RemoteGrants)
    panels.append(client)
    panel = await asyncio.to_thread(client.panel, "ada")
    panels.append(panel)
    await _until(lambda: "chat-oauth2-authorize" in _one(panel, "chat-oauth2-link").value, "link")
    link = re.search(r'href="([^"]+)"', _one(panel, "chat-oauth2-link").value)
    assert link is not None
    params = await browser.params(html.unescape(link.group(1)))
    assert (await browser.callback(params)).code == 200
    await _until(lambda: _read(panel, "chat-oauth2-status").startswith("Authorized"), "token")
    return panel


async def test_the_panel_shows_a_declared_provider_as_the_administrators(
    jp_serverapp: Any,
    http_server_client: Any,
    browser: Browser,
    panels: list[Any],
    declared: tuple[str, str],
) -> None:
    panel = await _authorized_panel(browser, panels)
    details = _read(panel, "chat-oauth2-provider")
    assert "declared by your administrator" in details
    # Nothing for the user to register, no secret field, no device code (it needs the secret).
    assert "register exactly" not in details
    assert not any("secret" in c.lower() for c in panel._dom_classes)
    assert _one(panel, "chat-oauth2-new-code").layout.display == "none"
    assert panel.state.declared and not panel.state.device_endpoint
    # The kernel holds no refresh token, yet Refresh is on offer: the server holds it.
    assert not _one(panel, "chat-oauth2-refresh").disabled
    assert_no_secret(
        json.dumps(panel.get_state(), default=str), [declared[1]], "the panel", [declared[0]]
    )


async def test_refresh_in_the_panel_goes_through_the_server(
    jp_serverapp: Any,
    http_server_client: Any,
    browser: Browser,
    panels: list[Any],
    provider: DemoProvider,
) -> None:
    panel = await _authorized_panel(browser, panels)
    before = _read(panel, "chat-oauth2-token")
    _one(panel, "chat-oauth2-refresh").click()
    await _until(lambda: _read(panel, "chat-oauth2-outcome").startswith("Refreshed at"), "refresh")
    assert provider.token_requests["refresh_token"] == 1
    await _until(lambda: _read(panel, "chat-oauth2-token") != before, "the new token shown")
    assert _read(panel, "chat-oauth2-status").startswith("Authorized")


async def test_a_refresh_the_administrator_must_fix_says_so_in_the_panel(
    jp_serverapp: Any,
    http_server_client: Any,
    browser: Browser,
    panels: list[Any],
    provider: DemoProvider,
) -> None:
    panel = await _authorized_panel(browser, panels)
    # The provider no longer accepts the declared client (its secret was rotated there).
    provider.inject_fault(
        "token",
        status=401,
        content_type="application/json",
        body='{"error": "invalid_client", "error_description": "client authentication failed"}',
    )
    _one(panel, "chat-oauth2-refresh").click()
    await _until(lambda: _read(panel, "chat-oauth2-status").startswith("Error"), "an error")
    error = _read(panel, "chat-oauth2-error")
    # What failed, what the provider said, what to change, and that the change is the admin's.
    assert "Refreshing the token failed" in error
    assert "invalid_client" in error and "client authentication failed" in error
    assert "administrator declared this provider" in error
    assert "jupyter_server_config.py" in error


async def test_revoke_in_the_panel_asks_for_confirmation_first(
    jp_serverapp: Any,
    http_server_client: Any,
    browser: Browser,
    panels: list[Any],
    provider: DemoProvider,
) -> None:
    panel = await _authorized_panel(browser, panels)
    store = open_store()
    record = store.get_token("demo", "ada")
    assert record is not None
    revoke = _one(panel, "chat-oauth2-revoke")

    # One click only asks; nothing is revoked. Cancel takes the question back.
    revoke.click()
    question = _one(panel, "chat-oauth2-confirm-box")
    assert question.layout.display != "none"
    assert "Revoke the token for ada at demo" in _read(panel, "chat-oauth2-confirm-text")
    _one(panel, "chat-oauth2-cancel-revoke").click()
    assert question.layout.display == "none"
    assert store.get_token("demo", "ada") is not None
    assert provider.introspect(record.data.token)["active"] is True

    revoke.click()
    assert store.get_token("demo", "ada") is not None
    _one(panel, "chat-oauth2-confirm-revoke").click()  # confirmed
    await _until(lambda: _read(panel, "chat-oauth2-status").startswith("Not authorized"), "revoked")
    assert store.get_token("demo", "ada") is None
    assert provider.introspect(record.data.token)["active"] is False
    assert question.layout.display == "none"


async def test_the_magic_shows_a_declared_alias_that_is_no_preset(
    jp_serverapp: Any, http_server_client: Any, declared: tuple[str, str]
) -> None:
    from chat_oauth2_nb.notebook.magic import _clients, oauth2_magic

    class Shell:
        def __init__(self) -> None:
            self.user_ns: dict[str, Any] = {}

    shell = Shell()
    # "demo" names no preset: the magic finds it among the server's declared providers.
    panel = await asyncio.to_thread(oauth2_magic, "demo --as demo_client", shell)
    client = shell.user_ns["demo_client"]
    try:
        assert panel is not None
        assert isinstance(client.grants, RemoteGrants)
        assert client.config.client_id == declared[0] and client.config.client_secret is None
    finally:
        for key, made in list(_clients.items()):
            made.close()
            del _clients[key]
