"""The provider-config doctor: find what is wrong with a provider set-up before anyone clicks.

:func:`diagnose` runs a handful of checks against the provider, from the kernel, without a
person: do the endpoints answer (TLS, no redirects), does the provider's published metadata
agree with the config, are the client credentials accepted (one token request with a code
that cannot exist), is the redirect URI accepted (a heuristic: the authorization URL is
requested without cookies), is the provider's clock close to ours, and — when a token is
stored — were the requested scopes granted and is there a refresh token.

Every check says only what it can say truthfully: without metadata the metadata checks are
``skipped``, not failed. Nothing is stored (no pending flow, no token) and nothing secret
reaches the report: each sentence passes through :func:`~chat_oauth2_nb.oauth.redact`
with every secret the doctor knows before it is kept.

One module per family of checks (``endpoints``, ``metadata``, ``credentials``,
``redirect``, ``clock``, ``token``), each a function of the :class:`~.session.Session`;
``diagnosis`` runs them in order. What is diagnosed is a :class:`Subject`, never the
notebook's client, which sits above the doctor.
"""

from __future__ import annotations

from .diagnosis import diagnose
from .report import Check, Report, Verdict
from .subject import Subject

__all__ = ["Check", "Report", "Subject", "Verdict", "diagnose"]
