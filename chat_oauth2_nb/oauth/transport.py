"""Bounded requests to a provider, for the kernel (sync) and the Jupyter server (async).

A provider is not trusted to be small or quick: an answer is streamed and dropped past
:data:`~chat_oauth2_nb.oauth.MAX_ANSWER_BYTES`, and each call has a total deadline as well
as httpx's per-read timeout, because a provider that trickles one byte every few seconds never
trips a read timeout. Both wrappers only move bytes; what the answer means is decided without
I/O in :mod:`chat_oauth2_nb.oauth`, the same way on both sides.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from .models import MAX_ANSWER_BYTES, HttpRequest, ProviderAnswer

__all__ = ["asend", "send"]


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


def send(
    http: httpx.Client, request: HttpRequest, *, deadline: float, cap: int = MAX_ANSWER_BYTES
) -> ProviderAnswer:
    """Send ``request``; read at most ``cap`` bytes, for at most ``deadline`` seconds in all.

    The deadline is checked between reads, and each read is bounded by the client's read
    timeout, so a call ends at the latest one read timeout after its deadline.
    """
    started, t0 = time.time(), time.perf_counter()
    end = time.monotonic() + deadline
    status: int | None = None
    headers: httpx.Headers = httpx.Headers()
    try:
        with http.stream(
            request.method, request.url, headers=request.headers, content=request.body
        ) as response:
            status, headers = response.status_code, response.headers
            _check_length(response, cap)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > cap:
                    raise _TooLarge
                chunks.append(chunk)
                if time.monotonic() > end:
                    raise _Deadline
            content = b"".join(chunks)
    except (httpx.HTTPError, _TooLarge, _Deadline) as exc:
        elapsed = (time.perf_counter() - t0) * 1000
        return ProviderAnswer(None, headers, b"", started, elapsed, _failure(exc))
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
            request.method, request.url, headers=request.headers, content=request.body
        ) as response:
            headers = response.headers
            _check_length(response, cap)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise _TooLarge
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)

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
