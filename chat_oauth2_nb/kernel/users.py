"""Who a token belongs to (the rule lives in the core: the Jupyter server names its user the same way)."""

from __future__ import annotations

from ..users import UserLike, resolve_user

__all__ = ["UserLike", "resolve_user"]
