"""Who a token belongs to: the store key of a user as the notebook (and its server) names them."""

from __future__ import annotations

import getpass
import os
from typing import Any

from .errors import ConfigurationError

__all__ = ["UserLike", "resolve_user"]

#: A user as a caller names one: a str, an object with .id or .username, or None (this notebook's).
UserLike = Any


def resolve_user(user: UserLike = None) -> str:
    """The store key for ``user``: a string, ``.id``/``.username`` of an object, or this notebook's user."""
    if user is None:
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    if isinstance(user, str):
        if not user.strip():
            raise ConfigurationError(
                "user", "is an empty string", "Pass a user id, or None for yourself."
            )
        return user
    for attr in ("id", "username"):
        value = getattr(user, attr, None)
        if isinstance(value, (str, int)) and str(value):
            return str(value)
    raise ConfigurationError(
        "user",
        f"is a {type(user).__name__} without .id or .username",
        "Pass a string, an object with .id or .username, or None for this notebook's user.",
    )
