"""Bounded requests to a provider, for the kernel (sync) and the Jupyter server (async).

A provider is not trusted to be small or quick. An answer is read as the bytes on the wire
and decoded here, a piece at a time: both the wire bytes and the decoded bytes stop at
:data:`~chat_oauth2_nb.oauth.MAX_ANSWER_BYTES`, so a compression bomb is refused after 64 KiB
of output, not inflated whole. Each call has one total deadline, covering the connection,
the status line and headers and the body: a provider that trickles one byte every few
seconds never trips a per-read timeout. Both wrappers only move bytes; what the answer means
is decided without I/O in :mod:`chat_oauth2_nb.oauth`, the same way on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
import zlib
from types import TracebackType
from typing import Any

import httpx

from .models import MAX_ANSWER_BYTES, HttpRequest, ProviderAnswer

__all__ = ["ACCEPT_ENCODING", "asend", "send"]

#: The content codings offered to a provider: those decoded here, under the cap. (httpx
#: itself would also offer br and zstd when their packages are installed.)
ACCEPT_ENCODING = "gzip, deflate"


class _TooLarge(Exception):
    pass


class _Deadline(Exception):
    pass


def _failure(exc: Exception) -> str:
    if isinstance(exc, _TooLarge):
        return "too_large"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, (_Deadline, TimeoutError, asyncio.TimeoutError)):
        return "deadline"
    return type(exc).__name__


def _check_length(response: httpx.Response, cap: int) -> None:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _TooLarge


class _Inflate:
    """One gzip or deflate layer, inflated at most ``limit`` bytes per call."""

    def __init__(self, coding: str) -> None:
        gzip = coding in ("gzip", "x-gzip")
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        # "deflate" is zlib-wrapped (RFC 9110 §8.4.1.2), but some servers send it raw.
        self._may_be_raw = not gzip
        self._fed = False

    def inflate(self, data: bytes, limit: int) -> bytes:
        """Up to ``limit`` bytes of output for ``data`` (the rest is never produced)."""
        try:
            out = self._inflater.decompress(data, limit)
        except zlib.error:
            if self._fed or not self._may_be_raw:
                raise httpx.DecodingError("the answer's compressed data is corrupt") from None
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            self._may_be_raw = False
            return self.inflate(data, limit)
        self._fed = self._fed or bool(data)
        return out


class _Body:
    """An answer's body from its bytes on the wire: both those and the decoded ones capped."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c not in ("", "identity")]
        for coding in codings:
            if coding not in ("gzip", "x-gzip", "deflate"):
                # Not offered; decoding it unbounded is what this class exists to avoid.
                raise httpx.DecodingError(f"the answer is encoded as {coding[:20]!r}")
        self._layers = [_Inflate(c) for c in reversed(codings)]  # the last applied goes first
        self._sizes = [0] * (len(self._layers) + 1)  # on the wire, then after each layer
        self._cap = cap
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> None:
        """Take the next bytes off the wire; raise ``_TooLarge`` past the cap at any layer.

        What fits under the cap of the decoded body is kept first, so a caller that cuts a
        page rather than failing it still has the page's start.
        """
        self._count(0, data)
        for i, layer in enumerate(self._layers, start=1):
            # One byte more than fits tells "too large" apart from "exactly the cap".
            data = layer.inflate(data, self._cap - self._sizes[i] + 1)
            if i < len(self._layers):
                self._count(i, data)
        last = len(self._layers)
        room = self._cap - self._sizes[last]
        self._chunks.append(data[:room])
        self._count(last, data)

    def _count(self, layer: int, data: bytes) -> None:
        self._sizes[layer] += len(data)
        if self._sizes[layer] > self._cap:
            raise _TooLarge

    @property
    def content(self) -> bytes:
        """The decoded body."""
        return b"".join(self._chunks)


def _body_of(response: httpx.Response, cap: int) -> _Body:
    """The body reader for ``response``, already fed when the answer came from memory."""
    if response.is_stream_consumed:
        # An answer built in this process (httpx.MockTransport) was read, and decoded, by
        # httpx when it was made: nothing is left on any wire.
        body = _Body("", cap)
        body.feed(response.content)
        return body
    return _Body(response.headers.get("content-encoding", ""), cap)


def _headers(request: HttpRequest, **extra: str) -> httpx.Headers:
    headers = httpx.Headers(request.headers)
    headers["Accept-Encoding"] = ACCEPT_ENCODING
    for name, value in extra.items():
        headers[name] = value
    return headers


def _within(timeout: httpx.Timeout, budget: float) -> httpx.Timeout:
    """The client's per-phase timeouts, none longer than what is left of the deadline."""

    def cap(seconds: float | None) -> float | None:
        if not math.isfinite(budget):
            return seconds
        return budget if seconds is None else min(seconds, budget)

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )


