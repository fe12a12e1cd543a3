"""``LLMMount``: the ASGI app a host mounts. Configuration, routes and lifecycle."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from .access import Access, Authorize, access_env_overrides
from .errors import ConfigError, LLMSSEError, NotFound, RequestError
from .formats.aisdk import ai_sdk_chat_endpoint
from .formats.base import EncoderFactory
from .formats.native import NativeEncoder
from .formats.openai_routes import openai_routes
from .formats.text import TextEncoder
from .http_client import ClientPool
from .http_errors import error_response, read_json_body
from .limits import Limiter, Limits, LimitStore
from .protocols.responses import responses_routes
from .providers.base import Provider
from .providers.capabilities import require_capabilities
from .redaction import install_redactor
from .relay import OnComplete, Relay, RetryPolicy, Timeouts
from .request import ChatRequest, Message, check_images, parse_native_body
from .settings import CLIENT_PARAMS, MountSettings, env_overrides
from .shutdown import ShutdownSignal
from .store.base import StreamStore
from .store.memory import MemoryStore
from .streaming import RECONNECT_MS, STREAM_HEADERS, NewStream, ResumedStream

__all__ = ["LLMMount"]

logger = logging.getLogger("llm_sse_mount")

#: ``?format=`` values of ``/chat`` (the native stream is the default).
CHAT_FORMATS: dict[str, EncoderFactory] = {"native": NativeEncoder, "text": TextEncoder}

#: What our stream ids look like (``secrets.token_urlsafe``); nothing else can exist.
_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class LLMMount:
    """A streaming chat endpoint, as an ASGI app to mount in any host.

    Example::

        from starlette.applications import Starlette
        from starlette.routing import Mount
        from llm_sse_mount import LLMMount, providers

        llm = LLMMount(provider=providers.Zhipu(api_key="id.secret"), model="glm-4-flash")
        app = Starlette(routes=[Mount("/llm", app=llm)], lifespan=llm.lifespan)

    ``lifespan`` is optional: without it the mount opens its HTTP client on the first stream
    and closes it when the last stream ends.

    Arguments (every duration in seconds; ``None`` switches a timeout off):

    - ``provider``: the upstream (default: the embedded :class:`~.providers.scripted.Scripted`).
    - ``model`` / ``models``: default model and allow-list (the default is always allowed).
    - ``system_prompt``: prepended to every conversation.
    - ``max_tokens``: ceiling on a request's ``max_tokens`` (also the value sent when the
      request names none). ``client_params``: request parameters clients may set.
    - ``max_body_bytes`` / ``max_messages`` / ``max_chars``: request size caps (413 / 400).
      ``max_images`` / ``max_image_bytes``: images per request, bytes per ``data:`` image.
    - ``ping_interval``: keep-alive comment interval. ``send_timeout``: a client that does not
      take a frame for this long is dropped.
    - ``connect_timeout``, ``first_token_timeout``, ``idle_timeout``, ``total_timeout``:
      upstream timeouts. ``retries``: per provider, before the first frame; ``fallbacks``:
      providers tried in order when the main one keeps failing.
    - ``shutdown_grace``: time open streams get to say ``server_shutdown`` when the server stops.
    - ``resume_grace``: how long the upstream keeps generating after the last reader left,
      waiting for a reconnect (0: cancel at once). ``retention``: how long finished streams
      stay readable for resume (for the default memory store; a store you pass keeps its own).
      ``store``: where frames live: :class:`~.store.memory.MemoryStore` (one process) or
      :class:`~.store.redis.RedisStore` (several workers). See ``docs/resume.md``.
    - ``http_client``: an ``httpx.AsyncClient`` of the host's for every provider without one.
    - ``on_complete``: called once per stream with a :class:`~.relay.CompletionRecord`.
    - ``authorize``: who may use the mount (see :mod:`.access`; default: anyone).
      ``limits``: :class:`~.limits.Limits` per principal (default: none);
      ``limits_store``: where budgets live (default: memory; a
      :class:`~.limits.RedisLimitStore` shares them between workers).
    """

    def __init__(
        self,
        provider: Provider | None = None,
        *,
        model: str | None = None,
        models: Iterable[str] = (),
        system_prompt: str | None = None,
        max_tokens: int | None = None,
        client_params: Iterable[str] = CLIENT_PARAMS,
        max_body_bytes: int = 512 * 1024,
        max_messages: int = 500,
        max_chars: int = 400_000,
        max_images: int = 16,
        max_image_bytes: int = 5 * 1024 * 1024,
        ping_interval: float = 15.0,
        send_timeout: float | None = 30.0,
        connect_timeout: float | None = 10.0,
        first_token_timeout: float | None = 120.0,
        idle_timeout: float | None = 120.0,
        total_timeout: float | None = 900.0,
        retries: int = 2,
        fallbacks: Sequence[Provider] = (),
        shutdown_grace: float = 3.0,
        resume_grace: float = 0.0,
        retention: float = 300.0,
        store: StreamStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        on_complete: OnComplete | None = None,
        authorize: Authorize | None = None,
        limits: Limits | None = None,
        limits_store: LimitStore | None = None,
    ) -> None:
        if provider is None:
            from .providers.scripted import Scripted

            provider = Scripted()
        self.provider = provider
        default_model = model or provider.default_model
        self.settings = MountSettings(
            model=default_model,
            models=tuple(models),
            system_prompt=system_prompt,
            max_tokens=max_tokens,
            client_params=frozenset(client_params),
            max_body_bytes=max_body_bytes,
            max_messages=max_messages,
            max_chars=max_chars,
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
            max_images=max_images,
            max_image_bytes=max_image_bytes,
        )
        unknown = set(client_params) - CLIENT_PARAMS
        if unknown:
            raise ConfigError(f"unknown client parameter(s): {sorted(unknown)}")
        if ping_interval < 0 or retries < 0 or shutdown_grace < 0 or resume_grace < 0:
            raise ConfigError("ping_interval, retries and grace periods must not be negative")
        self.store: StreamStore = store if store is not None else MemoryStore(retention=retention)
        self.on_complete = on_complete
        connect = connect_timeout
        self.pool = ClientPool(
            lambda ssl_context: httpx.AsyncClient(
                verify=ssl_context,
                timeout=httpx.Timeout(connect=connect, read=None, write=30.0, pool=connect),
                # No cap on open streams. Few idle connections: reuse saves a TLS handshake per
                # stream, but httpcore walks and polls every pooled connection on each request
                # and release, which the benchmark shows as relay CPU (see README).
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=4),
            )
        )
        self.relay = Relay(
            (provider, *fallbacks),
            pool=self.pool,
            client=http_client,
            timeouts=Timeouts(connect_timeout, first_token_timeout, idle_timeout, total_timeout),
            retry=RetryPolicy(retries=retries),
        )
        # Every new stream and the listing routes pass here (see access.py).
        # A limiter even without mount-wide limits: a Principal may carry its own.
        self.access = Access(authorize, Limiter(limits or Limits(), limits_store))
        install_redactor(self.relay)
        self._shutdown: ShutdownSignal | None = None
        self.router = Router(routes=self.routes())

    # --- construction from the environment ---------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LLMMount:
        """Build a mount from ``LLM_SSE_*`` variables (see the README's configuration table).

        ``LLM_SSE_PROVIDER`` picks the upstream: ``scripted`` (default, no key, no network),
        ``openai`` (any OpenAI-compatible server; ``LLM_SSE_BASE_URL``), ``zhipu``.
        ``LLM_SSE_API_KEY`` (or ``OPENAI_API_KEY`` / ``ZHIPUAI_API_KEY``) holds the key.
        ``LLM_SSE_STORE`` picks where frames live: ``memory`` (default) or a ``redis://`` /
        ``rediss://`` URL shared by every worker (see :func:`~.store.select.store_from_env`).
        Keyword arguments override what the environment says.
        """
        from .providers.registry import provider_from_env
        from .store.select import store_from_env

        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = env_overrides(env)
        kwargs.update(access_env_overrides(env))
        if "provider" not in overrides:
            kwargs["provider"] = provider_from_env(env)
        if "store" not in overrides:
            retention = overrides.get("retention", kwargs.get("retention", 300.0))
            kwargs["store"] = store_from_env(env, retention=retention)
        kwargs.update(overrides)
        return cls(**kwargs)

    # --- lifecycle ---------------------------------------------------------------------------

    def shutdown_event(self) -> ShutdownSignal:
        """Set when the server begins to stop (by sse-starlette's shutdown watcher, or by the
        lifespan); setting it ends every live stream of this mount with ``server_shutdown``."""
        if self._shutdown is None:
            self._shutdown = ShutdownSignal()
        return self._shutdown

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
                self.shutdown_event().set()
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
        await self.router(scope, receive, send)

    async def _asgi_lifespan(self, receive: Receive, send: Send) -> None:
        # Served as the top-level app (or by a host that forwards lifespan): pin the client.
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with self._lifespan():
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})

    # --- routes ------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/chat", self._chat_post, methods=["POST"]),
            Route("/chat", self._chat_get, methods=["GET"]),
            Route("/chat/{stream_id}", self._chat_resume, methods=["GET"]),
            Route("/models", self._models, methods=["GET"]),
            Route("/health", self._health, methods=["GET"]),
            Route("/ai-sdk/chat", ai_sdk_chat_endpoint(self), methods=["POST"]),
            Route("/client.js", self._client_js, methods=["GET"]),
            *openai_routes(self),
            *responses_routes(self),
        ]

    def allowed_models(self) -> list[str]:
        s = self.settings
        models = list(s.models)
        if s.model and s.model not in models:
            models.insert(0, s.model)
        return models

    def build_request(self, fields: Mapping[str, Any]) -> ChatRequest:
        """Apply the mount's policy to a parsed request: model, caps, system prompt."""
        s = self.settings
        forbidden = [
            k for k in CLIENT_PARAMS - s.client_params if fields.get(k) not in (None, (), "")
        ]
        if forbidden:
            raise RequestError(
                f"the parameter {sorted(forbidden)[0]!r} may not be set by clients",
                code="parameter_not_allowed",
            )
        model = fields.get("model") or s.model
        if not model:
            raise RequestError("no model given and the mount has no default", code="model_required")
        # Only the listed models: a client must never pick a pricier model on the host's key.
        # (No default and no list means the host left the choice to clients.)
        allowed = self.allowed_models()
        if allowed and model not in allowed:
            raise RequestError(f"model {model!r} is not available here", code="unknown_model")
        messages: tuple[Message, ...] = fields["messages"]
        if len(messages) > s.max_messages:
            raise RequestError(
                f"too many messages (at most {s.max_messages})", code="too_many_messages"
            )
        max_tokens = fields.get("max_tokens")
        if s.max_tokens is not None:
            if max_tokens is not None and max_tokens > s.max_tokens:
                raise RequestError(
                    f"max_tokens may be at most {s.max_tokens}", code="invalid_parameter"
                )
            max_tokens = max_tokens or s.max_tokens
        if s.system_prompt:
            messages = (Message("system", s.system_prompt), *messages)
        chat = ChatRequest(
            **{**fields, "model": model, "messages": messages, "max_tokens": max_tokens}
        )
        if chat.total_chars > s.max_chars:
            raise RequestError(
                f"the conversation is too long (at most {s.max_chars} characters)",
                code="conversation_too_long",
            )
        check_images(chat, max_images=s.max_images, max_image_bytes=s.max_image_bytes)
        require_capabilities(self.provider, chat)
        return chat

    def stream(
        self,
        chat: ChatRequest,
        encoder: EncoderFactory = NativeEncoder,
        headers: Mapping[str, str] | None = None,
    ) -> NewStream:
        """The ASGI response that streams ``chat`` in the given client protocol."""
        # Native streams are the ones EventSource resumes: tell it to reconnect quickly.
        # Both EventSource-friendly formats carry ids, so a quick reconnect can resume.
        retry = RECONNECT_MS if encoder in (NativeEncoder, TextEncoder) else None
        return NewStream(self, chat, encoder, headers, retry)

    async def _chat_post(self, request: Request) -> Response:
        try:
            encoder = self._chat_format(request)
            body = await read_json_body(request, self.settings.max_body_bytes)
            chat = self.build_request(parse_native_body(body))
        except LLMSSEError as exc:
            return error_response(exc)
        return self.stream(chat, encoder)  # type: ignore[return-value]

    async def _chat_get(self, request: Request) -> Response:
        if request.method == "HEAD":
            # Starlette answers HEAD on GET routes; it must not cost an upstream call.
            return Response(media_type="text/event-stream", headers=STREAM_HEADERS)
        q = request.query_params
        try:
            encoder = self._chat_format(request)
            resume = request.headers.get("last-event-id") or q.get("last_event_id")
            if resume:
                return await self._resume(request, resume, encoder)  # type: ignore[return-value]
            prompt = q.get("prompt")
            if not prompt:
                raise RequestError(
                    "the 'prompt' query parameter is required", code="invalid_request"
                )
            messages: list[dict[str, str]] = []
            if q.get("system"):
                messages.append({"role": "system", "content": q["system"]})
            messages.append({"role": "user", "content": prompt})
            fields = parse_native_body({"messages": messages, "model": q.get("model") or None})
            chat = self.build_request(fields)
        except LLMSSEError as exc:
            return error_response(exc)
        return self.stream(chat, encoder)  # type: ignore[return-value]

    def _chat_format(self, request: Request) -> EncoderFactory:
        name = request.query_params.get("format") or "native"
        if name not in CHAT_FORMATS:
            raise RequestError(
                f"unknown format {name!r} (one of: {', '.join(sorted(CHAT_FORMATS))})",
                code="unknown_format",
            )
        return CHAT_FORMATS[name]

    async def _chat_resume(self, request: Request) -> Response:
        stream_id = request.path_params["stream_id"]
        after = request.query_params.get("after") or request.headers.get("last-event-id") or "-1"
        if ":" in after:
            after = after.rsplit(":", 1)[1]
        try:
            encoder = self._chat_format(request)
            return await self._resume(request, f"{stream_id}:{after}", encoder)  # type: ignore[return-value]
        except LLMSSEError as exc:
            return error_response(exc)

    async def _resume(
        self, request: Request, last_event_id: str, encoder: EncoderFactory = NativeEncoder
    ) -> ResumedStream | Response:
        """Frames after ``<stream_id>:<seq>``: 404 for an unknown or expired stream, 204 when
        the client already has the ``done`` frame (an ``EventSource`` stops reconnecting on
        204; without it, it would reconnect forever after a finished answer)."""
        stream_id, _, seq = last_event_id.strip().rpartition(":")
        try:
            after = int(seq)
        except ValueError:
            raise RequestError(
                "Last-Event-ID must look like '<stream_id>:<seq>'", code="invalid_last_event_id"
            ) from None
        await self.access.principal(request)  # rejoining spends nothing, but needs a caller
        # Ids are ours (token_urlsafe): anything else cannot exist, and must not reach a store
        # key built from it.
        valid = _STREAM_ID.fullmatch(stream_id) is not None
        info = await self.store.info(stream_id) if valid else None
        if info is None:
            raise NotFound("no such stream, or it has expired", code="stream_not_found")
        if info.done and after >= info.last_seq:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        return ResumedStream(self, stream_id, max(after, -1), encoder, RECONNECT_MS)

    async def _models(self, request: Request) -> Response:
        try:
            principal = await self.access.principal(request)
        except LLMSSEError as exc:
            return error_response(exc)
        models = [m for m in self.allowed_models() if principal.may_use(m)]
        default = self.settings.model if self.settings.model in models else None
        return JSONResponse({"default": default, "models": models})

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "provider": self.provider.name})

    async def _client_js(self, request: Request) -> Response:
        from .browser_client import client_js_response

        return await client_js_response(request)
