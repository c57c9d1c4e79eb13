"""Helpers shared by the benchmark scripts: timing, tables and the data location."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def movielens_source() -> str:
    """Find ml-latest-small the same way the tests do (environment, ../shared, data/, download)."""
    from tests.conftest import find_movielens

    return find_movielens()


def timings(fn: Callable[[], object], repeat: int, warmup: int = 3) -> np.ndarray:
    """Return ``repeat`` wall-clock durations of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeat)
    for i in range(repeat):
        started = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - started
    return out


def ms(values: np.ndarray, q: float) -> str:
    return f"{np.percentile(values, q) * 1e3:.3f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return a Markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *map(line, cells)])


def machine() -> str:
    """Describe this machine in one line."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
