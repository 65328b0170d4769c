"""Refresh single flight across OS processes (think: a kernel and the Jupyter server).

Two processes with 16 threads each meet one expired token of a provider that rotates
refresh tokens and detects their reuse. Exactly one refresh request may reach it: a
second one would present a used refresh token and the provider would revoke the grant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.oauth import utcnow
from chat_oauth2_nb.store import Store, TokenRecord

THREADS = 16

# One process: build a client on the shared store, park THREADS threads at a gate, say
# "ready", open the gate on "go" (stdin), and report what every thread got (hashed).
_CALLER = r"""
import hashlib, json, sys, threading

import httpx

from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.store import Store

args = json.loads(sys.argv[1])
client = create_oauth2_client(
    args["config"],
    client_id=args["client_id"],
    client_secret=args["client_secret"],
    store=Store(args["store"]),
    mode="loopback",
)
auth = client.auth("ada")
http = httpx.Client(trust_env=False, timeout=30, limits=httpx.Limits(max_connections=64))
gate = threading.Event()
results = [None] * args["threads"]


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def call(i):
    gate.wait()
    try:
        if args["how"] == "get_access_token_for_user":
            results[i] = {"token": digest(client.get_access_token_for_user("ada").token)}
        else:
            response = http.get(args["api_url"], auth=auth)
            bearer = response.request.headers["Authorization"].split(" ", 1)[1]
            results[i] = {"token": digest(bearer), "status": response.status_code}
    except BaseException as exc:  # reported to the test, which fails on it
        results[i] = {"error": repr(exc)}


threads = [threading.Thread(target=call, args=(i,)) for i in range(args["threads"])]
for t in threads:
    t.start()
print("ready", flush=True)
sys.stdin.readline()
gate.set()
for t in threads:
    t.join()
print(json.dumps({"results": results, "requests": len(client.http_log)}), flush=True)
http.close()
client.close()
"""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def expire(store: Store, alias: str, user: str) -> TokenRecord:
    """Make the stored token expired here (the provider would still take it)."""
    record = store.get_token(alias, user)
    assert record is not None
    past = utcnow() - dt.timedelta(seconds=10)
    data = dataclasses.replace(
        record.data, expires_at=past, obtained_at=past - dt.timedelta(seconds=3600)
    )
    stored = store.put_token(alias, user, data, expect_version=record.version)
    assert stored is not None
    return stored


def run_callers(args: dict[str, Any], processes: int = 2) -> list[dict[str, Any]]:
    """Start the caller processes, release them together, return their reports."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CALLER, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                _, err = proc.communicate(timeout=30)
                raise AssertionError(f"caller did not start: {line!r} {err}")
        # Both gates open within microseconds of each other.
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.communicate(timeout=10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None and not stream.closed:
                    stream.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["get_access_token_for_user", "auth"])
def test_two_processes_32_threads_refresh_once(
    authorized: Callable[..., OAuth2Client],
    provider: DemoProvider,
    store: Store,
    tmp_path: Path,
    how: str,
) -> None:
    client = authorized()
    expired = expire(store, "demo", "ada")
    old = expired.data
    sent = provider.token_requests["refresh_token"]
    provider.token_delay = 1.0  # keep the one refresh in flight while everyone piles up
    reports = run_callers(
        {
            "config": provider.config(alias="demo"),
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "store": str(store.path),
            "api_url": provider.api_url,
            "threads": THREADS,
            "how": how,
        }
    )
    provider.token_delay = 0

    results = [r for report in reports for r in report["results"]]
    assert len(results) == 2 * THREADS
    assert [r for r in results if "error" in r] == []
    # Exactly one refresh request reached the provider, from exactly one of the processes.
    assert provider.token_requests["refresh_token"] - sent == 1
    assert sorted(report["requests"] for report in reports) == [0, 1]
    # Every caller in both processes got the same, new token: the stored one.
    stored = store.get_token("demo", "ada")
    assert stored is not None and stored.version == expired.version + 1
    assert stored.data.token != old.token and stored.data.refresh_token != old.refresh_token
    assert {r["token"] for r in results} == {digest(stored.data.token)}
    if how == "auth":
        assert {r["status"] for r in results} == {200}
    # The grant survived: the new tokens are live, and a further refresh works.
    assert provider.introspect(stored.data.token)["active"] is True
    assert provider.introspect(stored.data.refresh_token or "")["active"] is True
    assert provider.introspect(old.refresh_token or "")["active"] is False  # rotated, used once
    again = client.refresh_user_access_token("ada")
    assert again.token != stored.data.token
    assert provider.introspect(again.token)["active"] is True
