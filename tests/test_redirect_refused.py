"""A redirect URI the provider does not know fails at the start link, with the URI to register.

A real Jupyter server (pytest-jupyter) with the extension and the real demo provider, whose
client is registered with another redirect URI than the server's callback. The browser
opens the start link: the server asks the provider's authorization page first, the
provider answers that the redirect_uri is not registered, and the flow ends there: the
browser gets the advice instead of the provider's error page, and the notebook's wait ends
with RedirectUriError at once instead of after the link's lifetime.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus, urlsplit

import pytest
from support.jupyter import Browser
from support.scan import assert_no_secret, nasty_secret

from chat_oauth2_nb import RedirectUriError, create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth.pages import judge_authorization_answer

Fetch = Callable[..., Awaitable[Any]]
REGISTERED = "https://jupyter.example.org/user/ada/chat-oauth2/callback/demo"


async def _client(provider: DemoProvider, **registration: Any) -> OAuth2Client:
    client_id, secret = provider.register_client(**registration)
    client = create_oauth2_client(
        provider.config(alias="demo"), client_id=client_id, client_secret=secret
    )
    await client.asetup()
    return client


async def _open(jp_fetch: Fetch, link: str) -> Any:
    start_id = urlsplit(link).path.rsplit("/", 1)[1]
    return await jp_fetch(
        "chat-oauth2", "start", start_id, follow_redirects=False, raise_error=False
    )


async def test_an_unregistered_redirect_uri_ends_the_flow_at_the_start_link(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider
) -> None:
    client = await _client(provider, redirect_uris=[REGISTERED])
    try:
        assert client.way == "jupyter"
        uri = client.redirect_uri
        assert uri is not None and uri != REGISTERED
        link = client.get_user_authorization_url("ada")

        opened = await _open(jp_fetch, link)

        # The browser is not sent to the provider's error page: our page says what to do.
        assert opened.code == 400 and "Location" not in opened.headers
        page = html.unescape(opened.body.decode())
        assert f"Register exactly {uri} as a redirect URI of this client at the provider." in page
        # The notebook's wait ends now, with the same advice.
        with pytest.raises(RedirectUriError) as caught:
            await asyncio.to_thread(client.wait_for_authorization, "ada", 60)
        said = str(caught.value)
        assert said.startswith(
            f"The provider does not accept the redirect URI {uri} (client "
            f"{client.config.client_id!r}). The provider refuses the authorization request "
            "(HTTP 400) with a page about the redirect URI: "
        )
        assert "The redirect_uri is not registered for this client" in said
        assert caught.value.hint == (
            f"Register exactly {uri} as a redirect URI of this client at the provider. Then "
            "start again with a new link (client.get_user_authorization_url(), or the panel's "
            "Authorize)."
        )
        # Its fix is at the provider: never another way to authorize.
        for other_way in ("device", "code instead", "paste", "mode="):
            assert other_way not in said
        assert_no_secret(said + page, [client.config.client_secret], "the refusal")
    finally:
        client.close()


async def test_a_registered_redirect_uri_goes_on_to_the_provider(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider
) -> None:
    client = await _client(provider)  # any loopback redirect URI: the server's is one
    try:
        browser = Browser(jp_fetch, provider)
        for user in ("ada", "bob"):  # the second start is not asked again (remembered)
            link = client.get_user_authorization_url(user)
            params = await browser.params(link)
            answer = await browser.callback(params)
            assert answer.code == 200
            data = await asyncio.to_thread(client.wait_for_authorization, user, 60)
            assert data.token
    finally:
        client.close()


async def test_a_provider_echoing_the_secret_in_its_refusal_does_not_put_it_in_the_error(
    jp_fetch: Fetch, jp_serverapp: Any, provider: DemoProvider
) -> None:
    """The probe never sends the secret, but the provider knows it and may repeat it."""
    secret = nasty_secret("GOCSPX-")
    client = await _client(provider, client_secret=secret)
    page = (
        f"<html><body><h1>redirect_uri_mismatch</h1><p>{secret} {quote_plus(secret)}</p>"
        "</body></html>"
    )
    provider.inject_fault("authorize", status=400, body=page, times=1)
    try:
        opened = await _open(jp_fetch, client.get_user_authorization_url("ada"))
        assert opened.code == 400
        with pytest.raises(RedirectUriError) as caught:
            await asyncio.to_thread(client.wait_for_authorization, "ada", 60)
        assert "redirect_uri_mismatch" in str(caught.value)
        assert_no_secret(
            str(caught.value) + opened.body.decode(),
            [secret],
            "the refusal",
            client_ids=[client.config.client_id],
        )
    finally:
        client.close()


URI = "http://localhost:8888/chat-oauth2/callback/acme"
AUTH = "https://provider.example/authorize?client_id=x"


@pytest.mark.parametrize(
    ("status", "location", "page", "refused"),
    [
        # Google: its own error page, before sign-in.
        (400, "", b"<h1>Error 400: redirect_uri_mismatch</h1><p>Access blocked</p>", True),
        # Microsoft Entra: AADSTS50011.
        (
            400,
            "",
            b"AADSTS50011: The redirect URI specified in the request does not match the "
            b"redirect URIs configured for the application.",
            True,
        ),
        # GitHub: to the registered callback, with the error in its query.
        (302, "https://elsewhere.example/cb?error=redirect_uri_mismatch&state=s", b"", True),
        # A 4xx about something else that merely mentions the redirect: the flow goes on.
        (403, "", b"Please sign in first; you will be sent to the redirect URL after.", False),
        # A sign-in page, or the sign-in redirect: the provider may check only later.
        (200, "", b"<form><input name=login></form>", False),
        (302, "https://provider.example/login?next=/authorize", b"", False),
    ],
)
def test_what_stops_a_flow_at_the_start_link(
    status: int, location: str, page: bytes, refused: bool
) -> None:
    judged = judge_authorization_answer(URI, AUTH, status, location, page)
    assert judged.refused is refused
    if refused:
        assert judged.action == (
            f"Register exactly {URI} as a redirect URI of this client at the provider."
        )