class _Watchdog:
    """Shuts the call's sockets down when the deadline passes, wherever the call is blocked.

    A blocking read cannot be interrupted from another thread, but a socket shut down under
    it returns at once, whether the call waits for the status line, a header byte or the
    body. The sockets are learnt from httpcore's ``trace`` extension as they are connected.
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._armed = True
        self.fired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: keep each socket the call connects (TCP, then TLS)."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)

    def _fire(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self._armed = False
            self.fired = True
            for sock in self._sockets:
                # socket.socket's own shutdown, also for a TLS socket: SSLSocket.shutdown
                # would unwrap TLS under the reading thread's feet. A socket that TLS
                # replaced (detached) or that is closed already raises: nothing to stop.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        if math.isfinite(self._timer.interval):
            self._timer.start()
        return self

    def disarm(self) -> None:
        """The call is over: never touch its sockets again."""
        with self._lock:
            self._armed = False
        self._timer.cancel()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.disarm()


def send(
    http: httpx.Client,
    request: HttpRequest,
    *,
    deadline: float,
    cap: int = MAX_ANSWER_BYTES,
    keep_partial: bool = False,
) -> ProviderAnswer:
    """Send ``request``; read at most ``cap`` bytes, for at most ``deadline`` seconds in all.

    The deadline covers connecting, the status line and headers and the body: each phase's
    timeout is capped at the deadline, and a watchdog shuts the connection down the moment
    it passes. Only a name lookup (``getaddrinfo``) cannot be interrupted. With
    ``keep_partial`` a body past the cap or the deadline is cut, not failed, once the status
    and headers came (the doctor reads a page's start; a token answer is never cut).
    """
    started, t0 = time.time(), time.perf_counter()
    end = time.monotonic() + deadline
    status: int | None = None
    headers: httpx.Headers = httpx.Headers()
    # A connection of its own for every call ("Connection: close"): the watchdog can only
    # shut down sockets it saw connected, and a pooled one was connected by an earlier call.
    # Provider calls are rare (a refresh an hour), so the handshake costs little.
    sent_headers = _headers(request, Connection="close")
    try:
        with (
            _Watchdog(deadline) as watchdog,
            http.stream(
                request.method,
                request.url,
                headers=sent_headers,
                content=request.body,
                timeout=_within(http.timeout, deadline),
                extensions={"trace": watchdog.trace},
            ) as response,
        ):
            status, headers = response.status_code, response.headers
            body = _body_of(response, cap)
            try:
                _check_length(response, cap)
                if not response.is_stream_consumed:
                    for chunk in response.iter_raw():
                        body.feed(chunk)
                        # Also here: a transport the watchdog cannot see (a MockTransport).
                        if time.monotonic() > end:
                            raise _Deadline
            except (httpx.HTTPError, OSError, _TooLarge, _Deadline):
                if not keep_partial:
                    raise
            watchdog.disarm()
            content = body.content
    except (httpx.HTTPError, OSError, _TooLarge, _Deadline) as exc:
        elapsed = (time.perf_counter() - t0) * 1000
        failure = "deadline" if watchdog.fired else _failure(exc)
        if failure == "deadline" and status is None:
            failure = "timeout"  # not a slow answer: no answer at all (as asend says)
        return ProviderAnswer(None, headers, b"", started, elapsed, failure, exception=exc)
    elapsed = (time.perf_counter() - t0) * 1000
    return ProviderAnswer(status, headers, content, started, elapsed)


async def asend(
    http: httpx.AsyncClient,
    request: HttpRequest,
    *,
    deadline: float,
    cap: int = MAX_ANSWER_BYTES,
) -> ProviderAnswer:
    """Async twin of :func:`send`; here the deadline cancels the call the moment it passes."""
    started, t0 = time.time(), time.perf_counter()
    headers: httpx.Headers | None = None

    async def read() -> tuple[int, bytes]:
        nonlocal headers
        async with http.stream(
            request.method, request.url, headers=_headers(request), content=request.body
        ) as response:
            headers = response.headers
            _check_length(response, cap)
            body = _body_of(response, cap)
            if not response.is_stream_consumed:
                async for chunk in response.aiter_raw():
                    body.feed(chunk)
            return response.status_code, body.content

    try:
        status, content = await asyncio.wait_for(read(), timeout=deadline)
    except (httpx.HTTPError, _TooLarge, TimeoutError, asyncio.TimeoutError) as exc:
        elapsed = (time.perf_counter() - t0) * 1000
        failure = _failure(exc)
        if failure == "deadline" and headers is None:
            failure = "timeout"  # not a slow answer: no answer at all
        return ProviderAnswer(None, headers or httpx.Headers(), b"", started, elapsed, failure)
    elapsed = (time.perf_counter() - t0) * 1000
    return ProviderAnswer(status, headers or httpx.Headers(), content, started, elapsed)
