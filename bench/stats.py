"""Latency percentiles shared by the ingest and read measurements."""

from __future__ import annotations

import math


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of already sorted values; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]
