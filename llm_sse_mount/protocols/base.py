"""The client-protocol seam: a protocol is one module that declares a :class:`ClientProtocol`.

The module parses its bodies into :class:`~llm_sse_mount.request.ChatRequest` (through the
mount's policy, :func:`~llm_sse_mount.core.policy.build_request`), encodes frames (a
:class:`~llm_sse_mount.core.delivery.Encoder`, or a
:class:`~llm_sse_mount.core.delivery.Collector` for a non-streamed answer), answers errors in
its own shape, and says whether it offers resume (``Reply.retry_ms``). Serving the stream is
the core's (:mod:`llm_sse_mount.core.serving`). The assembly holds the table of protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.routing import BaseRoute

from ..core.context import StreamContext

__all__ = ["ClientProtocol"]


@dataclass(frozen=True, slots=True)
class ClientProtocol:
    """A client protocol: a name (for logs and metrics) and its routes, built for one mount's
    stream context."""

    name: str
    routes: Callable[[StreamContext], list[BaseRoute]]
