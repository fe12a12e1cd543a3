"""The native event stream (DESIGN.md): ``id: <stream_id>:<seq>``, ``event: <name>``, and one
compact JSON ``data:`` line per frame. JSON escapes every CR and LF inside strings, so a frame's
data is always exactly one line and text is never altered.

Routes: ``POST /chat`` (a JSON body), ``GET /chat?prompt=`` (for ``EventSource``),
``GET /chat/{stream_id}`` to resume after ``Last-Event-ID`` (or ``?after=``), and
``POST /chat/{stream_id}/stop`` (or ``DELETE /chat/{stream_id}``) to stop it: only its owner may
do either. ``?format=text`` serves the same stream as plain text (:mod:`.text`).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..codec import encode
from ..core.context import StreamContext
from ..core.delivery import EncoderFactory, Reply
from ..core.ownership import resume, stop
from ..core.policy import build_request
from ..core.serving import STREAM_HEADERS, NewStream
from ..errors import LLMSSEError, RequestError
from ..events import Frame
from ..request import parse_native_body
from .base import ClientProtocol
from .http import error_response, read_json_body
from .text import TextEncoder

__all__ = ["CHAT_FORMATS", "NATIVE", "RECONNECT_MS", "NativeEncoder"]

#: ``retry:`` sent in a stream's first frame: how soon an ``EventSource`` reconnects after a
#: dropped connection (the browser default is about 3 s, long for a half-written answer).
RECONNECT_MS = 1000


class NativeEncoder:
    """Encodes frames as native SSE events. Stateless; one instance may serve every response."""

    def __init__(self, stream_id: str, model: str = "") -> None:
        self._prefix = f"id: {stream_id}:"

    def encode(self, frames: Sequence[Frame]) -> bytes:
        prefix = self._prefix
        parts = []
        for seq, event in frames:
            name, data = encode(event)
            parts.append(f"{prefix}{seq}\nevent: {name}\ndata: {data}\n\n")
        return "".join(parts).encode()


#: ``?format=`` values of ``/chat`` (the native stream is the default). Both carry ids, so a
#: quick reconnect resumes: every format here is resumable.
CHAT_FORMATS: dict[str, EncoderFactory] = {"native": NativeEncoder, "text": TextEncoder}


def _reply(request: Request) -> Reply:
    name = request.query_params.get("format") or "native"
    if name not in CHAT_FORMATS:
        raise RequestError(
            f"unknown format {name!r} (one of: {', '.join(sorted(CHAT_FORMATS))})",
            code="unknown_format",
            param="format",
        )
    return Reply(error_response, encoder=CHAT_FORMATS[name], retry_ms=RECONNECT_MS, protocol=name)


def _parse_after(raw: str, source: str) -> tuple[str, int]:
    """``<stream_id>:<seq>`` (or a bare seq) → ``(stream_id, seq)``."""
    stream_id, _, seq = raw.strip().rpartition(":")
    try:
        return stream_id, int(seq)
    except ValueError:
        raise RequestError(
            f"{source} must look like '<stream_id>:<seq>' or '<seq>'",
            code="invalid_last_event_id",
            param=source,
        ) from None


def _routes(ctx: StreamContext) -> list[BaseRoute]:
    policy = ctx.settings.requests

    async def chat_post(request: Request) -> Response:
        try:
            reply = _reply(request)
            body = await read_json_body(request, policy.max_body_bytes)
            chat = build_request(policy, parse_native_body(body))
        except LLMSSEError as exc:
            return error_response(exc)
        return NewStream(ctx, chat, reply)

    async def chat_get(request: Request) -> Response:
        if request.method == "HEAD":
            # Starlette answers HEAD on GET routes; it must not cost an upstream call.
            return Response(media_type="text/event-stream", headers=STREAM_HEADERS)
        q = request.query_params
        try:
            reply = _reply(request)
            last_event_id = request.headers.get("last-event-id") or q.get("last_event_id")
            if last_event_id:
                stream_id, after = _parse_after(last_event_id, "Last-Event-ID")
                return await resume(ctx, request, stream_id, after, reply)
            prompt = q.get("prompt")
            if not prompt:
                raise RequestError(
                    "the 'prompt' query parameter is required",
                    code="invalid_request",
                    param="prompt",
                )
            messages: list[dict[str, str]] = []
            if q.get("system"):
                messages.append({"role": "system", "content": q["system"]})
            messages.append({"role": "user", "content": prompt})
            fields = parse_native_body({"messages": messages, "model": q.get("model") or None})
            chat = build_request(policy, fields)
        except LLMSSEError as exc:
            return error_response(exc)
        return NewStream(ctx, chat, reply)

    async def chat_resume(request: Request) -> Response:
        try:
            reply = _reply(request)
            after = request.query_params.get("after")
            if after is not None:
                _, seq = _parse_after(after, "after")
            else:
                header = request.headers.get("last-event-id")
                _, seq = _parse_after(header, "Last-Event-ID") if header else ("", -1)
            return await resume(ctx, request, request.path_params["stream_id"], seq, reply)
        except LLMSSEError as exc:
            return error_response(exc)

    async def chat_stop(request: Request) -> Response:
        try:
            return await stop(ctx, request, request.path_params["stream_id"])
        except LLMSSEError as exc:
            return error_response(exc)

    return [
        Route("/chat", chat_post, methods=["POST"]),
        Route("/chat", chat_get, methods=["GET"]),
        Route("/chat/{stream_id}", chat_resume, methods=["GET"]),
        Route("/chat/{stream_id}", chat_stop, methods=["DELETE"]),
        Route("/chat/{stream_id}/stop", chat_stop, methods=["POST"]),
    ]


NATIVE = ClientProtocol("native", _routes)
