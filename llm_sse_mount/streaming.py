"""Serving a stream: the ASGI responses that open the upstream, run its producer, and follow
the store with sse-starlette's ``EventSourceResponse`` (pings, disconnects, send timeouts,
cooperative shutdown)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import anyio
import httpx
from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.types import Message, Receive, Scope, Send

from .access import Admission
from .errors import LLMSSEError
from .events import Done, Start
from .formats.base import EncoderFactory
from .http_errors import error_response
from .relay import Opened, Producer
from .request import ChatRequest

if TYPE_CHECKING:
    from .mount import LLMMount

logger = logging.getLogger("llm_sse_mount")

#: Headers that keep proxies from buffering or transforming the stream.
STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-store, no-transform",
    "X-Accel-Buffering": "no",
}


def new_stream_id() -> str:
    # URL-safe and colon-free, so "<stream_id>:<seq>" splits unambiguously.
    return secrets.token_urlsafe(12)


async def _frames(
    mount: LLMMount,
    stream_id: str,
    after: int,
    encoder_factory: EncoderFactory,
    model: str,
    before_done: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    encoder = encoder_factory(stream_id, model)
    async for batch in mount.store.read(stream_id, after):
        if before_done is not None and batch and isinstance(batch[-1][1], Done):
            # Free the admission (a concurrency slot) before the client can see the end: a
            # client that starts its next stream on `done` must find its slot free.
            await before_done()
        data = encoder.encode(batch)
        if data:
            yield data


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
        shutdown_event=mount.shutdown_event(),
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


class NewStream:
    """ASGI app for one new stream (returned by a route instead of a Response)."""

    def __init__(
        self,
        mount: LLMMount,
        chat: ChatRequest,
        encoder_factory: EncoderFactory,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.mount = mount
        self.chat = chat
        self.encoder_factory = encoder_factory
        self.headers = dict(headers or {})
        self.admission: Admission | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Admission (authorize, model, limits) for every format, before the upstream opens;
        # the admission (a concurrency slot) is held until the stream is over.
        try:
            admission = await self.mount.access.admit(scope, receive, self.chat)
        except LLMSSEError as exc:
            await error_response(exc)(scope, receive, send)
            return
        self.admission = admission
        await admission.run(lambda: self._admitted(scope, receive, send))

    async def _admitted(self, scope: Scope, receive: Receive, send: Send) -> None:
        mount = self.mount
        # The lease keeps the mount's own client alive for the whole stream.
        async with mount.pool.lease() as client:
            try:
                opened = await _open_unless_disconnected(mount, self.chat, receive, client)
            except LLMSSEError as exc:
                await error_response(exc)(scope, receive, send)
                return
            if opened is None:
                return
            await self._run(opened, scope, receive, send)

    async def _run(self, opened: Opened, scope: Scope, receive: Receive, send: Send) -> None:
        mount, store = self.mount, self.mount.store
        stream_id = new_stream_id()
        await store.create(stream_id)
        await store.append(stream_id, [Start(stream_id, opened.model)])
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
            resume_grace=mount.settings.resume_grace,
            shutdown=mount.shutdown_event(),
            on_complete=mount.on_complete,
            secrets=mount.relay.secrets(),
            on_usage=self.admission.on_usage if self.admission else None,
        )
        # Count this reader before the producer starts, so it is never seen as abandoned.
        async with anyio.create_task_group() as tg, store.reader(stream_id):
            tg.start_soon(producer.run)
            release = self.admission.release if self.admission else None
            body = _frames(mount, stream_id, -1, self.encoder_factory, opened.model, release)
            await _serve(_event_source(mount, body, self.headers), scope, receive, send)


class ResumedStream:
    """ASGI app for a reader that rejoins an existing stream after ``after``."""

    def __init__(
        self,
        mount: LLMMount,
        stream_id: str,
        after: int,
        encoder_factory: EncoderFactory,
    ) -> None:
        self.mount = mount
        self.stream_id = stream_id
        self.after = after
        self.encoder_factory = encoder_factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = self.mount.store
        try:
            async with store.reader(self.stream_id):
                body = _frames(self.mount, self.stream_id, self.after, self.encoder_factory, "")
                await _serve(_event_source(self.mount, body, {}), scope, receive, send)
        except LLMSSEError as exc:
            await error_response(exc)(scope, receive, send)
