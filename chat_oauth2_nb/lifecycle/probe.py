"""Whether the provider knows a flow's redirect URI, asked when a browser opens its start link.

A redirect URI the provider does not have registered shows as the provider's error page in
the browser, and the notebook would wait in silence until the link expires. The Jupyter
server asks first: it requests the provider's authorization URL for the flow's client and
redirect URI itself (a throwaway state and verifier, no cookies, redirects not followed),
reads the answer as the doctor does (:mod:`chat_oauth2_nb.oauth.pages`), and a refusal ends
the flow at once with a :class:`~chat_oauth2_nb.errors.RedirectUriError` whose advice is
the URI to register. A provider that checks only after sign-in, or does not answer in
time, is not caught: the browser then goes on as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import httpx

from ..errors import RedirectUriError
from ..oauth import HttpRequest, authorization_url, new_code_verifier, new_state, redact
from ..oauth.pages import MAX_PAGE_BYTES, judge_authorization_answer
from ..oauth.transport import send
from ..store import PendingFlow

__all__ = ["RedirectProbe"]


class RedirectProbe:
    """Asks a provider's authorization page about a flow's redirect URI; remembers the accepted.

    An accepted (client, redirect URI) is not asked again for ``remember`` seconds, so only
    the first start link of a while waits for the provider.
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        remember: float = 600.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.remember = remember
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        self._accepted: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def refusal(
        self, flow: PendingFlow, secrets: Iterable[str | None] = ()
    ) -> RedirectUriError | None:
        """The provider's refusal of ``flow``'s redirect URI, or None (accepted, or can't tell).

        ``secrets`` (the client secret) are masked in the provider's words quoted in the
        error: the probe never sends one, but the provider knows it and may echo it.
        """
        provider = flow.provider
        if provider is None or not flow.redirect_uri:
            return None
        key = (provider.auth_uri, provider.client_id, flow.redirect_uri)
        with self._lock:
            if self._accepted.get(key, 0.0) > time.monotonic():
                return None
        # A throwaway state and verifier: the flow's own never leave for anywhere but the
        # browser, and the provider's page may echo what it was sent.
        url = authorization_url(
            provider,
            redirect_uri=flow.redirect_uri,
            scopes=flow.scopes,
            state=new_state(),
            code_verifier=new_code_verifier(),
        )
        request = HttpRequest("GET", url, {"Accept": "text/html"}, "")
        answer = send(
            self._http, request, deadline=self.timeout, cap=MAX_PAGE_BYTES, keep_partial=True
        )
        if answer.failure is not None or answer.status is None:
            return None  # can't tell: the browser goes to the provider as always
        judged = judge_authorization_answer(
            flow.redirect_uri,
            url,
            answer.status,
            answer.headers.get("location", ""),
            answer.content,
        )
        if not judged.refused:
            if judged.verdict == "ok":
                with self._lock:
                    self._accepted[key] = time.monotonic() + self.remember
            return None
        evidence = redact(judged.evidence, secrets, provider.client_id)
        return RedirectUriError(
            f"The provider does not accept the redirect URI {flow.redirect_uri} (client "
            f"{provider.client_id!r}). {evidence}",
            hint=f"{judged.action} Then start again with a new link (client."
            "get_user_authorization_url(), or the panel's Authorize).",
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()
