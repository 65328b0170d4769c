"""Who may call the sidebar's API: Jupyter's login, its XSRF check and its Authorizer decide.

A real Jupyter server with an Authorizer that grants ``write`` on ``chat-oauth2`` only when
a test says so: reading works for a read-only user, acting answers 403 in the API's typed
form. A browser logged in by cookie (what the Lab front end is) must send the XSRF token
with a POST: a page on another site can make the browser send the cookie, never the header.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from chat_oauth2_nb.demo import DemoProvider

WRITE = {"allowed": True}


class MaybeReadOnly(Authorizer):
    """Everything, except "write" on chat-oauth2 while WRITE["allowed"] is False."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return bool(resource != "chat-oauth2" or action == "read" or WRITE["allowed"])


@pytest.fixture
def jp_server_config(provider: DemoProvider, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("CHAT_OAUTH2_DEMO_CLIENT_SECRET", provider.client_secret)
    return {
        "ServerApp": {
            "jpserver_extensions": {"chat_oauth2_nb": True},
            "authorizer_class": MaybeReadOnly,
        },
        "ChatOAuth2App": {
            "providers": {"demo": {**provider.config(), "clientId": provider.client_id}}
        },
    }


@pytest.fixture
def write_allowed() -> Any:
    yield WRITE
    WRITE["allowed"] = True


async def test_read_only_users_list_but_cannot_act(
    jp_serverapp: Any, jp_fetch: Any, write_allowed: dict[str, bool]
) -> None:
    write_allowed["allowed"] = False
    state = await jp_fetch("chat-oauth2", "api", "state")
    assert json.loads(state.body)["providers"][0]["alias"] == "demo"
    for action in ("authorize", "refresh", "revoke", "check"):
        refused = await jp_fetch(
            "chat-oauth2", "api", action, "demo", method="POST", body=b"", raise_error=False
        )
        assert refused.code == 403, (action, refused.body)
        assert json.loads(refused.body)["error"]["type"] == "HTTPError"
    write_allowed["allowed"] = True
    allowed = await jp_fetch("chat-oauth2", "api", "authorize", "demo", method="POST", body=b"")
    assert "start_url" in json.loads(allowed.body)


async def test_a_cookie_login_needs_the_xsrf_token_to_act(
    jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_auth_header: dict[str, str]
) -> None:
    token = jp_auth_header["Authorization"].split()[1]
    # Logging in once with the token in the URL, as a person does: the login cookie comes back.
    login = await http_server_client.fetch(f"{jp_base_url}api/status?token={token}")
    page = await http_server_client.fetch(f"{jp_base_url}login")
    cookies = [
        header.split(";", 1)[0]
        for response in (login, page)
        for header in response.headers.get_list("Set-Cookie")
    ]
    xsrf = next(c.split("=", 1)[1] for c in cookies if c.startswith("_xsrf="))
    cookie = "; ".join(cookies)
    url = f"{jp_base_url}chat-oauth2/api/authorize/demo"

    state = await http_server_client.fetch(
        f"{jp_base_url}chat-oauth2/api/state", headers={"Cookie": cookie}
    )
    assert state.code == 200  # a GET needs no XSRF token
    with pytest.raises(HTTPClientError) as forged:
        await http_server_client.fetch(url, method="POST", body=b"", headers={"Cookie": cookie})
    assert forged.value.code == 403
    sent = await http_server_client.fetch(
        url, method="POST", body=b"", headers={"Cookie": cookie, "X-XSRFToken": xsrf}
    )
    assert sent.code == 200 and "start_url" in json.loads(sent.body)
