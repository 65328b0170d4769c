"""One diagnosis in progress: what every family of checks shares.

A :class:`Session` holds the subject, an HTTP client of its own, what earlier checks found
out (which endpoints answer, the provider's metadata, the Date headers seen) and the checks
so far. Every sentence passes through :func:`~chat_oauth2_nb.oauth.redact` with every secret
the session knows before it is kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from ..config import ProviderConfig
from ..oauth import HttpExchange, HttpRequest, ProviderAnswer, redact
from ..users import UserLike
from .http import fetch
from .report import Check, Verdict
from .subject import Subject

__all__ = ["Session"]


class Session:
    """One diagnosis: the subject, an HTTP client without cookies, and the checks so far."""

    def __init__(self, subject: Subject, user: UserLike) -> None:
        self.subject = subject
        self.config: ProviderConfig = subject.config
        self.user = user
        self.checks: list[Check] = []
        self.dates: list[tuple[str, float, str]] = []  # (url, our time, their Date header)
        self.deadline = subject.timeout
        # Its own HTTP client: no cookies from earlier calls, and redirects never followed.
        self.http = httpx.Client(
            timeout=subject.timeout,
            transport=subject.transport,
            follow_redirects=False,
        )
        self.secrets: list[str | None] = [self.config.client_secret]
        self.metadata: dict[str, Any] | None = None
        self.reachable: dict[str, bool] = {}

    def add(self, check_id: str, title: str, verdict: Verdict, evidence: str, action: str) -> None:
        """Keep one check, its sentences masked with every secret known so far."""
        clean = [redact(s, self.secrets, self.config.client_id) for s in (evidence, action)]
        self.checks.append(Check(check_id, title, verdict, clean[0], clean[1]))

    def request(self, request: HttpRequest) -> tuple[ProviderAnswer, str]:
        """Send ``request`` (no redirect followed); the answer and why none came, if so."""
        answer, failure = fetch(self.http, request, self.deadline)
        self.note(request, answer)
        return answer, failure

    def note(self, request: HttpRequest, answer: ProviderAnswer) -> None:
        """Log the exchange for the person and keep the provider's Date for the clock check."""
        # The person sees every request the doctor made in client.http_log, masked: with
        # every secret the doctor knows, since a provider's page may echo one it never got.
        known = tuple(dict.fromkeys(s for s in (*request.secrets, *self.secrets) if s))
        masked = dataclasses.replace(request, secrets=known, client_id=self.config.client_id)
        self.subject.log(HttpExchange.of(masked, answer))
        date = answer.headers.get("date")
        if date:
            # The provider wrote its Date while we waited: the middle of the wait is our guess.
            midway = answer.started_at + answer.elapsed_ms / 2000
            self.dates.append((request.url, midway, date))

    def close(self) -> None:
        """Close the session's HTTP client."""
        self.http.close()
