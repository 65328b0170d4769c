"""The credentials check: one token request with a code that cannot exist.

A provider must authenticate the client before it can say the code is bad, so its answer
tells a refused client (``invalid_client``) from an accepted one (``invalid_grant``). The
request is made once, never retried, and records nothing.
"""

from __future__ import annotations

import dataclasses
import secrets as _random

from ..config import credentials_advice
from ..errors import TokenExchangeError
from ..oauth import (
    HttpRequest,
    ProviderAnswer,
    code_exchange_request,
    new_code_verifier,
    parse_error_response,
)
from ..oauth.transport import send
from .http import where
from .report import Finding
from .session import Session

__all__ = ["check_credentials"]

_TITLE = "Client credentials accepted"
# Errors a token endpoint gives a client it does not recognise (GitHub has its own words).
_BAD_CLIENT = {"invalid_client", "unauthorized_client", "incorrect_client_credentials"}
# Errors that mean the client was authenticated and only the made-up code was refused.
_CODE_REFUSED = {"invalid_grant", "bad_verification_code"}


def check_credentials(session: Session) -> None:
    """The ``credentials`` check (skipped when the token endpoint cannot be reached)."""
    url = session.config.access_token_uri
    if not session.reachable.get(url, True):
        session.add("credentials", _TITLE, "skipped", f"{url} cannot be reached.", "")
        return
    request = _probe(session)
    answer = send(session.http, request, deadline=session.deadline)
    session.note(request, answer)
    session.add("credentials", _TITLE, *_judge(session, url, request, answer))


def _probe(session: Session) -> HttpRequest:
    """A token request with a made-up code; its code, verifier and secrets join the session's."""
    redirect_uri = session.subject.redirect_uri
    code = _random.token_urlsafe(32)
    verifier = new_code_verifier()
    session.secrets += [code, verifier]
    request = code_exchange_request(
        session.config,
        code=code,
        redirect_uri=redirect_uri or "",
        code_verifier=verifier,
    )
    if not redirect_uri:
        body = "&".join(p for p in request.body.split("&") if not p.startswith("redirect_uri="))
        request = dataclasses.replace(request, body=body)
    session.secrets += list(request.secrets)
    return request


def _judge(session: Session, url: str, request: HttpRequest, answer: ProviderAnswer) -> Finding:
    """What the token endpoint's answer to the probe says about the client credentials."""
    if answer.status is None:
        return (
            "fail",
            f"The probe token request to {url} got no answer ({answer.failure}).",
            "Check accessTokenUri and the network.",
        )
    status = answer.status
    if 300 <= status < 400:
        target = where(answer.headers.get("location", "")) or "nowhere"
        return (
            "fail",
            f"{url} redirects the token request to {target} instead of answering it.",
            "Put the address it redirects to in accessTokenUri.",
        )
    error = parse_error_response(
        TokenExchangeError,
        "The probe",
        status,
        answer.headers,
        answer.content,
        request.secrets,
        request.client_id,
    )
    words = error.error or ""
    said = f"{words}: {error.error_description}" if error.error_description else words
    if words in _BAD_CLIENT or (status == 401 and words not in _CODE_REFUSED):
        return (
            "fail",
            f"A token request with a made-up code was refused as a bad client "
            f"(HTTP {status}, the provider said {said or 'nothing readable'}).",
            credentials_advice(session.config),
        )
    if words in _CODE_REFUSED:
        return (
            "ok",
            f"A token request with a made-up code was refused only for the code "
            f"({words}): the provider accepted the client credentials ({session.config.client_auth_method}).",
            "",
        )
    return _unclear(url, status, answer, words, said)


def _unclear(url: str, status: int, answer: ProviderAnswer, words: str, said: str) -> Finding:
    """An answer that neither refuses the client nor only the code."""
    if 200 <= status < 300 and not words:
        return (
            "fail",
            f"{url} answered HTTP {status} to a token request with a made-up code.",
            "Check accessTokenUri points at the provider's token endpoint.",
        )
    if words:
        return (
            "warn",
            f"A token request with a made-up code was refused with {said} (HTTP {status}), "
            "which does not tell whether the credentials are right.",
            "Read the provider's words; the credentials are checked for sure at the first "
            "authorization.",
        )
    return (
        "warn",
        f"{url} answered HTTP {status} with {answer.content_type or 'no content type'}, "
        "not an OAuth error.",
        "Check accessTokenUri points at the provider's token endpoint.",
    )
