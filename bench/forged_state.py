"""Forged-state rejections per second at the callback of a real Jupyter server.

One keep-alive httpx client with the Jupyter token sends callbacks with random, real-looking
states (43 characters, like ours) and a code; each must be refused with 400. Side by side,
in alternating rounds, the same client calls ``GET {base_url}api/me`` (another small
authenticated Jupyter route), so the ratio shows what the rejection itself costs. The store's
flow rows and file size are read before and after: refusals must not grow it.
"""

from __future__ import annotations

import secrets
import shutil
import string
import tempfile
import time
from pathlib import Path

import httpx
from _common import JupyterServer, header, load_fuzz_module, median, summary

from chat_oauth2_nb.demo import start_demo_provider
from chat_oauth2_nb.store import Store

ROUNDS = 10
PER_ROUND = 300
_ALPHABET = string.ascii_letters + string.digits


def forged_state() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(43))


def store_size(path: Path) -> tuple[int, int]:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


def main() -> None:
    header("forged-state rejections/s at the callback (real Jupyter server, keep-alive client)")
    fz = load_fuzz_module()
    server = JupyterServer(Path(tempfile.mkdtemp(prefix="bench-forged-")), base_url=fz.BASE_URL)
    provider = start_demo_provider()
    server.start()
    try:
        store = Store(server.store_path)
        fz.create_pending_flows(server, provider, store, 5)
        flows_before = store.count_flows()
        db_before, wal_before = store_size(server.store_path)
        callback = server.callback_url
        api = server.url("api/me")
        rejected: list[float] = []
        baseline: list[float] = []
        wrong = 0
        with httpx.Client(trust_env=False, headers=server.headers, timeout=30) as http:
            for _ in range(50):  # connect, log in (cookie), warm up both routes
                http.get(callback, params={"state": forged_state(), "code": "x"})
                http.get(api)
            for round_ in range(ROUNDS):
                queries = [{"state": forged_state(), "code": "junk"} for _ in range(PER_ROUND)]
                jobs = ["reject", "api"] if round_ % 2 == 0 else ["api", "reject"]
                for job in jobs:
                    t0 = time.perf_counter()
                    if job == "reject":
                        for params in queries:
                            wrong += http.get(callback, params=params).status_code != 400
                        rejected.append(PER_ROUND / (time.perf_counter() - t0))
                    else:
                        for _ in range(PER_ROUND):
                            wrong += http.get(api).status_code != 200
                        baseline.append(PER_ROUND / (time.perf_counter() - t0))
        flows_after = store.count_flows()
        db_after, wal_after = store_size(server.store_path)
        tokens = len(store.list_tokens())
    finally:
        server.stop()
        provider.stop()

    rate, base = median(rejected), median(baseline)
    print(f"   forged-state callbacks refused (400)   {rate:8.0f} /s   ({ROUNDS * PER_ROUND} sent)")
    print(f"   GET api/me (same server, same client)  {base:8.0f} /s   ratio {rate / base:5.2f}")
    print(f"   unexpected statuses: {wrong}; tokens stored: {tokens}")
    print(f"   store flow rows: {flows_before} before, {flows_after} after")
    print(
        f"   store file: {db_before} B (+ WAL {wal_before} B) before, "
        f"{db_after} B (+ WAL {wal_after} B) after"
    )
    ok = wrong == 0 and tokens == 0 and flows_after == flows_before and db_after == db_before
    summary(
        f"forged states: {rate:.0f} rejections/s ({rate / base:.2f}x the rate of GET api/me, "
        f"{base:.0f}/s); flow rows {flows_before} -> {flows_after}; store file {db_before} -> "
        f"{db_after} B, WAL {wal_before} -> {wal_after} B; "
        + ("store unchanged" if ok else "PROBLEM: store changed or wrong answers")
    )
    if not ok:
        print(f"   server log kept in {server.log_path}")
        raise SystemExit(1)
    shutil.rmtree(server.root, ignore_errors=True)


if __name__ == "__main__":
    main()
