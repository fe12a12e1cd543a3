"""Serving a stream: the ASGI responses that open the upstream, run its producer, and follow
the store with sse-starlette's ``EventSourceResponse`` (pings, disconnects, send timeouts,
cooperative shutdown)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, cast

import anyio
import httpx
from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from .access import Admission
from .errors import LLMSSEError
from .events import Done, Start
from .formats.base import EncoderFactory
from .http_errors import error_response
from .relay import CompletionRecord, Opened, Producer, report
from .request import ChatRequest
from .store.base import StreamStore

if TYPE_CHECKING:
    from .mount import LLMMount

logger = logging.getLogger("llm_sse_mount")

#: Headers that keep proxies from buffering or transforming the stream.
STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-store, no-transform",
    "X-Accel-Buffering": "no",
}


#: ``retry:`` sent in a stream's first frame: how soon an ``EventSource`` reconnects after a
#: dropped connection (the browser default is about 3 s, long for a half-written answer).
RECONNECT_MS = 1000


def new_stream_id() -> str:
    # URL-safe and colon-free, so "<stream_id>:<seq>" splits unambiguously.
    return secrets.token_urlsafe(12)


async def _frames(
    mount: LLMMount,
    stream_id: str,
    after: int,
    encoder_factory: EncoderFactory,
    model: str,
    retry: int | None = None,
    before_done: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    encoder = encoder_factory(stream_id, model)
    # A field line of the first frame's own block, so every frame keeps its id/event/data.
    head = b"" if retry is None else b"retry: %d\n" % retry
    async for batch in mount.store.read(stream_id, after):
        if before_done is not None and batch and isinstance(batch[-1][1], Done):
            # Free the admission (a concurrency slot) before the client can see the end: a
            # client that starts its next stream on `done` must find its slot free.
            await before_done()
        data = encoder.encode(batch)
        if data:
            yield head + data
            head = b""


def _event_source(
    mount: LLMMount, body: AsyncIterator[bytes], headers: Mapping[str, str]
) -> EventSourceResponse:
    s = mount.settings
    return EventSourceResponse(
        body,
        headers={**STREAM_HEADERS, **headers},
        ping=s.ping_interval,
        sep="\n",
        send_timeout=s.send_timeout,
        # sse-starlette only calls set() on it; see shutdown.py.
        shutdown_event=cast(anyio.Event, mount.shutdown_event()),
        shutdown_grace_period=s.shutdown_grace,
    )


async def _serve(response: EventSourceResponse, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        await response(scope, receive, send)
    except SendTimeoutError:
        # The client stopped reading; leaving ends its reader, and the producer follows.
        logger.warning("a client stopped reading; its stream response was ended")


async def _open_unless_disconnected(
    mount: LLMMount, chat: ChatRequest, receive: Receive, client: httpx.AsyncClient
) -> Opened | None:
    """Open the upstream while watching for the client leaving (then the attempt is dropped,
    and with it the upstream request). ``None`` means the client left."""
    opened: Opened | None = None
    failure: LLMSSEError | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        try:
            opened = await mount.relay.open(chat, client)
        except LLMSSEError as exc:
            # Raised outside the task group: anyio would wrap it in an ExceptionGroup.
            failure = exc
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return opened


async def _cancel_when_abandoned(
    producer: Producer, store: StreamStore, stream_id: str, grace: float
) -> None:
    with anyio.CancelScope() as waiting:
        producer.when_done(waiting.cancel)  # at once if the stream has ended already
        await store.wait_abandoned(stream_id, grace)
        producer.cancel("abandoned")


class NewStream:
    """ASGI app for one new stream (returned by a route instead of a Response).

    Client protocols with their own error shape override :meth:`error_response`; protocols
    that answer with something other than an event stream (OpenAI's ``stream: false``)
    override :meth:`respond`, and still get the relay, the producer, timeouts and records.
    """

    def __init__(
        self,
        mount: LLMMount,
        chat: ChatRequest,
        encoder_factory: EncoderFactory,
        headers: Mapping[str, str] | None = None,
        retry: int | None = None,
    ) -> None:
        self.mount = mount
        self.chat = chat
        self.encoder_factory = encoder_factory
        self.headers = dict(headers or {})
        self.retry = retry
        self.admission: Admission | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Admission (authorize, model, limits) for every format, before the upstream opens;
        # the admission (a concurrency slot) is held until the stream is over.
        try:
            admission = await self.mount.access.admit(scope, receive, self.chat)
        except LLMSSEError as exc:
            # In the route's own error shape (OpenAI's for /v1/...), like every early error.
            await self.error_response(exc)(scope, receive, send)
            return
        self.admission = admission
        await admission.run(lambda: self._admitted(scope, receive, send))

    async def _admitted(self, scope: Scope, receive: Receive, send: Send) -> None:
        mount = self.mount
        # The lease keeps the mount's own client alive for the whole stream.
        stream_id = new_stream_id()
        started = time.monotonic()
        async with mount.pool.lease() as client:
            try:
                opened = await _open_unless_disconnected(mount, self.chat, receive, client)
            except LLMSSEError as exc:
                await self.error_response(exc)(scope, receive, send)
                await self._report_unopened(stream_id, started, exc.code)
                return
            if opened is None:
                await self._report_unopened(stream_id, started, None)
                return
            await self._run(stream_id, opened, scope, receive, send)

    async def _report_unopened(self, stream_id: str, started: float, error: str | None) -> None:
        """A stream that never began still gets its one record (failed, or the client left)."""
        logger.info("stream %s not started: %s", stream_id, error or "the client left")
        record = CompletionRecord(
            stream_id=stream_id,
            model=self.chat.model,
            provider=self.mount.provider.name,
            finish_reason="error" if error else "cancelled",
            usage=None,
            time_to_first_token=None,
            duration=time.monotonic() - started,
            error_code=error,
            client_disconnected=error is None,
            frames=0,
        )
        await report(self.mount.on_complete, record)

    async def _run(
        self, stream_id: str, opened: Opened, scope: Scope, receive: Receive, send: Send
    ) -> None:
        mount, store = self.mount, self.mount.store
        try:
            await store.create(stream_id)
            await store.append(stream_id, [Start(stream_id, opened.model)])
        except LLMSSEError as exc:  # e.g. Redis is down: nothing was sent yet, so a 503
            with anyio.CancelScope(shield=True):
                await opened.upstream.aclose()
            await self.error_response(exc)(scope, receive, send)
            await self._report_unopened(stream_id, time.monotonic(), exc.code)
            return
        logger.info(
            "stream %s started: provider=%s model=%s principal=%s",
            stream_id,
            opened.provider.name,
            opened.model,
            self.admission.principal.id if self.admission else None,
        )
        producer = Producer(
            stream_id=stream_id,
            opened=opened,
            store=store,
            timeouts=mount.relay.timeouts,
            shutdown=mount.shutdown_event(),
            on_complete=mount.on_complete,
            secrets=mount.relay.secrets(),
            on_usage=self.admission.on_usage if self.admission else None,
        )
        # The lease tells readers on other workers the producer lives; it outlasts the task
        # group, so the producer's closing frames are written under it.
        async with store.lease(stream_id), anyio.create_task_group() as tg:
            tg.start_soon(producer.run)
            async with store.reader(stream_id):
                await self.respond(stream_id, opened.model, scope, receive, send)
            # This client is done with the stream. If the stream still runs, cancel the
            # upstream once every reader has left for resume_grace (this task would only
            # wait for the producer otherwise, so the waiting costs no task of its own).
            await _cancel_when_abandoned(producer, store, stream_id, mount.settings.resume_grace)

    def error_response(self, exc: LLMSSEError) -> Response:
        """The plain HTTP answer when the stream cannot begin (the upstream refused, ...)."""
        return error_response(exc)

    async def respond(
        self, stream_id: str, model: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Serve the running stream's frames to this client (an event stream by default)."""
        release = self.admission.release if self.admission else None
        body = _frames(self.mount, stream_id, -1, self.encoder_factory, model, self.retry, release)
        await _serve(_event_source(self.mount, body, self.headers), scope, receive, send)


class ResumedStream:
    """ASGI app for a reader that rejoins an existing stream after ``after``."""

    def __init__(
        self,
        mount: LLMMount,
        stream_id: str,
        after: int,
        encoder_factory: EncoderFactory,
        retry: int | None = None,
    ) -> None:
        self.mount = mount
        self.stream_id = stream_id
        self.after = after
        self.encoder_factory = encoder_factory
        self.retry = retry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mount, sid = self.mount, self.stream_id
        # The route checked the stream exists; the reader counts before the first byte so a
        # producer in its grace period sees the reconnect at once.
        try:
            async with mount.store.reader(sid):
                body = _frames(mount, sid, self.after, self.encoder_factory, "", self.retry)
                await _serve(_event_source(mount, body, {}), scope, receive, send)
        except LLMSSEError as exc:  # expired since the route looked (memory store)
            await error_response(exc)(scope, receive, send)
