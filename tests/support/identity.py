"""A Jupyter identity for tests where the person keeps one name across logins, as on a hub.

Jupyter's token login names every new session a fresh anonymous user, so a flow started
before a session expired would belong to "another user" after logging in again.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import PasswordIdentityProvider, User

__all__ = ["OnePerson"]


class OnePerson(PasswordIdentityProvider):  # type: ignore[misc]
    """Every token login is the same person, ``ada``."""

    def generate_anonymous_user(self, handler: Any) -> User:
        """The one person's user (Jupyter's default makes up a new one per login)."""
        return User("ada", "Ada", "Ada", "A", None, None)
