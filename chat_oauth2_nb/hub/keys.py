"""The hub-held secret that every user's store key is derived from (``store.keys``).

The secret lives in a 0600 file next to the hub's own secrets (``configure_hub`` makes it
once) or in ``CHAT_OAUTH2_NB_HUB_SECRET``; every router replica must see the same one.
"""

from __future__ import annotations

import binascii
import os
import secrets
import stat
from pathlib import Path

from ..errors import ConfigurationError

__all__ = [
    "HUB_SECRET_ENV",
    "HUB_SECRET_FILE_ENV",
    "ensure_secret_file",
    "load_hub_secret",
]

#: The hub-held secret itself (hex), for replicas fed from a Kubernetes Secret.
HUB_SECRET_ENV = "CHAT_OAUTH2_NB_HUB_SECRET"  # noqa: S105 (a variable name)
#: A file holding the secret (hex); ``configure_hub`` points the managed service at it.
HUB_SECRET_FILE_ENV = "CHAT_OAUTH2_NB_HUB_SECRET_FILE"  # noqa: S105 (a variable name)


def _parse_secret(text: str, where: str) -> bytes:
    try:
        secret = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        secret = b""
    if len(secret) < 32:
        # Never echo the value.
        raise ConfigurationError(
            where,
            "does not hold a hub secret (at least 32 bytes, hex)",
            "Make one with `python -c 'import secrets; print(secrets.token_hex(32))'`.",
        )
    return secret


def ensure_secret_file(path: Path) -> Path:
    """Make the secret file (0600, 32 random bytes in hex) unless it exists; return its path."""
    path = path.resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two hubs starting at once never overwrite each other's secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            "the chat-oauth2 hub secret file",
            f"{path} can be read by other users (mode {mode:o})",
            f"Run `chmod 600 {path}`.",
        )
    return path


def load_hub_secret() -> bytes | None:
    """The hub-held secret from the environment or its file; None when none is configured."""
    value = os.environ.get(HUB_SECRET_ENV, "")
    if value:
        return _parse_secret(value, HUB_SECRET_ENV)
    file = os.environ.get(HUB_SECRET_FILE_ENV, "")
    if not file:
        return None
    path = ensure_secret_file(Path(file))
    return _parse_secret(path.read_text(), str(path))
