"""Helpers shared by the benchmarks: statistics, the machine, reused test machinery."""

from __future__ import annotations

import importlib.util
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
# The tests' shared helpers (tests/support) serve the benchmarks too: one Jupyter harness.
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from support.server import JupyterServer  # noqa: E402

__all__ = [
    "ROOT",
    "JupyterServer",
    "cpu_model",
    "header",
    "load_fuzz_module",
    "machine",
    "median",
    "percentile",
    "summary",
]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linear between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    return (
        f"nproc={os.cpu_count()}, CPU={cpu_model()}, Python {platform.python_version()} "
        f"({sys.implementation.name}), {platform.system()} {platform.release()}"
    )


def header(title: str) -> None:
    print(f"== {title}")
    print(f"   machine: {machine()}")


def summary(text: str) -> None:
    """One line that bench/run.py collects into its summary."""
    print(f"SUMMARY {text}", flush=True)


def load_fuzz_module() -> ModuleType:
    """tests/test_fuzz_callback.py: its pending flows and query strategy."""
    path = ROOT / "tests" / "test_fuzz_callback.py"
    spec = importlib.util.spec_from_file_location("_fuzz_callback", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
