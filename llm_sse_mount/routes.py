"""The route table of a mount: every client protocol's routes, the mount's own few, and
errors in the documented shape for everything else (a JSON 404 for an unknown path, a JSON 405
with the right ``Allow`` for a wrong method; OpenAI-shaped under ``/v1/``, Anthropic-shaped
there for requests with an ``anthropic-version`` header).

Adding a client protocol is one module under ``protocols/`` and one row of :data:`PROTOCOLS`.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .core.context import StreamContext
from .core.delivery import ErrorResponder
from .errors import LLMSSEError, NotFound, RequestError
from .protocols.aisdk import AI_SDK
from .protocols.anthropic_messages import ANTHROPIC_MESSAGES
from .protocols.anthropic_wire import anthropic_error_response
from .protocols.base import ClientProtocol
from .protocols.http import error_response
from .protocols.native import NATIVE
from .protocols.openai_chat import openai_error_response
from .protocols.openai_routes import OPENAI_CHAT
from .protocols.responses import OPENAI_RESPONSES
from .protocols.v1_models import V1_MODELS, is_anthropic

__all__ = ["PROTOCOLS", "error_shape", "not_found", "route_table"]

#: The client protocols every mount serves.
PROTOCOLS: tuple[ClientProtocol, ...] = (
    NATIVE,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    ANTHROPIC_MESSAGES,
    V1_MODELS,
    AI_SDK,
)


def error_shape(scope: Scope) -> ErrorResponder:
    """The error shape of the request's path: OpenAI's under ``/v1/`` (SDKs read it), or
    Anthropic's when the client says so (the anthropic SDK sends ``anthropic-version`` on every
    request); else the native one."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if path.startswith(root):
        path = path[len(root) :]
    if not path.startswith("/v1/"):
        return error_response
    if is_anthropic(Headers(scope=scope)):
        return anthropic_error_response
    return openai_error_response


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """The router's default: a JSON 404 in the path's error shape."""
    error = NotFound(f"no route {scope.get('path', '')!r} here", code="not_found")
    await error_shape(scope)(error)(scope, receive, send)


class _Methods(Route):
    """The routes of one path, as one route: so a wrong method gets every allowed method in
    ``Allow`` (Starlette would name only the first route's), in our error shape."""

    def __init__(self, path: str, routes: Sequence[Route]) -> None:
        self._by_method = {m: r for r in routes for m in (r.methods or ())}
        super().__init__(path, routes[0].endpoint, methods=sorted(self._by_method))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._by_method.get(scope["method"])
        if route is not None:
            await route.handle(scope, receive, send)
            return
        error = RequestError(f"{scope['method']} is not allowed here", code="method_not_allowed")
        response = error_shape(scope)(error)
        response.headers["Allow"] = ", ".join(sorted(self._by_method))
        await response(scope, receive, send)


def _merged(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    paths: dict[str, list[Route]] = {}
    for route in routes:
        assert isinstance(route, Route), "protocol routes are plain Routes"
        paths.setdefault(route.path, []).append(route)
    return [_Methods(path, group) for path, group in paths.items()]


def _own_routes(ctx: StreamContext) -> list[BaseRoute]:
    async def models(request: Request) -> Response:
        try:
            principal = await ctx.access.principal(request)
        except LLMSSEError as exc:
            return error_response(exc)
        policy = ctx.settings.requests
        allowed = [m for m in policy.allowed_models() if principal.may_use(m)]
        default = policy.model if policy.model in allowed else None
        return JSONResponse({"default": default, "models": allowed})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "provider": ctx.provider.name})

    async def client_js(request: Request) -> Response:
        from .browser_client import client_js_response

        return await client_js_response(request)

    return [
        Route("/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/client.js", client_js, methods=["GET"]),
    ]


def route_table(ctx: StreamContext, extra: Sequence[BaseRoute] = ()) -> list[BaseRoute]:
    """Every route of a mount, for its ``Router`` (with :func:`not_found` as its default);
    ``extra``: the assembly's own (``GET /metrics`` when metrics are on)."""
    routes = [r for protocol in PROTOCOLS for r in protocol.routes(ctx)]
    return _merged([*routes, *_own_routes(ctx), *extra])
