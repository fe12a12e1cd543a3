"""The provider seam: one upstream vendor = one module implementing :class:`Provider`.

``Provider.open`` sends the request and returns only once the upstream's HTTP status is known
(so the mount can still answer with a plain HTTP error). The returned :class:`UpstreamStream`
yields normalized :data:`~llm_sse_mount.events.ProviderEvent` objects and must close its HTTP
response on ``aclose`` (the relay calls it on every exit path, including client disconnect).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

import httpx

from ..events import ProviderEvent
from ..request import ChatRequest


@runtime_checkable
class UpstreamStream(Protocol):
    """An open upstream answer."""

    def events(self) -> AsyncIterator[ProviderEvent]:
        """The normalized events, in order. Raises :class:`~llm_sse_mount.errors.UpstreamError`
        for a failure the upstream reports mid-stream (an error frame, garbage, a cut)."""
        ...

    async def aclose(self) -> None:
        """Close the upstream response (idempotent)."""
        ...


@runtime_checkable
class Provider(Protocol):
    """An upstream LLM API."""

    #: Short name used in logs, records and ``GET /health`` (``"openai"``, ``"zhipu"``, ...).
    name: str
    #: The model used when neither the request nor the mount names one.
    default_model: str | None
    #: An ``httpx.AsyncClient`` the host injected, or ``None`` to use the mount's own.
    client: httpx.AsyncClient | None

    async def open(self, request: ChatRequest, http: httpx.AsyncClient) -> UpstreamStream:
        """Send ``request`` upstream; return once the status is known and good.

        Raises :class:`~llm_sse_mount.errors.UpstreamError` (or a subclass) when the upstream
        cannot be reached or answers with an error status."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never reach a client or a log (API keys, signing secrets)."""
        ...
