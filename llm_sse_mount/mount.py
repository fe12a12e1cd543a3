"""``LLMMount``: the assembly. Settings, the parts of a mount, the route table, the lifecycle.

Everything below this module receives the frozen :class:`~.core.context.StreamContext` built
here, never the mount itself.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from .core.access import Access, Authorize
from .core.context import StreamContext
from .core.http_client import ClientPool
from .core.limits import Limiter, Limits, LimitStore
from .core.observe import StreamObserver
from .core.records import OnComplete
from .core.relay import Relay
from .core.shutdown import ShutdownSignal
from .edge import EdgeGuard
from .providers.base import Provider
from .redaction import install_redactor
from .routes import not_found, route_table
from .settings import DEFAULTS, Settings
from .store.base import StreamStore
from .store.memory import MemoryStore
from .telemetry.config import Telemetry, build_telemetry

__all__ = ["LLMMount"]

_R, _T, _Q, _S = DEFAULTS.requests, DEFAULTS.timeouts, DEFAULTS.retry, DEFAULTS.streams


class LLMMount:
    """A streaming chat endpoint, as an ASGI app to mount in any host.

    Example::

        from starlette.applications import Starlette
        from starlette.routing import Mount
        from llm_sse_mount import LLMMount, Zhipu

        llm = LLMMount(provider=Zhipu(api_key="id.secret"), model="glm-4-flash")
        app = Starlette(routes=[Mount("/llm", app=llm)], lifespan=llm.lifespan)

    ``lifespan`` is optional: without it the mount opens its HTTP client on the first stream
    and closes it when the last stream ends.

    Every setting is a keyword argument named as in :class:`~.settings.Settings`' groups, with
    the defaults stated there (durations in seconds; ``None`` switches a timeout off):
    :class:`~.settings.RequestPolicy` (model, allow-list, caps, the body deadline and the
    browser origins allowed: see :mod:`.edge`),
    :class:`~.settings.Timeouts`, :class:`~.settings.RetryPolicy`,
    :class:`~.settings.StreamOptions` (pings, send timeout, grace periods, retention).
    ``docs/configuration.md`` has every setting with its environment variable.

    The parts:

    - ``provider``: the upstream (default: the embedded :class:`~.providers.scripted.Scripted`);
      ``fallbacks``: providers tried in order when it keeps failing.
    - ``store``: where frames live: :class:`~.store.memory.MemoryStore` (one process, the
      default) or :class:`~.store.redis.RedisStore` (several workers). See ``docs/resume.md``.
    - ``http_client``: an ``httpx.AsyncClient`` of the host's for every provider without one.
    - ``on_complete``: called once per stream with a :class:`~.core.records.CompletionRecord`.
    - ``authorize``: who may use the mount (see :mod:`.core.access`; default: anyone).
      ``limits``: :class:`~.core.limits.Limits` per principal (default: none);
      ``limits_store``: where budgets live (default: memory; a
      :class:`~.core.limits.RedisLimitStore` shares them between workers).
    - Telemetry (see ``docs/observability.md``): ``otel``: OpenTelemetry spans and metrics
      (``None``: when ``opentelemetry-api`` is installed and the host has configured an SDK);
      ``metrics``: ``True`` (or a ``prometheus_client.CollectorRegistry``) serves Prometheus
      metrics at ``GET /metrics``; ``log_format``: ``"text"`` or ``"json"``, one line per
      stream end; ``observers``: the host's own
      :class:`~.core.observe.StreamObserver` objects.
    """

    def __init__(
        self,
        provider: Provider | None = None,
        *,
        model: str | None = _R.model,
        models: Iterable[str] = _R.models,
        system_prompt: str | None = _R.system_prompt,
        max_tokens: int | None = _R.max_tokens,
        client_params: Iterable[str] = _R.client_params,
        max_body_bytes: int = _R.max_body_bytes,
        max_messages: int = _R.max_messages,
        max_chars: int = _R.max_chars,
        body_timeout: float | None = _R.body_timeout,
        allowed_origins: Iterable[str] | None = _R.allowed_origins,
        max_images: int = _R.max_images,
        max_image_bytes: int = _R.max_image_bytes,
        ping_interval: float = _S.ping_interval,
        send_timeout: float | None = _S.send_timeout,
        connect_timeout: float | None = _T.connect_timeout,
        first_token_timeout: float | None = _T.first_token_timeout,
        idle_timeout: float | None = _T.idle_timeout,
        total_timeout: float | None = _T.total_timeout,
        retries: int = _Q.retries,
        shutdown_grace: float = _S.shutdown_grace,
        resume_grace: float = _S.resume_grace,
        retention: float = _S.retention,
        max_readers: int = _S.max_readers,
        max_response_time: float | None = _S.max_response_time,
        fallbacks: Sequence[Provider] = (),
        store: StreamStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        on_complete: OnComplete | None = None,
        authorize: Authorize | None = None,
        limits: Limits | None = None,
        limits_store: LimitStore | None = None,
        otel: bool | None = None,
        metrics: Any = False,
        log_format: str | None = None,
        observers: Sequence[StreamObserver] = (),
    ) -> None:
        if provider is None:
            from .providers.scripted import Scripted

            provider = Scripted()
        self.provider = provider
        self.settings: Settings = Settings.from_options(
            model=model or provider.default_model,
            models=tuple(models),
            system_prompt=system_prompt,
            max_tokens=max_tokens,
            client_params=frozenset(client_params),
            max_body_bytes=max_body_bytes,
            max_messages=max_messages,
            max_chars=max_chars,
            body_timeout=body_timeout,
            allowed_origins=None if allowed_origins is None else frozenset(allowed_origins),
            max_images=max_images,
            max_image_bytes=max_image_bytes,
            ping_interval=ping_interval,
            send_timeout=send_timeout,
            connect_timeout=connect_timeout,
            first_token_timeout=first_token_timeout,
            idle_timeout=idle_timeout,
            total_timeout=total_timeout,
            retries=retries,
            shutdown_grace=shutdown_grace,
            resume_grace=resume_grace,
            retention=retention,
            max_readers=max_readers,
            max_response_time=max_response_time,
        )
        s = self.settings
        self.store: StreamStore = store if store is not None else MemoryStore(retention=retention)
        self.pool = ClientPool.for_timeouts(s.timeouts)
        self.relay = Relay(
            (provider, *fallbacks), client=http_client, timeouts=s.timeouts, retry=s.retry
        )
        # Every new stream and the listing routes pass here (see core/access.py).
        # A limiter even without mount-wide limits: a Principal may carry its own.
        self.access = Access(authorize, Limiter(limits or Limits(), limits_store))
        install_redactor(self.relay)
        self.telemetry = _telemetry(s, (provider, *fallbacks), otel, metrics, log_format, observers)
        self.context = StreamContext(
            settings=s,
            provider=provider,
            store=self.store,
            relay=self.relay,
            pool=self.pool,
            access=self.access,
            shutdown=ShutdownSignal(),
            on_complete=on_complete,
            observer=self.telemetry.observer,
        )
        routes = route_table(self.context, _metrics_routes(self.telemetry))
        self.router = Router(routes=routes, default=not_found)
        # Before any route: the Origin check and the body deadline (see edge.py).
        self._edge = EdgeGuard(
            self.router,
            body_timeout=s.requests.body_timeout,
            allowed_origins=s.requests.allowed_origins,
        )

    def __repr__(self) -> str:
        return f"LLMMount(provider={self.provider!r}, model={self.settings.requests.model!r})"

    # --- construction from the environment ---------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LLMMount:
        """Build a mount from ``LLM_SSE_*`` variables (see ``docs/configuration.md``).

        ``LLM_SSE_PROVIDER`` picks the upstream: ``scripted`` (default, no key, no network),
        ``openai`` (any OpenAI-compatible server; ``LLM_SSE_BASE_URL``), ``zhipu``,
        ``anthropic``. ``LLM_SSE_API_KEY`` (or the vendor's own variable) holds the key.
        ``LLM_SSE_STORE`` picks where frames live: ``memory`` (default) or a ``redis://`` /
        ``rediss://`` URL shared by every worker (see :func:`~.store.select.store_from_env`).
        Keyword arguments override what the environment says.
        """
        from .core.access import access_env_overrides
        from .providers.registry import provider_from_env
        from .settings import env_overrides
        from .store.select import store_from_env
        from .telemetry.config import telemetry_env_overrides

        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = env_overrides(env)
        kwargs.update(access_env_overrides(env))
        kwargs.update(telemetry_env_overrides(env))
        if "provider" not in overrides:
            kwargs["provider"] = provider_from_env(env)
        if "store" not in overrides:
            retention = overrides.get("retention", kwargs.get("retention", _S.retention))
            kwargs["store"] = store_from_env(env, retention=retention)
        kwargs.update(overrides)
        return cls(**kwargs)

    # --- lifecycle ---------------------------------------------------------------------------

    def shutdown_event(self) -> ShutdownSignal:
        """Set when the server begins to stop (by sse-starlette's shutdown watcher, or by the
        lifespan); setting it ends every live stream of this mount with ``server_shutdown``."""
        return self.context.shutdown

    def lifespan(self, app: object = None) -> AbstractAsyncContextManager[None]:
        """Keep the HTTP client (and its keep-alive connections) for the host's lifetime:
        ``Starlette(..., lifespan=mount.lifespan)`` or ``FastAPI(lifespan=mount.lifespan)``."""
        return self._lifespan()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with self.pool.pinned():
            try:
                yield
            finally:
                self.context.shutdown.set()
        await self.store.aclose()
        await self.access.aclose()

    async def aclose(self) -> None:
        """Close the mount's own HTTP client and store connections."""
        await self.pool.aclose()
        await self.store.aclose()
        await self.access.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._asgi_lifespan(receive, send)
            return
        await self._edge(scope, receive, send)

    async def _asgi_lifespan(self, receive: Receive, send: Send) -> None:
        # Served as the top-level app (or by a host that forwards lifespan): pin the client.
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with self._lifespan():
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})


def _telemetry(
    settings: Settings,
    providers: Sequence[Provider],
    otel: bool | None,
    metrics: Any,
    log_format: str | None,
    observers: Sequence[StreamObserver],
) -> Telemetry:
    from .errors import CATALOGUE

    # Label values are bounded by what the mount itself knows: its models (a fallback's
    # default model included), its providers, the error catalogue.
    models = settings.requests.allowed_models()
    models += [p.default_model for p in providers if p.default_model]
    return build_telemetry(
        otel=otel,
        metrics=metrics,
        log_format=log_format,
        models=models,
        providers=[p.name for p in providers],
        codes=CATALOGUE,
        observers=observers,
    )


def _metrics_routes(telemetry: Telemetry) -> list[BaseRoute]:
    if telemetry.prometheus is None:
        return []
    from .telemetry.prometheus import MetricsApp

    return [Route("/metrics", MetricsApp(telemetry.prometheus.registry), methods=["GET"])]
