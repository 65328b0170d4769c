"""The service's Unix socket: where users' servers send their hub token (``store.hubpeer``).

The socket sits in a folder the service's user owns and no one else may write in, so no
other local user can put a listener at its path; servers also check the listener's uid
before they send anything. The socket itself is open to every local user (0666): servers
run as their users, and each authenticates with its own token.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["DEFAULT_SOCKET", "MAX_SOCKET_PATH", "ensure_socket_folder", "listen_unix"]

log = logging.getLogger("chat_oauth2_nb.hub")

#: Where configure_hub() puts the managed service's socket, in the hub's directory.
DEFAULT_SOCKET = Path("chat_oauth2_nb_run") / "router.sock"
#: sun_path holds 108 bytes on Linux, 104 on macOS, the final NUL included.
MAX_SOCKET_PATH = 103


def ensure_socket_folder(path: Path, *, create: bool) -> int:
    """Check (or make, 0755) the socket's folder; return its owner, the uid servers expect."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigurationError(
            "socket_path",
            f"{path} is longer than a Unix socket's address may be ({MAX_SOCKET_PATH} bytes)",
            "Pass configure_hub(c, socket_path='/srv/chat-oauth2/router.sock') or another "
            "short path in a folder of the hub's user.",
        )
    folder = path.parent
    if create and not folder.exists():
        folder.mkdir(mode=0o755, parents=True)
        # mkdir's mode passes the umask; servers of other users must traverse it.
        folder.chmod(0o755)
    try:
        info = folder.lstat()
    except FileNotFoundError:
        raise ConfigurationError(
            "socket_path",
            f"is in {folder}, which does not exist",
            "Make that folder for the user the service runs as (mode 0755).",
        ) from None
    if not stat.S_ISDIR(info.st_mode) or stat.S_IMODE(info.st_mode) & 0o022:
        raise ConfigurationError(
            "socket_path",
            f"is in {folder}, which is not a folder only its owner may write in "
            f"(mode {stat.S_IMODE(info.st_mode):o})",
            f"Run `chmod 755 {folder}`, or choose a folder of the hub's user.",
        )
    if create:
        _warn_if_closed(folder)
    if create and info.st_uid != os.geteuid():
        raise ConfigurationError(
            "socket_path",
            f"is in {folder}, which belongs to uid {info.st_uid}, not to the hub's user",
            f"Remove {folder} (someone else made it), or choose another socket_path.",
        )
    return info.st_uid


def _warn_if_closed(folder: Path) -> None:
    """Say so when other users could not reach the socket (servers that run as other users)."""
    for place in (folder, *folder.parents):
        if not place.stat().st_mode & stat.S_IXOTH:
            log.warning(
                "chat-oauth2: users' servers that run as other OS users cannot reach the "
                "service's socket in %s: %s is closed to them. Give it o+x, or pass "
                "configure_hub(c, socket_path=...) in a folder they can reach.",
                folder,
                place,
            )
            return


def listen_unix(server: Any, path: Path) -> None:
    """Let the tornado ``server`` also accept connections on the socket at ``path``."""
    from tornado.netutil import bind_unix_socket

    ensure_socket_folder(path, create=True)
    # bind_unix_socket replaces a stale socket left by a crash (and refuses any other file).
    server.add_socket(bind_unix_socket(str(path), mode=0o666))
