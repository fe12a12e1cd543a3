"""The OpenAI-compatible endpoints: ``POST /v1/chat/completions`` and ``GET /v1/models``, so
``AsyncOpenAI(base_url=".../llm/v1", api_key="unused")`` works against a mount unchanged.

Requests are parsed strictly, like every other protocol here: fields that only label a request
(``user``, ``metadata``, ``store``, ...) are accepted and ignored; fields that would change the
answer but cannot be honoured are accepted only at their default value (``n: 1``,
``logprobs: false``, ...); anything else is a 400 ``unknown_field`` naming it in ``param``.
Every error uses OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with our
stable ``code``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message as ASGIMessage
from starlette.types import Receive, Scope, Send

from ..errors import LLMSSEError, RequestError
from ..events import Error
from ..http_errors import read_json_body
from ..request import parse_common, parse_number
from ..store.base import Frame
from ..streaming import NewStream
from .openai import CompletionBuilder, error_body, error_status, openai_encoder

if TYPE_CHECKING:
    from ..mount import LLMMount

__all__ = ["OpenAIParamError", "openai_error_response", "openai_routes", "parse_openai_body"]

#: Parsed by request.py's shared parsers.
_COMMON = frozenset(
    (
        "messages",
        "model",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "reasoning_effort",
    )
)
#: Labels and hints that do not change what the client gets back: accepted, ignored.
_IGNORED = frozenset(
    (
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "parallel_tool_calls",
        "seed",
        "verbosity",
        "stream_options",  # read below when streaming; ignored otherwise
    )
)
#: Accepted only with the value that asks for nothing special.
_DEFAULT_ONLY: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
    "logit_bias": ({},),
    "modalities": (["text"],),
}
_ALLOWED = _COMMON | _IGNORED | frozenset(_DEFAULT_ONLY) | {"stream", "max_completion_tokens"}
#: Keys the SDK echoes back on an assistant message (``messages.append(choice.message)``).
_ECHOED_MESSAGE_KEYS = ("refusal", "annotations", "audio", "function_call", "reasoning_content")


#: The parameter the mount's policy errors (``LLMMount.build_request``) are about.
_PARAM_BY_CODE = {
    "unknown_model": "model",
    "model_required": "model",
    "too_many_messages": "messages",
    "conversation_too_long": "messages",
}


class OpenAIParamError(RequestError):
    """A request error that names the offending parameter (OpenAI's ``error.param``)."""

    def __init__(self, message: str, *, code: str, param: str | None, status: int = 400) -> None:
        super().__init__(message, code=code, status=status)
        self.param = param


def openai_error_response(exc: LLMSSEError) -> JSONResponse:
    """An error before the stream, in OpenAI's shape and with our status."""
    headers = {"Cache-Control": "no-store"}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, OpenAIParamError):
        param = exc.param
    elif isinstance(exc, RequestError):
        param = _PARAM_BY_CODE.get(exc.code) or _param_of(exc.message)
    else:
        param = None
    return JSONResponse(
        error_body(exc.message, exc.code, exc.status, param),
        status_code=exc.status,
        headers=headers,
    )


