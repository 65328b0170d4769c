"""Waiting and refreshing under real time: cancelled waits stop, leases outlive slow refreshes."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from chat_oauth2_nb import AuthorizationCancelledError
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import utcnow
from chat_oauth2_nb.store import Store

Make = Callable[..., OAuth2Client]


def count_store_reads(client: OAuth2Client, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Times at which anything read a flow from the client's store."""
    reads: list[float] = []
    original = client.store.get_flow

    def counted(state: str) -> Any:
        reads.append(time.monotonic())
        return original(state)

    monkeypatch.setattr(client.store, "get_flow", counted)
    return reads


def test_a_cancelled_async_wait_stops_at_once(
    make_client: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    client.get_user_authorization_url("ada")
    reads = count_store_reads(client, monkeypatch)

    async def scenario() -> float:
        task = asyncio.create_task(client.wait_for_authorization_async("ada", timeout=300))
        await asyncio.sleep(0.3)
        assert not task.done()
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 0.5
    assert reads, "the wait never looked at the store"
    settled = len(reads)
    time.sleep(0.4)
    # Before: the wait ran in a thread that never saw the cancellation and kept polling.
    assert len(reads) <= settled + 1, "the cancelled wait is still polling the store"


def test_close_ends_every_waiter(make_client: Make) -> None:
    client = make_client()
    client.get_user_authorization_url("ada")
    ended: dict[str, tuple[float, BaseException]] = {}

    def sync_wait() -> None:
        try:
            client.wait_for_authorization("ada", timeout=300)
        except BaseException as exc:
            ended["sync"] = (time.monotonic(), exc)

    async def async_wait() -> None:
        try:
            await client.wait_for_authorization_async("ada", timeout=300)
        except BaseException as exc:
            ended["async"] = (time.monotonic(), exc)

    threads = [
        threading.Thread(target=sync_wait),
        threading.Thread(target=lambda: asyncio.run(async_wait())),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    closed_at = time.monotonic()
    client.close()
    for thread in threads:
        thread.join(5)
    assert set(ended) == {"sync", "async"}
    for at, exc in ended.values():
        assert isinstance(exc, AuthorizationCancelledError), exc
        assert "closed" in str(exc)
        assert at - closed_at < 0.5


def test_the_old_async_name_still_works(make_client: Make, provider: DemoProvider) -> None:
    client = make_client()
    url = client.get_user_authorization_url("ada")
    assert provider.approve(url).status_code == 200
    data = asyncio.run(client.await_for_authorization("ada", timeout=10))
    assert provider.introspect(data.token)["active"] is True


# -- the refresh lease against a provider slower than the old fixed 60 s lease --------------

_REFRESHER = r"""
import hashlib, json, sys
from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.store import Store

args = json.loads(sys.argv[1])
client = create_oauth2_client(
    args["config"], client_id=args["client_id"], client_secret=args["client_secret"],
    store=Store(args["store"]), mode="loopback", timeout=args["timeout"],
)
token = client.get_access_token_for_user("ada").token
print(json.dumps({"token": hashlib.sha256(token.encode()).hexdigest(),
                  "requests": len(client.http_log)}), flush=True)
client.close()
"""

SLOW = 62.0  # the provider's delay: longer than the lease used to be (60 s)
TIMEOUT = 70.0  # the person's timeout= allows it


@pytest.mark.timeout(300)
def test_a_slow_refresh_keeps_its_lease_across_processes(
    authorized: Callable[..., OAuth2Client], provider: DemoProvider, store: Store
) -> None:
    client = authorized()
    record = store.get_token("demo", "ada")
    assert record is not None and record.data.refresh_token
    past = utcnow() - dt.timedelta(seconds=10)
    expired = dataclasses.replace(
        record.data, expires_at=past, obtained_at=past - dt.timedelta(seconds=3600)
    )
    store.put_token("demo", "ada", expired, provider=client.provider)
    provider.token_delay = SLOW
    before = provider.token_requests["refresh_token"]
    args = json.dumps(
        {
            "config": provider.config(alias="demo"),
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "store": str(store.path),
            "timeout": TIMEOUT,
        }
    )
    first = subprocess.Popen(
        [sys.executable, "-c", _REFRESHER, args], stdout=subprocess.PIPE, text=True
    )
    # The second process arrives once the first holds the lease and its request is out.
    deadline = time.monotonic() + 30
    while provider.token_requests["refresh_token"] == before:
        assert time.monotonic() < deadline, "the first refresh never reached the provider"
        time.sleep(0.05)
    second = subprocess.Popen(
        [sys.executable, "-c", _REFRESHER, args], stdout=subprocess.PIPE, text=True
    )
    outs = [proc.communicate(timeout=4 * TIMEOUT)[0] for proc in (first, second)]
    provider.token_delay = 0.0
    reports = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    # One refresh request in all; both processes got the same, working token.
    assert provider.token_requests["refresh_token"] - before == 1
    assert [r["requests"] for r in reports] == [1, 0]
    assert reports[0]["token"] == reports[1]["token"]
    fresh = store.get_token("demo", "ada")
    assert fresh is not None and fresh.data.refresh_token
    assert hashlib.sha256(fresh.data.token.encode()).hexdigest() == reports[0]["token"]
    assert provider.introspect(fresh.data.token)["active"] is True
    assert provider.grants_active() >= 1
