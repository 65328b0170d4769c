"""Reaching the hub's chat-oauth2 service without handing the server's API token to an impostor.

A user's server and its kernels send their ``JUPYTERHUB_API_TOKEN`` to the service (for the
store key, and to the broker). On the hub's machine any local user can bind a 127.0.0.1 port
that the service does not hold at that moment (before it starts, while it restarts), so a
fixed port authenticates nobody. The token goes only to a peer that proved who it is:

- over the service's Unix socket (``CHAT_OAUTH2_NB_HUB_SOCKET``, in a folder only the hub may
  write), once the kernel says the listening process runs as the service's uid
  (``SO_PEERCRED``; elsewhere: the socket's folder belongs to that uid and no one else may
  write in it);
- to an ``https`` URL (TLS authenticates the host);
- over plain ``http`` only to another machine (a Kubernetes Service, another container): no
  local user here can bind a port there. An address of this machine is refused.

No proxy from the environment and no redirect is ever followed: the token goes to the service.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import struct
import time
import typing
from urllib.parse import urlsplit

import httpcore
import httpx

from ..errors import UntrustedPeer
from ..routes import HUB_SOCKET_ENV, HUB_SOCKET_UID_ENV

__all__ = ["UntrustedPeer", "hub_client", "is_this_machine"]


def hub_client(url: str, timeout: float) -> httpx.Client:
    """An HTTP client that may carry this server's hub token to the service at ``url``.

    Raises UntrustedPeer (before anything is sent) when no authenticated way to it exists.
    """
    common: dict[str, typing.Any] = {
        "timeout": timeout,
        "trust_env": False,
        "follow_redirects": False,
    }
    path = os.environ.get(HUB_SOCKET_ENV, "").strip()
    missing = ""
    if path:
        try:
            os.stat(path)
        except PermissionError:
            missing = f"; its socket {path} is in a folder this user may not enter"
        except OSError:
            missing = f"; its socket {path} does not exist (is the service running?)"
        else:
            # The URL still names the path and Host; the bytes go through the socket only.
            transport = _PeerCheckedTransport(path, _listener_uid(path))
            return httpx.Client(transport=transport, **common)
    parts = urlsplit(url)
    if parts.scheme == "https":
        return httpx.Client(**common)
    if parts.scheme == "http" and parts.hostname and not is_this_machine(parts.hostname):
        return httpx.Client(**common)
    raise UntrustedPeer(
        f"{url} is plain http to this machine, where any local user may be listening on that "
        f"port{missing}"
    )


def is_this_machine(host: str) -> bool:
    """Whether ``host`` names an address of this machine (where any local user can bind)."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False  # no address: the request fails on its own, and sends nothing
    for family, _, _, _, address in found:
        ip = ipaddress.ip_address(str(address[0]).split("%")[0])
        if ip.is_loopback or ip.is_unspecified:
            return True
        # Binding succeeds for this machine's own addresses only.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address[0], 0, *address[2:]))
            except OSError:
                continue
            return True
    return False


def _listener_uid(path: str) -> int:
    """The uid that must be listening: the hub says so, else the owner of the socket's folder."""
    given = os.environ.get(HUB_SOCKET_UID_ENV, "").strip()
    if given.isdigit():
        return int(given)
    return os.stat(os.path.dirname(os.path.abspath(path))).st_uid


def _peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (Linux), None where unknown."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    credentials = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    return int(struct.unpack("3i", credentials)[1])


def _only_writable_by(path: str, uid: int) -> bool:
    """Whether the socket and its folder belong to ``uid`` and no one else may change them."""
    folder = os.stat(os.path.dirname(os.path.abspath(path)))
    listener = os.stat(path)
    return (
        folder.st_uid == uid
        and listener.st_uid == uid
        and not stat.S_IMODE(folder.st_mode) & (stat.S_IWGRP | stat.S_IWOTH)
    )


class _UnixStream(httpcore.NetworkStream):
    """One connection over the Unix socket, its errors in httpcore's terms (httpx maps them)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes``; b"" at the end."""
        try:
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """All of ``buffer``."""
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()

    def get_extra_info(self, info: str) -> typing.Any:
        """The socket itself (``"socket"``), else nothing."""
        return self._sock if info == "socket" else None


class _PeerCheckingBackend(httpcore.NetworkBackend):
    """Connects to the Unix socket and refuses it unless ``uid`` is listening there."""

    def __init__(self, uid: int) -> None:
        self.uid = uid

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Never: this backend reaches the service's socket only."""
        raise httpcore.ConnectError("the hub's service is reached over its Unix socket only")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect; check the listener's uid before a single byte (the token) is written."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            sock.connect(path)
            uid = _peer_uid(sock)
            trusted = _only_writable_by(path, self.uid) if uid is None else uid == self.uid
        except TimeoutError as exc:
            sock.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            sock.close()  # httpcore's own backend leaves it to the garbage collector
            raise httpcore.ConnectError(str(exc)) from exc
        if not trusted:
            sock.close()
            who = "another user" if uid is None else f"uid {uid}"
            raise UntrustedPeer(
                f"{who}, not the hub's service (uid {self.uid}), is listening on {path}"
            )
        return _UnixStream(sock)

    def sleep(self, seconds: float) -> None:
        """Wait between retries (none are configured)."""
        time.sleep(seconds)


class _PeerCheckedTransport(httpx.HTTPTransport):
    """httpx's own transport over the Unix socket, with the listener's uid checked first."""

    def __init__(self, path: str, uid: int) -> None:
        super().__init__(uds=path, trust_env=False)
        # httpx takes no network backend of its own; the pool it would build, with ours.
        self._pool = httpcore.ConnectionPool(uds=path, network_backend=_PeerCheckingBackend(uid))
