"""Anthropic's Messages API for clients: ``POST /v1/messages``, streamed and not (and
``POST /v1/messages/count_tokens``, an estimate), so ``Anthropic(base_url=".../llm",
api_key=<client token or anything>)`` works against a mount whatever the upstream is.

The body is parsed by :mod:`.anthropic_request`, the answer written by :mod:`.anthropic_wire`.
Every error is in Anthropic's shape ``{"type": "error", "error": {"type", "message"}}`` with our
stable ``code`` beside them, and the catalogue's status, before the stream (HTTP) and after it
(``event: error``). The ``anthropic`` SDK sends its key as ``x-api-key``;
:class:`~..core.access.BearerTokens` reads client tokens there too. No resume: Anthropic's
stream has no event ids.

``max_tokens`` is required by Anthropic's API, so every Anthropic client sends one, often
larger than a host's ceiling: here the mount's ``max_tokens`` clamps it rather than refusing
the request, and when the host does not let clients set ``max_tokens`` at all, the client's
value is dropped for the mount's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core.access import estimate_tokens
from ..core.context import StreamContext
from ..core.delivery import Reply
from ..core.policy import build_request
from ..core.serving import NewStream
from ..errors import Forbidden, LLMSSEError
from ..settings import RequestPolicy
from .anthropic_request import parse_anthropic_body
from .anthropic_wire import AnthropicEncoder, MessageBuilder, anthropic_error_response
from .base import ClientProtocol
from .http import read_json_body

__all__ = ["ANTHROPIC_MESSAGES"]

#: The streamed and the collected reply of this protocol.
_STREAMED = Reply(anthropic_error_response, encoder=AnthropicEncoder, protocol="anthropic")
_COLLECTED = Reply(anthropic_error_response, collector=MessageBuilder, protocol="anthropic")


def _apply_token_policy(policy: RequestPolicy, fields: dict[str, Any]) -> None:
    """Anthropic clients must send ``max_tokens``: clamp it to the host's ceiling (see above)."""
    if "max_tokens" not in policy.client_params:
        fields["max_tokens"] = None
    elif policy.max_tokens is not None and fields["max_tokens"] is not None:
        fields["max_tokens"] = min(fields["max_tokens"], policy.max_tokens)


def _routes(ctx: StreamContext) -> list[BaseRoute]:
    policy = ctx.settings.requests

    async def messages(request: Request) -> Response:
        try:
            body = await read_json_body(request, policy.max_body_bytes)
            fields, stream = parse_anthropic_body(body)
            _apply_token_policy(policy, fields)
            chat = build_request(policy, fields)
        except LLMSSEError as exc:
            return anthropic_error_response(exc)
        return NewStream(ctx, chat, _STREAMED if stream else _COLLECTED)

    async def count_tokens(request: Request) -> Response:
        # Tools built on the SDK (coding agents) size their context with this before a call.
        try:
            body = await read_json_body(request, policy.max_body_bytes)
            if isinstance(body, Mapping) and "max_tokens" not in body:
                body = {**body, "max_tokens": 1}  # the only field count_tokens does without
            fields, _stream = parse_anthropic_body(body)
            _apply_token_policy(policy, fields)
            chat = build_request(policy, fields)
            principal = await ctx.access.principal(request)
            if not principal.may_use(chat.model):
                raise Forbidden(
                    f"model {chat.model!r} is not available to you", code="model_forbidden"
                )
        except LLMSSEError as exc:
            return anthropic_error_response(exc)
        # The mount's own estimate, not the upstream's count (that would cost an upstream
        # call, and most upstreams have no such endpoint): "estimated" says so.
        return JSONResponse({"input_tokens": estimate_tokens(chat), "estimated": True})

    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]


#: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.
ANTHROPIC_MESSAGES = ClientProtocol("anthropic", _routes)
