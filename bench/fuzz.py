"""10,000 fuzzed callbacks at a real Jupyter server: counts by status, and what must never be.

The server, the pending flows and the query strategy are those of
tests/test_fuzz_callback.py (which runs 2,000 in the test suite). Violations (a 5xx other
than the exchange's 502, a stored token, a changed flow count) are counted, not raised, so
the whole run completes; the script exits 1 if there was any.
"""

from __future__ import annotations

import collections
import shutil
import tempfile
import time
from pathlib import Path

import httpx
from _common import JupyterServer, header, load_fuzz_module, summary
from hypothesis import HealthCheck, Phase, given, settings

from chat_oauth2_nb.demo import start_demo_provider
from chat_oauth2_nb.store import Store

EXAMPLES = 10_000


def main() -> None:
    header(f"fuzzing the callback route: {EXAMPLES} examples")
    fz = load_fuzz_module()
    server = JupyterServer(Path(tempfile.mkdtemp(prefix="bench-fuzz-")), base_url=fz.BASE_URL)
    provider = start_demo_provider()
    server.start()
    statuses: collections.Counter[int] = collections.Counter()
    violations: collections.Counter[str] = collections.Counter()
    try:
        store = Store(server.store_path)
        states = fz.create_pending_flows(server, provider, store, fz.PENDING_FLOWS)
        flows = store.count_flows()
        size_before = server.store_files_size()
        real = [s.encode() for s in states]
        with httpx.Client(trust_env=False, timeout=30) as http:

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(query=fz.callback_queries(states))
            def fuzz(query: bytes) -> None:
                status = fz.send(http, server, query).status_code
                statuses[status] += 1
                if status not in (400, 502):
                    violations[f"HTTP {status}"] += 1
                if status == 502 and not any(s in query for s in real):
                    violations["502 without a real state"] += 1
                if store.list_tokens():
                    violations["token stored"] += 1
                if store.count_flows() != flows:
                    violations["flow rows changed"] += 1

            t0 = time.perf_counter()
            fuzz()
            elapsed = time.perf_counter() - t0
        used = sum(1 for s in states if (f := store.get_flow(s)) and f.status != "pending")
        size_after = server.store_files_size()
        errors = server.errors_logged()
        if errors:
            violations["errors in the server log"] += len(errors)
            print("\n".join(errors[:20]))
    finally:
        server.stop()
        provider.stop()

    total = sum(statuses.values())
    print(f"   {total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s)")
    for status, count in sorted(statuses.items()):
        print(f"   HTTP {status}: {count}")
    print(f"   real pending flows used up by junk codes: {used} of {len(states)}")
    print(f"   store (db + WAL): {size_before} B before, {size_after} B after")
    print(f"   violations: {dict(violations) or 'none'}")
    counts = ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items()))
    summary(
        f"fuzz: {total} callbacks in {elapsed:.0f} s, by status {{{counts}}}; "
        f"violations: {dict(violations) or 'none'}; store {size_before} -> {size_after} B"
    )
    if violations:
        print(f"   server log kept in {server.log_path}")
        raise SystemExit(1)
    shutil.rmtree(server.root, ignore_errors=True)


if __name__ == "__main__":
    main()
