"""The redirect URI check, a heuristic: the authorization URL requested without cookies.

How the answer is read (:func:`~chat_oauth2_nb.oauth.pages.judge_authorization_answer`) is
shared with the Jupyter server, which asks the same when a browser opens a start link.
"""

from __future__ import annotations

from ..oauth import HttpRequest, authorization_url, new_code_verifier, new_state
from ..oauth.pages import judge_authorization_answer
from .session import Session

__all__ = ["check_redirect"]

_TITLE = "Redirect URI accepted (heuristic)"


def check_redirect(session: Session) -> None:
    """The ``redirect_uri`` check (skipped for device code and when authUri cannot be reached)."""
    redirect_uri = session.subject.redirect_uri
    if not redirect_uri:
        session.add(
            "redirect_uri",
            _TITLE,
            "skipped",
            "This client authorizes by device code, without a redirect URI.",
            "",
        )
        return
    if not session.reachable.get(session.config.auth_uri, True):
        session.add("redirect_uri", _TITLE, "skipped", "authUri cannot be reached.", "")
        return
    # A throwaway state and verifier: no flow is recorded, so nothing is left pending.
    url = authorization_url(
        session.config,
        redirect_uri=redirect_uri,
        scopes=session.config.default_scopes,
        state=new_state(),
        code_verifier=new_code_verifier(),
    )
    answer, failure = session.request(HttpRequest("GET", url, {"Accept": "text/html"}, ""))
    if answer.status is None:
        session.add(
            "redirect_uri",
            _TITLE,
            "skipped",
            f"The authorization URL got no answer: {failure}.",
            "",
        )
        return
    headers = answer.headers
    judged = judge_authorization_answer(
        redirect_uri, url, answer.status, headers.get("location", ""), answer.content
    )
    session.add("redirect_uri", _TITLE, judged.verdict, judged.evidence, judged.action)
