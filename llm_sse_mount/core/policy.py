"""The mount's request policy: what a parsed request becomes before it may go upstream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import RequestError
from ..request import ChatRequest, Message, check_images
from ..settings import CLIENT_PARAMS, RequestPolicy

__all__ = ["build_request"]


def build_request(policy: RequestPolicy, fields: Mapping[str, Any]) -> ChatRequest:
    """Apply the policy to a protocol's parsed fields: which parameters clients may set, the
    model and its allow-list, the caps, the system prompt."""
    forbidden = [
        k for k in CLIENT_PARAMS - policy.client_params if fields.get(k) not in (None, (), "")
    ]
    if forbidden:
        name = sorted(forbidden)[0]
        raise RequestError(
            f"the parameter {name!r} may not be set by clients",
            code="parameter_not_allowed",
            param=name,
        )
    model = fields.get("model") or policy.model
    if not model:
        raise RequestError(
            "no model given and the mount has no default", code="model_required", param="model"
        )
    # Only the listed models: a client must never pick a pricier model on the host's key.
    # (No default and no list means the host left the choice to clients.)
    allowed = policy.allowed_models()
    if allowed and model not in allowed:
        raise RequestError(
            f"model {model!r} is not available here (available: {', '.join(allowed)})",
            code="unknown_model",
            param="model",
        )
    messages: tuple[Message, ...] = fields["messages"]
    if len(messages) > policy.max_messages:
        raise RequestError(
            f"too many messages (at most {policy.max_messages})",
            code="too_many_messages",
            param="messages",
        )
    max_tokens = fields.get("max_tokens")
    if policy.max_tokens is not None:
        if max_tokens is not None and max_tokens > policy.max_tokens:
            raise RequestError(
                f"max_tokens may be at most {policy.max_tokens}",
                code="invalid_parameter",
                param="max_tokens",
            )
        max_tokens = max_tokens or policy.max_tokens
    if policy.system_prompt:
        messages = (Message("system", policy.system_prompt), *messages)
    chat = ChatRequest(**{**fields, "model": model, "messages": messages, "max_tokens": max_tokens})
    if chat.total_chars > policy.max_chars:
        raise RequestError(
            f"the conversation is too long (at most {policy.max_chars} characters)",
            code="conversation_too_long",
            param="messages",
        )
    check_images(chat, max_images=policy.max_images, max_image_bytes=policy.max_image_bytes)
    return chat
