"""Cold import cost: chat_oauth2_nb against ``import ipywidgets, httpx``.

Each measurement is a fresh interpreter timing only its import statement; the cases run
interleaved, round after round, so a noisy moment hits all of them. Target: <= 1.10.
"""

from __future__ import annotations

import subprocess
import sys

from _common import header, median, summary

ROUNDS = 10
BASELINE = "import ipywidgets, httpx"
CASES = {
    "import chat_oauth2_nb": "import chat_oauth2_nb",
    "from chat_oauth2_nb import create_oauth2_client": (
        "from chat_oauth2_nb import create_oauth2_client"
    ),
    "... + create_oauth2_client(...) + setup()": (
        "from chat_oauth2_nb import create_oauth2_client"
    ),
    BASELINE: BASELINE,
}
# What a first cell really runs after the import: build the client and pick the redirect.
_FIRST_CELL = """
import tempfile, pathlib
from chat_oauth2_nb.store import Store
d = pathlib.Path(tempfile.mkdtemp())
c = create_oauth2_client(
    {"alias": "x", "authUri": "https://p.example/a", "accessTokenUri": "https://p.example/t"},
    client_id="i", client_secret="s", store=Store(d / "s.sqlite3"), mode="loopback",
)
c.setup()
"""


def measure(name: str, statement: str) -> float:
    extra = _FIRST_CELL if name.startswith("...") else ""
    code = (
        "import time\n"
        "t = time.perf_counter()\n"
        f"{statement}\n"
        f"{extra}\n"
        "print(time.perf_counter() - t)\n" + ("c.close()\n" if extra else "")
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    header("cold import (fresh interpreter each, median of 10, interleaved)")
    for name, statement in CASES.items():  # warm the OS file cache once
        measure(name, statement)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for round_ in range(ROUNDS):
        names = list(CASES)
        names = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in names:
            times[name].append(measure(name, CASES[name]))
    base = median(times[BASELINE])
    for name in CASES:
        m = median(times[name])
        print(f"   {name:<50} {m * 1000:8.1f} ms   ratio {m / base:5.2f}")
    ratio_pkg = median(times["import chat_oauth2_nb"]) / base
    ratio_first = median(times["from chat_oauth2_nb import create_oauth2_client"]) / base
    ratio_cell = median(times["... + create_oauth2_client(...) + setup()"]) / base
    verdict = "met" if max(ratio_pkg, ratio_first) <= 1.10 else "MISSED"
    print(f"   target <= 1.10 vs `{BASELINE}`: {verdict}")
    summary(
        f"imports: import chat_oauth2_nb {ratio_pkg:.3f}x, from chat_oauth2_nb import "
        f"create_oauth2_client {ratio_first:.2f}x, + client + setup() {ratio_cell:.2f}x of "
        f"`{BASELINE}` ({base * 1000:.0f} ms); target <= 1.10 {verdict}"
    )


if __name__ == "__main__":
    main()
