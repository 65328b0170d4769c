"""The Jupyter side of a flow for tests: a client set up in the server, a person's browser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client

__all__ = ["Browser", "jupyter_client"]

Fetch = Callable[..., Awaitable[Any]]


async def jupyter_client(
    provider: DemoProvider, alias: str = "demo", **kwargs: Any
) -> OAuth2Client:
    client = create_oauth2_client(
        provider.config(alias=alias),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        **kwargs,
    )
    # asetup(): setup() may start a loopback listener; keep this event loop free meanwhile.
    await client.asetup()
    return client


class Browser:
    """One person's browser: opens the start link (keeping its cookie), approves, comes back."""

    def __init__(self, jp_fetch: Fetch, provider: DemoProvider) -> None:
        self.fetch, self.provider = jp_fetch, provider
        self.cookies: dict[str, str] = {}

    async def open(self, link: str) -> str:
        """GET the start link; return the provider URL it redirects to."""
        start_id = urlsplit(link).path.rsplit("/", 1)[1]
        response = await self.fetch(
            "chat-oauth2", "start", start_id, follow_redirects=False, raise_error=False
        )
        assert response.code == 302, response.body
        for header in response.headers.get_list("Set-Cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return str(response.headers["Location"])

    async def params(self, link: str, **kw: Any) -> dict[str, str]:
        """Open the link, approve at the provider, return the redirect's query."""
        redirect = self.provider.approve(await self.open(link), follow_redirect=False, **kw)
        assert redirect.status_code in (302, 303), redirect.text
        location = redirect.headers["location"]
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    async def callback(self, params: dict[str, str], alias: str = "demo", **kw: Any) -> Any:
        """The provider's redirect arriving, with this browser's cookies."""
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return await self.fetch(
            "chat-oauth2", "callback", alias, params=params, headers={"Cookie": cookie}, **kw
        )
