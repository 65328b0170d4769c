"""A real, local, offline OAuth2 authorization server for the tutorial and the tests.

Built on Authlib's server components (authorization code + PKCE, refresh-token rotation
with reuse detection, RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata,
OpenID Connect id_tokens) and the stdlib HTTP server in a daemon thread, so it also runs
inside a Jupyter kernel. It only ever listens on a loopback address.

    from chat_oauth2_nb.demo import start_demo_provider

    provider = start_demo_provider()
    provider.config(alias="demo")   # the seed's keys: authUri, accessTokenUri, ...
    provider.stop()

``python -m chat_oauth2_nb.demo`` runs one from the command line.
"""

from __future__ import annotations

from .provider import DemoProvider, start_demo_provider

__all__ = ["DemoProvider", "start_demo_provider"]
