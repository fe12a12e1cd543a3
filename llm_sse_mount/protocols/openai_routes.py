"""The OpenAI-compatible endpoint ``POST /v1/chat/completions`` (``GET /v1/models`` lives in
:mod:`.v1_models`), so ``AsyncOpenAI(base_url=".../llm/v1", api_key="unused")`` works
against a mount unchanged.

Requests are parsed strictly, like every other protocol here: fields that only label a request
(``user``, ``metadata``, ``store``, ...) are accepted and ignored; fields that would change the
answer but cannot be honoured are accepted only at their default value (``n: 1``,
``logprobs: false``, ...); anything else is a 400 ``unknown_field`` naming it in ``param``.
Every error uses OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with our
stable ``code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..core.context import StreamContext
from ..core.delivery import Reply
from ..core.policy import build_request
from ..core.serving import NewStream
from ..errors import LLMSSEError, RequestError
from ..request import COMMON_FIELDS, parse_common, parse_number
from .base import ClientProtocol
from .http import read_json_body
from .openai_chat import CompletionBuilder, openai_encoder, openai_error_response

__all__ = ["OPENAI_CHAT", "parse_openai_body"]

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
_ALLOWED = COMMON_FIELDS | _IGNORED | frozenset(_DEFAULT_ONLY) | {"stream", "max_completion_tokens"}
#: Keys the SDK echoes back on an assistant message (``messages.append(choice.message)``).
_ECHOED_MESSAGE_KEYS = ("refusal", "annotations", "audio", "function_call", "reasoning_content")


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
        raise RequestError("the request body must be a JSON object", code="invalid_request")
    unknown = sorted(k for k in body if k not in _ALLOWED)
    if unknown:
        raise RequestError(
            f"unknown or unsupported parameter {unknown[0]!r}",
            code="unknown_field",
            param=unknown[0],
        )
    for key, defaults in _DEFAULT_ONLY.items():
        value = body.get(key)
        if value is not None and not any(_is_default(value, d) for d in defaults):
            raise RequestError(
                f"{key!r} is not supported here (only {defaults[0]!r})",
                code="unsupported_parameter",
                param=key,
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean", code="invalid_parameter", param="stream")
    include_usage = False
    options = body.get("stream_options")
    if stream and options is not None:
        if not isinstance(options, Mapping):
            raise RequestError(
                "'stream_options' must be an object",
                code="invalid_parameter",
                param="stream_options",
            )
        include_usage = options.get("include_usage") is True
    common: dict[str, Any] = {k: body[k] for k in COMMON_FIELDS if k in body}
    if isinstance(common.get("messages"), list):
        common["messages"] = [_normalize_message(m) for m in common["messages"]]
    common["max_tokens"] = _max_tokens(body.get("max_tokens"), body.get("max_completion_tokens"))
    return parse_common(common), bool(stream), include_usage


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
        values.append(parse_number(value, key, low=1, high=10_000_000, integer=True))
    a, b = values
    if a is not None and b is not None and a != b:
        raise RequestError(
            "'max_tokens' and 'max_completion_tokens' disagree",
            code="invalid_parameter",
            param="max_completion_tokens",
        )
    value = a if a is not None else b
    return None if value is None else int(value)


def _routes(ctx: StreamContext) -> list[BaseRoute]:
    policy = ctx.settings.requests

    async def chat_completions(request: Request) -> Response:
        try:
            body = await read_json_body(request, policy.max_body_bytes)
            fields, stream, include_usage = parse_openai_body(body)
            chat = build_request(policy, fields)
        except LLMSSEError as exc:
            return openai_error_response(exc)
        if stream:
            reply = Reply(
                openai_error_response,
                encoder=openai_encoder(include_usage=include_usage),
                protocol="openai",
            )
        else:
            reply = Reply(openai_error_response, collector=CompletionBuilder, protocol="openai")
        return NewStream(ctx, chat, reply)

    # GET /v1/models: protocols/v1_models.py (in both vendors' shapes).
    return [Route("/v1/chat/completions", chat_completions, methods=["POST"])]


#: ``POST /v1/chat/completions``.
OPENAI_CHAT = ClientProtocol("openai", _routes)
