"""Run every benchmark, one process each, and print their summaries at the end.

    python bench/run.py            # all of them (about 3 minutes on 2 cores)
    python bench/run.py imports    # only those whose name contains one of the words

Exits non-zero if a benchmark failed or reported a violation.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parent
BENCHES = ["imports", "auth_overhead", "callback_latency", "idle_panels", "forged_state", "fuzz"]
BENCHES += ["hub_router", "change_latency", "start_link_probe"]


def main(argv: list[str]) -> int:
    chosen = [b for b in BENCHES if not argv or any(word in b for word in argv)]
    print(f"machine: {machine()}\n", flush=True)
    summaries: list[str] = []
    failed: list[str] = []
    started = time.perf_counter()
    for name in chosen:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(HERE / f"{name}.py")],
            cwd=HERE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("SUMMARY "):
                summaries.append(line[len("SUMMARY ") :].rstrip())
            else:
                print(line, end="", flush=True)
        proc.stdout.close()
        if proc.wait() != 0:
            failed.append(name)
        print(f"   ({name}: {time.perf_counter() - t0:.0f} s)\n", flush=True)
    print(f"== summary ({time.perf_counter() - started:.0f} s in all)")
    print(f"   machine: {machine()}")
    for line in summaries:
        print(f" - {line}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
