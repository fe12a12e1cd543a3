"""What happened to one stream: the :class:`CompletionRecord` handed to ``on_complete``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..events import FinishReason, Usage
from ..redaction import log_id

__all__ = ["CompletionRecord", "OnComplete", "report"]

logger = logging.getLogger("llm_sse_mount")


@dataclass(frozen=True, slots=True)
class CompletionRecord:
    """What happened to one stream; handed to ``on_complete`` exactly once.

    ``provider`` is the provider that served the stream (a fallback, if one did); ``duration``
    runs from the request's admission to the stream's end; ``usage`` is the upstream's figure
    or, marked ``usage.estimated``, the mount's estimate."""

    stream_id: str
    model: str
    provider: str
    finish_reason: FinishReason
    usage: Usage | None
    time_to_first_token: float | None
    duration: float
    error_code: str | None
    client_disconnected: bool
    frames: int


OnComplete = Callable[[CompletionRecord], "Awaitable[None] | None"]


async def report(on_complete: OnComplete | None, record: CompletionRecord) -> None:
    """Hand ``record`` to the host's hook; a failing hook is logged, never raised."""
    if on_complete is None:
        return
    try:
        result = on_complete(record)
        if result is not None:
            await result
    except Exception:
        logger.exception("stream %s: on_complete hook failed", log_id(record.stream_id))
