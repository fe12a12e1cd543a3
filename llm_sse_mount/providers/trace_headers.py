"""Trace context onto the upstream request, without touching any provider's signature.

The serving core sets the headers an observation asks for (``Observation.upstream_headers``)
around opening the upstream; the shared upstream plumbing (:mod:`.http`) adds whatever is set
to the request it sends. A context variable carries them: opening runs in the request's task,
so the value is that stream's and no other's. Nothing here imports an optional dependency.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

__all__ = ["outgoing_headers", "sending_headers"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_OUTGOING: ContextVar[Mapping[str, str]] = ContextVar("llm_sse_outgoing_headers", default=_EMPTY)


def outgoing_headers() -> Mapping[str, str]:
    """Headers to add to an upstream request opened now (empty when telemetry is off)."""
    return _OUTGOING.get()


@contextmanager
def sending_headers(headers: Mapping[str, str]) -> Iterator[None]:
    """Add ``headers`` to upstream requests opened inside the ``with`` block."""
    if not headers:  # telemetry off: no context switch at all
        yield
        return
    token = _OUTGOING.set(headers)
    try:
        yield
    finally:
        _OUTGOING.reset(token)
