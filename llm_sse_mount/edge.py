"""The mount's edge: what every request passes before a protocol parses it.

::

    EdgeGuard(app, body_timeout=10.0, allowed_origins=("https://app.example",))
      Origin check     a request whose ``Origin`` header is not listed: 403 origin_forbidden
                       (only when ``allowed_origins`` is set; requests without ``Origin``,
                       i.e. not from a browser page, pass)
      body deadline    the whole request body must arrive within ``body_timeout`` seconds of
                       the request head, else 408 body_timeout and the connection is closed

    require_json(headers)   415 unsupported_media_type unless the body is declared JSON
    too_deep(value)         whether parsed JSON nests deeper than MAX_JSON_DEPTH

Why each exists:

- A slow body (a byte every few seconds) would otherwise hold a connection and a task for as
  long as the client likes, before anyone has checked who it is: authorization reads the
  parsed body's model, so the body comes first. The deadline is enforced inside ``receive``,
  so every protocol's body reader gets it, and the protocol answers in its own error shape.
- A browser sends a cross-site POST without asking first (no CORS preflight) when its body is
  ``text/plain``, a form, or a ``Blob`` without a type: with a cookie-reading ``authorize``
  such a request streams on the victim's account. Every client of the mount (the official
  OpenAI and Anthropic SDKs, the AI SDK, ``client.js``) sends ``application/json``, which a
  browser only sends cross-site after a preflight the mount does not grant.
- The Origin check is the second belt for hosts whose ``authorize`` reads cookies: it also
  covers ``GET /chat`` (an ``EventSource`` with credentials starts a paid generation even
  though the page cannot read the answer).
- JSON nested ~950 levels deep parses (Python's parser recurses up to the interpreter's
  limit) but then crashes the encoder that sends it upstream: refused at parse time instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import anyio
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BodyTimeout, ConfigError, UnsupportedMediaType

__all__ = ["MAX_JSON_DEPTH", "EdgeGuard", "normalize_origins", "require_json", "too_deep"]

#: Deepest nesting of arrays and objects a request body may have. JSON Schemas of real tools
#: nest a few levels; this leaves room for generous ones and stays far from the interpreter's
#: recursion limit, which the encoders hit near 1,000.
MAX_JSON_DEPTH = 64


def normalize_origins(origins: Iterable[str]) -> frozenset[str]:
    """``scheme://host[:port]`` entries, lowercased, without a trailing slash."""
    out = set()
    for raw in origins:
        origin = raw.strip().rstrip("/").lower()
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
            raise ConfigError(
                f"allowed_origins entries look like 'https://app.example[:port]', got {raw!r}"
            )
        out.add(origin)
    return frozenset(out)


def _declares_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class EdgeGuard:
    """ASGI wrapper applying the Origin check and the body deadline to ``app`` (see the
    module docstring). ``body_timeout=None`` switches the deadline off; ``allowed_origins``
    ``None`` switches the Origin check off."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        body_timeout: float | None = 10.0,
        allowed_origins: Iterable[str] | None = None,
    ) -> None:
        if body_timeout is not None and not body_timeout > 0:
            raise ConfigError("body_timeout must be positive (or None for no deadline)")
        self.app = app
        self.body_timeout = body_timeout
        self.allowed_origins = (
            None if allowed_origins is None else normalize_origins(allowed_origins)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed_origins is not None:
            origin = _header(scope, b"origin")
            if origin is not None and origin.strip().rstrip("/").lower() not in (
                self.allowed_origins
            ):
                response = JSONResponse(
                    {
                        "error": {
                            "code": "origin_forbidden",
                            "message": "requests from this origin are not allowed",
                        }
                    },
                    status_code=403,
                    headers={"Cache-Control": "no-store", "Vary": "Origin"},
                )
                await response(scope, receive, send)
                return
        if self.body_timeout is None or not _declares_body(scope):
            await self.app(scope, receive, send)
            return
        body = _BodyDeadline(receive, send, self.body_timeout)
        await self.app(scope, body.receive, body.send)


class _BodyDeadline:
    """``receive`` with a deadline until the body is complete, and a ``send`` that closes the
    connection (``Connection: close``) after a 408: the rest of the body is never read, so the
    connection cannot carry another request."""

    def __init__(self, receive: Receive, send: Send, timeout: float) -> None:
        self._receive = receive
        self._send = send
        self._timeout = timeout
        self._deadline = anyio.current_time() + timeout
        self._complete = False
        self._timed_out = False

    async def receive(self) -> Message:
        if self._complete:
            return await self._receive()
        left = self._deadline - anyio.current_time()
        message: Message | None = None
        if left > 0:
            with anyio.move_on_after(left):
                message = await self._receive()
        if message is None:
            self._timed_out = True
            raise BodyTimeout(f"the request body did not arrive within {self._timeout:g} s")
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._complete = True
        return message

    async def send(self, message: Message) -> None:
        if self._timed_out and message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await self._send(message)


def require_json(headers: Mapping[str, str]) -> None:
    """Raise 415 unless ``Content-Type`` is ``application/json`` (or ``application/*+json``)."""
    declared = headers.get("content-type")
    media = (declared or "").partition(";")[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    shown = repr(media) if media else "none"
    raise UnsupportedMediaType(
        f"the request body must be sent as Content-Type: application/json (got {shown})"
    )


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests arrays/objects deeper than ``limit`` (iterative: a deep value
    must not exhaust the stack while it is being measured)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
