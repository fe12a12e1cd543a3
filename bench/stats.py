"""Small statistics over the load generator's per-stream records (no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

EXPECTED_TOKENS = 64


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100) of an already sorted sequence."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize_streams(
    streams: Iterable[dict[str, Any]], expected: int = EXPECTED_TOKENS
) -> dict[str, Any]:
    """TTFT and gap percentiles (ms) over streams pooled from any number of phases."""
    ttfts: list[float] = []
    gaps: list[float] = []
    count = tokens = errors = short = 0
    first_error = None
    for stream in streams:
        count += 1
        tokens += stream["tokens"]
        if stream["ttft"] is not None:
            ttfts.append(stream["ttft"])
        gaps.extend(stream["gaps"])
        if stream["error"]:
            errors += 1
            first_error = first_error or stream["error"]
        elif stream["tokens"] != expected:
            short += 1
    ttfts.sort()
    gaps.sort()
    return {
        "streams": count,
        "tokens": tokens,
        "errors": errors,
        "short_streams": short,
        "first_error": first_error,
        "ttft_samples": len(ttfts),
        "ttft_p50": percentile(ttfts, 50),
        "ttft_p99": percentile(ttfts, 99),
        "ttft_max": ttfts[-1] if ttfts else None,
        "gap_samples": len(gaps),
        "gap_p50": percentile(gaps, 50),
        "gap_p99": percentile(gaps, 99),
        "gap_max": gaps[-1] if gaps else None,
    }


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b
