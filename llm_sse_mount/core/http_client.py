"""The mount's own ``httpx.AsyncClient``, for providers the host gave no client.

A mounted sub-app gets no lifespan events, so the client cannot simply live "for the app's
lifetime". Two modes, both leaving no connection behind when the host stops:

- leased (default): the client is created on first use and closed as soon as the last stream
  using it ends. Busy servers keep their pool warm; an idle one holds no socket.
- pinned: inside ``async with pool.pinned():`` (what ``LLMMount.lifespan`` and an ASGI
  ``lifespan`` scope do) the client lives until the context exits, so keep-alive connections
  survive idle periods.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import certifi
import httpx

from ..settings import Timeouts

__all__ = ["ClientPool"]


class ClientPool:
    """The mount's own client, made on first use (see the module docstring for its lifetime)."""

    @classmethod
    def for_timeouts(cls, timeouts: Timeouts) -> ClientPool:
        """The pool a mount uses: its client connects within ``connect_timeout`` and reads
        without a deadline of its own (the producer's timeouts bound every read)."""
        connect = timeouts.connect_timeout

        def factory(ssl_context: ssl.SSLContext) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                verify=ssl_context,
                timeout=httpx.Timeout(connect=connect, read=None, write=30.0, pool=connect),
                # No cap on open streams. Few idle connections: reuse saves a TLS handshake per
                # stream, but httpcore walks and polls every pooled connection on each request
                # and release, which the benchmark shows as relay CPU (docs/performance.md).
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=4),
            )

        return cls(factory)

    def __init__(self, factory: Callable[[ssl.SSLContext], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._client: httpx.AsyncClient | None = None
        self._users = 0
        self._pins = 0
        # Building an SSL context costs milliseconds (it parses the CA bundle): do it once.
        self._ssl: ssl.SSLContext | None = None

    @property
    def client(self) -> httpx.AsyncClient | None:
        """The live client, if any (for tests and diagnostics)."""
        return self._client

    def _get(self) -> httpx.AsyncClient:
        if self._client is None:
            if self._ssl is None:
                self._ssl = ssl.create_default_context(cafile=certifi.where())
            self._client = self._factory(self._ssl)
        return self._client

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient]:
        client = self._get()
        self._users += 1
        try:
            yield client
        finally:
            self._users -= 1
            await self._maybe_close(client)

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[None]:
        self._pins += 1
        try:
            yield
        finally:
            self._pins -= 1
            if self._client is not None:
                await self._maybe_close(self._client)

    async def _maybe_close(self, client: httpx.AsyncClient) -> None:
        if self._users == 0 and self._pins == 0 and self._client is client:
            self._client = None
            with anyio.CancelScope(shield=True):
                await client.aclose()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with anyio.CancelScope(shield=True):
                await client.aclose()
