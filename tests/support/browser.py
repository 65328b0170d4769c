"""A person's browser for loopback flows: opens the start link, keeps its cookie, comes back.

The kit binds each flow to the browser that opened its start link (an HttpOnly cookie the
callback requires), so a test that stops between the provider's redirect and the callback
must carry that cookie as a browser would.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from chat_oauth2_nb.demo import DemoProvider

__all__ = ["Browser"]


class Browser:
    """One browser's cookie jar and the steps a person takes through a flow."""

    def __init__(self, timeout: float = 30.0, headers: dict[str, str] | None = None) -> None:
        self.cookies = httpx.Cookies()
        self.timeout = timeout
        # E.g. a Jupyter server's login, for links and callbacks served by Jupyter.
        self.headers = headers or {}

    def _client(self) -> httpx.Client:
        return httpx.Client(
            timeout=self.timeout, trust_env=False, cookies=self.cookies, headers=self.headers
        )

    def open(self, link: str) -> str:
        """Open a start link; return the provider's authorization URL it redirects to."""
        with self._client() as http:
            start = http.get(link)
            assert start.is_redirect, (start.status_code, start.text)
            self.cookies.update(http.cookies)
        return str(start.headers["location"])

    def callback_location(self, provider: DemoProvider, link: str) -> tuple[str, str]:
        """Open the link and approve, stopping before the callback: (callback URL, code)."""
        redirect = provider.approve(self.open(link), follow_redirect=False)
        assert redirect.status_code in (302, 303), redirect.text
        location = str(redirect.headers["location"])
        return location, parse_qs(urlsplit(location).query)["code"][0]

    def get(self, url: str) -> httpx.Response:
        """Request ``url`` with this browser's cookies (the provider's redirect arriving)."""
        with self._client() as http:
            return http.get(url)
