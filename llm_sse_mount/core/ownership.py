"""Who may rejoin a stream: its owner. Resume and stop, for every protocol that offers them.

A stream records a digest of the principal that started it (:func:`owner_of`); to anyone
else it does not exist (the same 404 as for an unknown id). On an open mount (no
``authorize``) callers are anonymous and the stream id alone is the capability.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound, RateLimited
from ..store.base import StreamInfo
from .context import StreamContext
from .delivery import Reply
from .serving import ResumedStream, owner_of

__all__ = ["owner_of", "resume", "stop"]

#: What our stream ids look like (``secrets.token_urlsafe``); nothing else can exist.
_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


async def _owned(ctx: StreamContext, request: Request, stream_id: str) -> StreamInfo:
    """The stream, if it exists and the caller owns it; to anyone else it does not exist."""
    principal = await ctx.access.principal(request)
    # Ids are ours (token_urlsafe): anything else cannot exist, and must not reach a store
    # key built from it.
    valid = _STREAM_ID.fullmatch(stream_id) is not None
    info = await ctx.store.info(stream_id) if valid else None
    if info is None or (info.owner is not None and info.owner != owner_of(principal)):
        raise NotFound("no such stream, or it has expired", code="stream_not_found")
    return info


async def resume(
    ctx: StreamContext, request: Request, stream_id: str, after: int, reply: Reply
) -> Response:
    """Frames of ``stream_id`` after ``after``, for its owner: 404 for anyone else and for an
    unknown or expired stream, 204 when the client already has the ``done`` frame (an
    ``EventSource`` stops reconnecting on 204; without it, it would reconnect forever after a
    finished answer), 429 when the stream has ``max_readers`` readers already."""
    info = await _owned(ctx, request, stream_id)
    if info.done and after >= info.last_seq:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    limit = ctx.settings.streams.max_readers
    if info.readers >= limit:
        raise RateLimited(
            f"this stream has {limit} readers already", code="too_many_readers", retry_after=1
        )
    return ResumedStream(ctx, stream_id, max(after, -1), reply)


async def stop(ctx: StreamContext, request: Request, stream_id: str) -> Response:
    """End the owner's stream now: ``done{cancelled}`` for every reader, the upstream closed,
    on whichever worker produces it. 204 whether it was running or had ended already."""
    await _owned(ctx, request, stream_id)
    await ctx.store.stop(stream_id)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
