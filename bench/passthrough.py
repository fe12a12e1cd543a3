"""The floor for a Python relay: Starlette + httpx, bytes forwarded untouched.

No parsing, no re-encoding, no pings: whatever the upstream sends is written downstream as it
arrives (``aiter_raw``). Anything the mount costs on top of this is the price of its features
(SSE decoding, UTF-8 safety, frame ids, store, pings, disconnect handling).

``create_sse_app`` is the same relay answering through sse-starlette's ``EventSourceResponse``
(pings every 15 s, a 30 s send timeout, disconnect detection: the parts the mount is required to
use), so the mount's memory and CPU can be judged against the floor of those parts too.

Run: ``BENCH_UPSTREAM_BASE=http://127.0.0.1:8001/v1 uvicorn --factory bench.passthrough:create_app``
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import httpx
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def create_app() -> Starlette:
    """The plain passthrough: ``StreamingResponse`` over the upstream's raw bytes."""
    return _app(sse=False)


def create_sse_app() -> Starlette:
    """The passthrough through ``EventSourceResponse`` (the upstream's bytes, untouched)."""
    return _app(sse=True)


def _app(*, sse: bool) -> Starlette:
    base = os.environ["BENCH_UPSTREAM_BASE"].rstrip("/")
    # No pool cap: the default (100 connections) would queue streams at 256 and measure the
    # pool's wait, not the relay. Keep-alive stays at httpx's default of 20: httpcore's pool walks
    # (and polls) every idle connection on each request and release, so a large idle pool makes
    # TTFT grow with concurrency (64 idle connections: ~+300 ms at N=64 here; see README).
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    timeout = httpx.Timeout(30.0, pool=None)
    client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal client
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            yield

    async def relay(request: Request) -> Response:
        assert client is not None
        upstream_request = client.build_request(
            "POST",
            base + "/chat/completions",
            content=await request.body(),
            headers={"content-type": "application/json", "authorization": "Bearer bench"},
        )
        upstream = await client.send(upstream_request, stream=True)
        if sse:
            # The mount's default downstream settings; bytes items are sent as they are.
            return EventSourceResponse(
                upstream.aiter_raw(),
                status_code=upstream.status_code,
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
                ping=15,
                sep="\n",
                send_timeout=30.0,
                background=BackgroundTask(upstream.aclose),
            )
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            background=BackgroundTask(upstream.aclose),
        )

    return Starlette(
        routes=[Route("/v1/chat/completions", relay, methods=["POST"])], lifespan=lifespan
    )
