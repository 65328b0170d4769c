"""What asking the provider about the redirect URI costs a start link.

A start link first asks the provider's authorization page whether it knows the flow's
redirect URI (chat_oauth2_nb/lifecycle/probe.py), once per client and redirect URI every
10 minutes. For 40 flows (loopback listener, the demo provider on 127.0.0.1), interleaved:
the start link opened with the answer not yet remembered (the probe asks), and opened with
it remembered (no request); both until the start link's 302. The ratio is the first open's
cost; the demo provider answers in about a millisecond, a real one in tens to hundreds.
Target: remembered opens <= 1.2x a listener that never asks (the remembered path is a
dictionary look-up).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import httpx
from _common import header, median, percentile, summary

from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.demo import start_demo_provider
from chat_oauth2_nb.store import Store

FLOWS = 40


def main() -> None:
    header(f"start link with the redirect URI probe, {FLOWS} flows (loopback, demo provider)")
    provider = start_demo_provider(port=0)
    folder = Path(tempfile.mkdtemp())
    client = create_oauth2_client(
        provider.config(),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        mode="loopback",
        store=Store(folder / "store.sqlite3"),
    )
    client.setup()
    probe = client.ways._loopback._server.probe
    timings: dict[str, list[float]] = {"asks": [], "remembered": [], "never": []}
    refusal = probe.refusal

    def never(flow: object, secrets: object = ()) -> None:
        return None  # a listener that never asks

    try:
        with httpx.Client(follow_redirects=False, trust_env=False) as http:
            kinds = ["asks", "remembered", "never"]
            for n in range(FLOWS):
                for kind in kinds[n % 3 :] + kinds[: n % 3]:  # the order rotates
                    if kind == "asks":
                        probe._accepted.clear()
                    probe.refusal = never if kind == "never" else refusal
                    link = client.get_user_authorization_url(f"user-{n}-{kind}")
                    t0 = time.perf_counter()
                    answer = http.get(str(link))
                    timings[kind].append(time.perf_counter() - t0)
                    assert answer.status_code == 302, answer.text
    finally:
        probe.refusal = refusal
        client.close()
        provider.stop()
        shutil.rmtree(folder, ignore_errors=True)
    med = {kind: median(values) * 1000 for kind, values in timings.items()}
    p95 = {kind: percentile(values, 95) * 1000 for kind, values in timings.items()}
    for kind in timings:
        print(f"   {kind:>10}: p50 {med[kind]:.2f} ms, p95 {p95[kind]:.2f} ms")
    remembered = med["remembered"] / med["never"]
    asks = med["asks"] / med["never"]
    verdict = "met" if remembered <= 1.2 else "NOT met"
    summary(
        f"start link probe: first open {asks:.2f}x, remembered {remembered:.2f}x a listener "
        f"that never asks ({med['never']:.2f} ms); target remembered <= 1.2x {verdict}"
    )


if __name__ == "__main__":
    main()
