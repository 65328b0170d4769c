"""The hub-held secret that every user's store key is derived from (``store.keys``).

The secret lives in a 0600 file (``configure_hub`` makes it once) or in
``CHAT_OAUTH2_NB_HUB_SECRET``; every router replica must see the same one. By default the file
is kept away from what it seals: not in the hub's directory, where the service's store and
the hub's database sit (and which backups and volume snapshots copy), but in the hub user's
own configuration folder, ``$XDG_CONFIG_HOME/chat_oauth2_nb/hub_secret`` (``~/.config``),
a 0700 folder. A secret an earlier version made in the hub's directory is moved there, the
same secret, so no stored token is lost.
"""

from __future__ import annotations

import binascii
import os
import secrets
import shutil
import stat
from pathlib import Path

from ..errors import ConfigurationError

__all__ = [
    "HUB_SECRET_ENV",
    "HUB_SECRET_FILE_ENV",
    "LEGACY_SECRET_FILE",
    "default_secret_file",
    "ensure_secret_file",
    "load_hub_secret",
    "service_secret_file",
]

#: The hub-held secret itself (hex), for replicas fed from a Kubernetes Secret.
HUB_SECRET_ENV = "CHAT_OAUTH2_NB_HUB_SECRET"  # noqa: S105 (a variable name)
#: A file holding the secret (hex); ``configure_hub`` points the managed service at it.
HUB_SECRET_FILE_ENV = "CHAT_OAUTH2_NB_HUB_SECRET_FILE"  # noqa: S105 (a variable name)


#: Where versions before 0.1 made the secret: the hub's directory, beside the store it seals.
LEGACY_SECRET_FILE = "chat_oauth2_nb_hub_secret"  # noqa: S105 (a file name)


def default_secret_file() -> Path:
    """``$XDG_CONFIG_HOME/chat_oauth2_nb/hub_secret`` (``~/.config`` by default) of the hub's user."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "chat_oauth2_nb" / "hub_secret"


def service_secret_file(chosen: Path | None) -> Path:
    """The secret file the managed service reads: ``chosen``, or the default (made, or moved).

    Without ``chosen``, a secret left in the hub's directory by an earlier version moves to
    the default place (copied, then removed), so every user's store key stays the same.
    """
    if chosen is not None:
        return ensure_secret_file(chosen)
    path = default_secret_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    legacy = Path(LEGACY_SECRET_FILE).resolve()
    if legacy.is_file() and not path.exists():
        ensure_secret_file(legacy)  # refuse one others could read before moving it
        staged = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out, legacy.open() as source:
            shutil.copyfileobj(source, out)
        os.replace(staged, path)
    if legacy.is_file():
        if not _same_secret(legacy, path):
            raise ConfigurationError(
                "the chat-oauth2 hub secret",
                f"exists twice, different in {legacy} and in {path}",
                f"Keep the one your users' stores were sealed with: move it to {path} (or pass "
                "configure_hub(c, secret_file=...)) and remove the other.",
            )
        legacy.unlink()
    return ensure_secret_file(path)


def _same_secret(one: Path, other: Path) -> bool:
    return one.read_text().strip() == other.read_text().strip()


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
