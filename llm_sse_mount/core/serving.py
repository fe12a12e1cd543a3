"""Serving a stream, written once for every client protocol.

A protocol route parses its body into a :class:`~llm_sse_mount.request.ChatRequest` and returns
:func:`new_stream` (or :func:`resume`) with its :class:`~.delivery.Reply`. The response then::

    admit (authorize, model, limits)            → the protocol's error on refusal
    open the upstream, watching for the client  → the protocol's error on failure; nothing if
                                                  the client left (both recorded once)
    create the stream, append Start             → 503 store_unavailable on failure
    producer task ─ pumps upstream → store      (lease held around it)
    this reader  ─ follows the store → Reply   (SSE via sse-starlette, or one collected answer)
    then: cancel the upstream once every reader has left for resume_grace

Both are real Starlette ``Response`` objects: a host's middleware and tests see what they expect.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import anyio
import httpx
from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ..errors import LLMSSEError
from ..events import Done, Start
from ..providers.capabilities import require_capabilities
from ..providers.trace_headers import sending_headers
from ..redaction import log_id
from ..request import ChatRequest
from .access import Admission, Principal
from .context import StreamContext
from .delivery import Reply
from .observe import NOOP_OBSERVATION, Observation, StreamStart
from .producer import Outcome, Producer
from .records import CompletionRecord, report
from .relay import Opened
from .transport import abort_connection, drained
from .watch import until_disconnected

__all__ = [
    "STREAM_HEADERS",
    "NewStream",
    "ResumedStream",
    "new_stream_id",
    "owner_of",
]

logger = logging.getLogger("llm_sse_mount")

#: Headers that keep proxies from buffering or transforming the stream.
STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-store, no-transform",
    "X-Accel-Buffering": "no",
}


def owner_of(principal: Principal) -> str | None:
    """What a stream records as its owner: a digest of the principal's id (stores never hold
    the id itself). ``None`` for an anonymous caller: on an open mount (no ``authorize``) the
    stream id alone is the capability to read or stop the stream."""
    if principal.anonymous:
        return None
    return hashlib.sha256(b"llm_sse_mount owner\0" + principal.id.encode()).hexdigest()[:32]


def new_stream_id() -> str:
    # URL-safe and colon-free, so "<stream_id>:<seq>" splits unambiguously.
    return secrets.token_urlsafe(12)


#: Incoming headers telemetry may read (W3C trace context); no other header leaves the request.
_TRACE_HEADERS = frozenset((b"traceparent", b"tracestate", b"baggage"))


def _trace_headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name in _TRACE_HEADERS  # ASGI header names are lower-case
    }


async def _frames(
    ctx: StreamContext,
    stream_id: str,
    after: int,
    reply: Reply,
    model: str,
    before_done: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    assert reply.encoder is not None
    encoder = reply.encoder(stream_id, model)
    # A field line of the first frame's own block, so every frame keeps its id/event/data.
    head = b"" if reply.retry_ms is None else b"retry: %d\n" % reply.retry_ms
    async for batch in ctx.store.read(stream_id, after):
        if before_done is not None and batch and isinstance(batch[-1][1], Done):
            # Free the admission (a concurrency slot) before the client can see the end: a
            # client that starts its next stream on `done` must find its slot free.
            await before_done()
        data = encoder.encode(batch)
        if data:
            yield head + data
            head = b""


async def _send_events(
    ctx: StreamContext,
    body: AsyncIterator[bytes],
    reply: Reply,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    s = ctx.settings.streams
    response = EventSourceResponse(
        body,
        headers={**STREAM_HEADERS, **reply.headers},
        ping=s.ping_interval,
        sep="\n",
        send_timeout=s.send_timeout,
        # sse-starlette only calls set() on it; see shutdown.py.
        shutdown_event=cast(anyio.Event, ctx.shutdown),
        shutdown_grace_period=s.shutdown_grace,
    )
    started = False

    async def tracked(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    try:
        # No response outlives max_response_time: a reader draining just fast enough to
        # dodge send_timeout must not hold the stream (and its memory) forever. It ends as a
        # complete response, so the client can resume where it stopped.
        with anyio.move_on_after(s.max_response_time) as limit:
            await response(scope, receive, tracked)
        if limit.cancelled_caught and started:
            with anyio.move_on_after(1.0):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
    except SendTimeoutError:
        # The client stopped reading; leaving ends its reader, and the producer follows. Its
        # socket is aborted: a graceful close would wait for it to read, forever.
        abort_connection(send)
        logger.warning("a client stopped reading; its connection was dropped")
        return
    if ctx.shutdown.is_set():
        # Stopping: whatever a client has not taken by now it will not get; the worker must
        # not wait for it.
        await drained(send, 1.0)
        abort_connection(send, only_if_unsent=True)


async def _collect(
    ctx: StreamContext,
    stream_id: str,
    model: str,
    reply: Reply,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """One answer at the end (``stream: false``). A client that leaves while it waits is a
    reader that left: the upstream is cancelled like for any stream."""
    assert reply.collector is not None
    collector = reply.collector(stream_id, model)

    async def gather() -> bool:
        async for batch in ctx.store.read(stream_id):
            collector.add(batch)
        return True

    if await until_disconnected(receive, gather) is None:
        return
    await collector.response()(scope, receive, send)


async def _cancel_when_abandoned(producer: Producer, ctx: StreamContext, stream_id: str) -> None:
    with anyio.CancelScope() as waiting:
        producer.when_done(waiting.cancel)  # at once if the stream has ended already
        await ctx.store.wait_abandoned(stream_id, ctx.settings.streams.resume_grace)
        producer.cancel(Outcome.ABANDONED)


class NewStream(Response):
    """The response that starts a stream of ``chat`` and serves it as ``reply`` says."""

    def __init__(self, ctx: StreamContext, chat: ChatRequest, reply: Reply) -> None:
        # No body or headers of its own: __call__ sends the stream, or an error response.
        self.ctx = ctx
        self.chat = chat
        self.reply = reply
        self.status_code = 200
        self.background = None
        self.observation: Observation = NOOP_OBSERVATION

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Admission (authorize, model, limits) before the upstream opens; it (a concurrency
        # slot) is held until the stream is over.
        started = time.monotonic()
        ctx = self.ctx
        info = StreamStart(self.chat, self.reply.protocol, ctx.provider.name, _trace_headers(scope))
        self.observation = obs = ctx.observer.start(info)
        try:
            # What the upstream cannot honour (images, a JSON schema) is refused before
            # anything is spent: never a silently unstructured answer.
            require_capabilities(ctx.provider, self.chat)
            admission = await ctx.access.admit(scope, receive, self.chat)
        except LLMSSEError as exc:
            obs.refused(exc)
            await self.reply.error_response(exc)(scope, receive, send)
            return
        principal = admission.principal
        obs.admitted(None if principal.anonymous else principal.id)
        await admission.run(lambda: self._admitted(admission, started, scope, receive, send))

    async def _admitted(
        self, admission: Admission, started: float, scope: Scope, receive: Receive, send: Send
    ) -> None:
        ctx = self.ctx
        stream_id = new_stream_id()
        # The lease keeps the mount's own client alive for the whole stream.
        async with ctx.pool.lease() as client:
            try:
                opened = await until_disconnected(receive, lambda: self._open(client))
            except LLMSSEError as exc:
                await self.reply.error_response(exc)(scope, receive, send)
                await self._report_unopened(stream_id, started, ctx.provider.name, exc.code)
                return
            if opened is None:
                await self._report_unopened(stream_id, started, ctx.provider.name, None)
                return
            await self._run(admission, stream_id, opened, started, scope, receive, send)

    async def _open(self, client: httpx.AsyncClient) -> Opened:
        # The upstream request carries the trace context telemetry asks for.
        with sending_headers(self.observation.upstream_headers):
            return await self.ctx.relay.open(self.chat, client)

    async def _report_unopened(
        self, stream_id: str, started: float, provider: str, error: str | None
    ) -> None:
        """A stream that never began still gets its one record (failed, or the client left)."""
        logger.info("stream %s not started: %s", log_id(stream_id), error or "the client left")
        record = CompletionRecord(
            stream_id=stream_id,
            model=self.chat.model,
            provider=provider,
            finish_reason="error" if error else "cancelled",
            usage=None,
            time_to_first_token=None,
            duration=time.monotonic() - started,
            error_code=error,
            client_disconnected=error is None,
            frames=0,
        )
        self.observation.ended(record)
        await report(self.ctx.on_complete, record)

    async def _run(
        self,
        admission: Admission,
        stream_id: str,
        opened: Opened,
        started: float,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        ctx, store = self.ctx, self.ctx.store
        try:
            await store.create(stream_id, owner_of(admission.principal))
            await store.append(stream_id, [Start(stream_id, opened.model)])
        except LLMSSEError as exc:  # e.g. Redis is down: nothing was sent yet, so a 503
            with anyio.CancelScope(shield=True):
                await opened.upstream.aclose()
            await self.reply.error_response(exc)(scope, receive, send)
            await self._report_unopened(stream_id, started, opened.provider.name, exc.code)
            return
        logger.info(
            "stream %s started: provider=%s model=%s principal=%s",
            log_id(stream_id),
            opened.provider.name,
            opened.model,
            admission.principal.id,
        )
        self.observation.opened(
            opened.provider.name, opened.model, retries=opened.retries, fallbacks=opened.fallbacks
        )
        producer = Producer(
            stream_id=stream_id,
            opened=opened,
            started=started,
            store=store,
            timeouts=ctx.settings.timeouts,
            shutdown=ctx.shutdown,
            on_complete=ctx.on_complete,
            secrets=ctx.relay.secrets(),
            on_usage=admission.on_usage,
            prompt_tokens=admission.prompt_tokens,
            observation=self.observation,
        )
        # The lease tells readers on other workers the producer lives; it outlasts the task
        # group, so the producer's closing frames are written under it. A stop (from any
        # worker) cancels the producer through it.
        stopped = lambda: producer.cancel(Outcome.STOPPED)  # noqa: E731
        async with store.lease(stream_id, stopped), anyio.create_task_group() as tg:
            tg.start_soon(producer.run)
            async with store.reader(stream_id):
                await self._deliver(admission, stream_id, opened.model, scope, receive, send)
            # This client is done with the stream. If the stream still runs, cancel the
            # upstream once every reader has left for resume_grace (this task would only
            # wait for the producer otherwise, so the waiting costs no task of its own).
            await _cancel_when_abandoned(producer, ctx, stream_id)

    async def _deliver(
        self,
        admission: Admission,
        stream_id: str,
        model: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        reply = self.reply
        if reply.collector is not None:
            await _collect(self.ctx, stream_id, model, reply, scope, receive, send)
            return
        body = _frames(self.ctx, stream_id, -1, reply, model, admission.release)
        await _send_events(self.ctx, body, reply, scope, receive, send)


class ResumedStream(Response):
    """The response for a reader that rejoins stream ``stream_id`` after frame ``after``."""

    def __init__(self, ctx: StreamContext, stream_id: str, after: int, reply: Reply) -> None:
        self.ctx = ctx
        self.stream_id = stream_id
        self.after = after
        self.reply = reply
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx, sid = self.ctx, self.stream_id
        # The route checked the stream exists; the reader counts before the first byte so a
        # producer in its grace period sees the reconnect at once.
        try:
            async with ctx.store.reader(sid):
                body = _frames(ctx, sid, self.after, self.reply, "")
                await _send_events(ctx, body, self.reply, scope, receive, send)
        except LLMSSEError as exc:  # expired since the route looked (memory store)
            await self.reply.error_response(exc)(scope, receive, send)
