"""What the hub's chat-oauth2 router costs: redirects per second and the latency of its hop.

A real JupyterHub (configurable-http-proxy, DummyAuthenticator, local spawner, the router as
the hub's managed service) on 127.0.0.1, alice logged in at the hub and the router (one
keep-alive httpx client with her cookies, redirects not followed). In interleaved rounds:

- ``router``: the provider's redirect at ``{hub}/services/chat-oauth2/callback/demo`` through
  the proxy to the router, which answers 302 to alice's server (redirects per second);
- ``via router``: that 302 and then the user's server callback it points to (what a browser
  does on a hub);
- ``direct``: the user's server callback through the proxy with no router in between.

Every callback carries a made-up state, so alice's server answers 400 without touching the
provider: the hop is what is measured. Needs jupyterhub and configurable-http-proxy.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
from _common import header, median, percentile, summary
from support.hub import HubBrowser, RealHub

ROUNDS = 12
PER_ROUND = 100


def _timed(http: httpx.Client, url: str, expect: int) -> float:
    t0 = time.perf_counter()
    answer = http.get(url)
    elapsed = time.perf_counter() - t0
    assert answer.status_code == expect, (answer.status_code, url, answer.text[:300])
    return elapsed


def main() -> int:
    header("hub router: redirects/s and the hop's latency (real JupyterHub + proxy, 127.0.0.1)")
    if not (shutil.which("configurable-http-proxy") and shutil.which("jupyterhub")):
        print("   skipped: needs jupyterhub and configurable-http-proxy")
        summary("hub_router: skipped (no configurable-http-proxy)")
        return 0
    root = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    hub = RealHub(root / "hub")
    try:
        hub.start()
        hub.spawn("alice")
        browser = HubBrowser(hub, "alice")
        browser.login()
        # Logs alice in at the router (the hub's OAuth) once; then every call is one hop.
        browser.follow(f"{hub.callback_base}/demo?code=c&state=warm-up")
        query = "code=c&state="
        times: dict[str, list[float]] = {"router": [], "via router": [], "direct": []}
        with httpx.Client(
            cookies=browser.http.cookies, trust_env=False, timeout=30, follow_redirects=False
        ) as http:
            for _ in range(5):  # warm up keep-alive connections on both paths
                http.get(f"{hub.callback_base}/demo?{query}w")
                http.get(f"{hub.url}user/alice/chat-oauth2/callback/demo?{query}w")
            started = time.perf_counter()
            for round_ in range(ROUNDS):
                order = ["router", "via router", "direct"]
                order = order[round_ % 3 :] + order[: round_ % 3]
                for name in order:
                    for _ in range(PER_ROUND):
                        state = secrets.token_urlsafe(32)
                        routed = f"{hub.callback_base}/demo?{query}{state}"
                        server = f"{hub.url}user/alice/chat-oauth2/callback/demo?{query}{state}"
                        if name == "router":
                            times[name].append(_timed(http, routed, 302))
                        elif name == "via router":
                            t0 = time.perf_counter()
                            hop = http.get(routed)
                            assert hop.status_code == 302, hop.text[:300]
                            _timed(http, urljoin(routed, hop.headers["location"]), 400)
                            times[name].append(time.perf_counter() - t0)
                        else:
                            times[name].append(_timed(http, server, 400))
            wall = time.perf_counter() - started
        browser.close()
    finally:
        hub.stop()
        shutil.rmtree(root, ignore_errors=True)

    n = ROUNDS * PER_ROUND
    print(f"   {n} requests each, {ROUNDS} interleaved rounds of {PER_ROUND} ({wall:.0f} s)")
    print(f"   {'path':<12} {'p50':>9} {'p95':>9} {'max':>9} {'per second':>11}")
    for name, values in times.items():
        ms = [1000 * v for v in values]
        print(
            f"   {name:<12} {median(ms):7.2f}ms {percentile(ms, 95):7.2f}ms "
            f"{max(ms):7.2f}ms {len(values) / sum(values):9.0f}/s"
        )
    via, direct = times["via router"], times["direct"]
    added_p95 = 1000 * (percentile(via, 95) - percentile(direct, 95))
    added_p50 = 1000 * (median(via) - median(direct))
    rate = len(times["router"]) / sum(times["router"])
    print(f"   added by the router's hop: p50 {added_p50:.2f} ms, p95 {added_p95:.2f} ms")
    summary(
        f"hub_router: {rate:.0f} redirects/s through proxy + router; the hop adds "
        f"p50 {added_p50:.1f} ms, p95 {added_p95:.1f} ms to a direct hit on the user's server "
        f"(direct p95 {1000 * percentile(direct, 95):.1f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