def _normalize_message(raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        return raw  # parse_messages reports it
    msg = dict(raw)
    if msg.get("role") == "developer":
        msg["role"] = "system"  # OpenAI's newer name for system instructions
    for key in _ECHOED_MESSAGE_KEYS:
        # reasoning_content must not go back upstream (DeepSeek rejects it); the rest are
        # null/empty on a plain text turn. A real value (audio) stays and is refused below.
        if key in msg and (key == "reasoning_content" or not msg[key]):
            del msg[key]
    return msg


def parse_openai_body(body: Any) -> tuple[dict[str, Any], bool, bool]:
    """OpenAI's request body → ``(ChatRequest fields, stream, include_usage)``."""
    if not isinstance(body, Mapping):
        raise OpenAIParamError(
            "the request body must be a JSON object", code="invalid_request", param=None
        )
    unknown = sorted(k for k in body if k not in _ALLOWED)
    if unknown:
        raise OpenAIParamError(
            f"unknown or unsupported parameter {unknown[0]!r}",
            code="unknown_field",
            param=unknown[0],
        )
    for key, defaults in _DEFAULT_ONLY.items():
        value = body.get(key)
        if value is not None and not any(_is_default(value, d) for d in defaults):
            raise OpenAIParamError(
                f"{key!r} is not supported here (only {defaults[0]!r})",
                code="unsupported_parameter",
                param=key,
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise OpenAIParamError(
            "'stream' must be a boolean", code="invalid_parameter", param="stream"
        )
    include_usage = False
    options = body.get("stream_options")
    if stream and options is not None:
        if not isinstance(options, Mapping):
            raise OpenAIParamError(
                "'stream_options' must be an object",
                code="invalid_parameter",
                param="stream_options",
            )
        include_usage = options.get("include_usage") is True
    common: dict[str, Any] = {k: body[k] for k in _COMMON if k in body}
    if isinstance(common.get("messages"), list):
        common["messages"] = [_normalize_message(m) for m in common["messages"]]
    common["max_tokens"] = _max_tokens(body.get("max_tokens"), body.get("max_completion_tokens"))
    try:
        fields = parse_common(common)
    except RequestError as exc:
        raise OpenAIParamError(
            exc.message, code=exc.code, param=_param_of(exc.message), status=exc.status
        ) from None
    return fields, bool(stream), include_usage


def _is_default(value: Any, default: Any) -> bool:
    # JSON true is not 1 and 0.0 is 0: compare like a client means it.
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and value == default
    return bool(value == default)


def _max_tokens(max_tokens: Any, max_completion_tokens: Any) -> int | None:
    # max_completion_tokens is the newer name; either may be used, both only if equal.
    values = []
    for key, value in (
        ("max_tokens", max_tokens),
        ("max_completion_tokens", max_completion_tokens),
    ):
        try:
            values.append(parse_number(value, key, low=1, high=10_000_000, integer=True))
        except RequestError as exc:
            raise OpenAIParamError(exc.message, code=exc.code, param=key) from None
    a, b = values
    if a is not None and b is not None and a != b:
        raise OpenAIParamError(
            "'max_tokens' and 'max_completion_tokens' disagree",
            code="invalid_parameter",
            param="max_completion_tokens",
        )
    value = a if a is not None else b
    return None if value is None else int(value)


def _param_of(message: str) -> str | None:
    """The parameter a shared parser's message is about (they quote it or start with it)."""
    for key in sorted(_COMMON, key=len, reverse=True):
        if f"'{key}'" in message or message.startswith(key) or f"{key}[" in message:
            return key
    return None


class OpenAIStream(NewStream):
    """A new stream whose early errors are in OpenAI's error shape."""

    def error_response(self, exc: LLMSSEError) -> Response:
        return openai_error_response(exc)


class CollectsFrames(Protocol):
    """Folds a stream's frames into one JSON answer (``stream: false``)."""

    error: Error | None

    def add(self, frames: list[Frame]) -> None: ...

    def completion(self) -> dict[str, Any]: ...


class OpenAICompletion(OpenAIStream):
    """``stream: false``: runs the same stream (relay, producer, timeouts, ``on_complete``)
    and answers with one ``chat.completion`` once it is done. A client that leaves while it
    waits is a reader that left: the upstream is cancelled like for any stream."""

    def new_builder(self, stream_id: str, model: str) -> CollectsFrames:
        """The collector of this protocol's answer (the Responses API has its own)."""
        return CompletionBuilder(stream_id, model)

    async def respond(
        self, stream_id: str, model: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        builder = self.new_builder(stream_id, model)
        gone = False
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                nonlocal gone
                while True:
                    message: ASGIMessage = await receive()
                    if message["type"] == "http.disconnect":
                        gone = True
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch)
            async for batch in self.mount.store.read(stream_id):
                builder.add(batch)
            tg.cancel_scope.cancel()
        if gone:
            return
        response: Response
        if builder.error is not None:
            err = builder.error
            status = error_status(err.code)
            response = JSONResponse(
                error_body(err.message, err.code, status),
                status_code=status,
                headers={"Cache-Control": "no-store"},
            )
        else:
            response = JSONResponse(builder.completion(), headers={"Cache-Control": "no-store"})
        await response(scope, receive, send)


def openai_routes(mount: LLMMount) -> list[BaseRoute]:
    """The routes to add to a mount's router."""

    async def chat_completions(request: Request) -> Response:
        try:
            body = await read_json_body(request, mount.settings.max_body_bytes)
            fields, stream, include_usage = parse_openai_body(body)
            chat = mount.build_request(fields)
        except LLMSSEError as exc:
            return openai_error_response(exc)
        if stream:
            encoder = openai_encoder(include_usage=include_usage)
            return OpenAIStream(mount, chat, encoder)  # type: ignore[return-value]
        return OpenAICompletion(mount, chat, openai_encoder())  # type: ignore[return-value]

    async def models(request: Request) -> Response:
        owner = mount.provider.name
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": owner}
            for m in mount.allowed_models()
        ]
        return JSONResponse({"object": "list", "data": data})

    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
