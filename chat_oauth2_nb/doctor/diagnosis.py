"""The coordinator: run every family of checks, in the order a person reads the report."""

from __future__ import annotations

from collections.abc import Callable

from ..users import UserLike
from .clock import check_clock
from .credentials import check_credentials
from .endpoints import check_endpoints
from .metadata import check_metadata
from .redirect import check_redirect
from .report import Report
from .session import Session
from .subject import Subject
from .token import check_token

__all__ = ["FAMILIES", "diagnose"]

# The clock reads the Date headers the earlier checks received, and the credentials and
# redirect checks skip an endpoint the first family found unreachable: the order matters.
FAMILIES: tuple[Callable[[Session], None], ...] = (
    check_endpoints,
    check_metadata,
    check_credentials,
    check_redirect,
    check_clock,
    check_token,
)


def diagnose(subject: Subject, user: UserLike = None) -> Report:
    """Check ``subject``'s provider configuration against the provider; return the report.

    Makes a handful of requests to the provider (one per endpoint, its metadata, one token
    request with a made-up code, the authorization URL without cookies); records nothing in
    the store. ``user`` picks the stored token whose scopes and refresh token are checked.
    """
    session = Session(subject, user)
    try:
        for family in FAMILIES:
            family(session)
    finally:
        session.close()
    return Report(
        alias=subject.config.alias,
        client_id=subject.config.client_id,
        redirect_uri=subject.redirect_uri or None,
        checks=tuple(session.checks),
    )
