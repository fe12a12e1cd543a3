"""``GET /v1/models`` and ``GET /v1/models/{id}`` (``models.list`` / ``models.retrieve``), in
OpenAI's shape, or in Anthropic's when the request carries the ``anthropic-version`` header (the
``anthropic`` SDK always sends it): both vendors' SDKs call the same path.

Listing is an access check like ``GET /models``: the caller must pass the ``authorize`` hook,
and sees only the models its principal may use; to anyone else a model does not exist (404).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..core.context import StreamContext
from ..errors import LLMSSEError, NotFound
from .anthropic_wire import anthropic_error_response
from .base import ClientProtocol
from .openai_chat import openai_error_response

__all__ = ["V1_MODELS", "is_anthropic"]

#: A model's release date when the mount cannot know it (Anthropic's shape requires one).
_EPOCH = "1970-01-01T00:00:00Z"


def is_anthropic(headers: Any) -> bool:
    """Whether the caller speaks Anthropic's API (its SDK sends ``anthropic-version``)."""
    return "anthropic-version" in headers


def _openai_model(model: str, owner: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": owner}


def _anthropic_model(model: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model,
        "display_name": model,
        "created_at": _EPOCH,
        "lifecycle": "active",
    }


def _routes(ctx: StreamContext) -> list[BaseRoute]:
    policy = ctx.settings.requests

    def error(request: Request, exc: LLMSSEError) -> Response:
        if is_anthropic(request.headers):
            return anthropic_error_response(exc)
        return openai_error_response(exc)

    async def visible(request: Request) -> list[str]:
        principal = await ctx.access.principal(request)
        return [m for m in policy.allowed_models() if principal.may_use(m)]

    async def list_models(request: Request) -> Response:
        try:
            models = await visible(request)
        except LLMSSEError as exc:
            return error(request, exc)
        if is_anthropic(request.headers):
            return JSONResponse(
                {
                    "data": [_anthropic_model(m) for m in models],
                    "has_more": False,
                    "first_id": models[0] if models else None,
                    "last_id": models[-1] if models else None,
                }
            )
        owner = ctx.provider.name
        return JSONResponse({"object": "list", "data": [_openai_model(m, owner) for m in models]})

    async def retrieve_model(request: Request) -> Response:
        model = request.path_params["model_id"]
        try:
            if model not in await visible(request):
                raise NotFound(
                    f"model {model!r} is not available here", code="model_not_found", param="model"
                )
        except LLMSSEError as exc:
            return error(request, exc)
        if is_anthropic(request.headers):
            return JSONResponse(_anthropic_model(model))
        return JSONResponse(_openai_model(model, ctx.provider.name))

    return [
        Route("/v1/models", list_models, methods=["GET"]),
        # {model_id:path}: model ids may hold a slash ("meta-llama/Llama-3-8b").
        Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
    ]


#: ``GET /v1/models`` and ``GET /v1/models/{model_id}``, for both vendors' SDKs.
V1_MODELS = ClientProtocol("models", _routes)
