"""The mount's edge: what every request passes before a route sees it.

::

    EdgeGuard(router, body_timeout=10.0, allowed_origins={"https://app.example"})
      Origin check     a request whose ``Origin`` header is not listed: 403 origin_forbidden
                       (only when ``allowed_origins`` is set; requests without ``Origin``,
                       i.e. not sent by a browser page, pass)
      body deadline    the whole request body must arrive within ``body_timeout`` seconds of
                       the request head, else 408 body_timeout and the connection is closed

Why:

- A slow body (a byte every few seconds) would otherwise hold a connection and a task for as
  long as the client likes, before anyone checked who it is (authorization needs the parsed
  body's model, so the body comes first). The deadline is enforced inside ``receive``, so every
  protocol's body reader gets it and answers it in the protocol's own error shape.
- The Origin check is for hosts whose ``authorize`` reads cookies: the JSON-only bodies of
  :func:`~.protocols.http.require_json` stop cross-site POSTs, and this also covers
  ``GET /chat`` (an ``EventSource`` with credentials starts a paid generation even though the
  foreign page cannot read the answer).
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BodyTimeout, Forbidden
from .routes import error_shape

__all__ = ["EdgeGuard"]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _declares_body(scope: Scope) -> bool:
    if _header(scope, b"transfer-encoding") is not None:
        return True
    length = _header(scope, b"content-length")
    return length is not None and length.strip() not in ("", "0")


class EdgeGuard:
    """ASGI wrapper of a mount's router applying the Origin check and the body deadline.
    ``body_timeout=None`` switches the deadline off; ``allowed_origins=None`` the Origin check
    (origins as :func:`~.settings.normalize_origins` makes them)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        body_timeout: float | None,
        allowed_origins: frozenset[str] | None,
    ) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed_origins is not None:
            origin = _header(scope, b"origin")
            if origin is not None and origin.strip().rstrip("/").lower() not in (
                self.allowed_origins
            ):
                refused = Forbidden(
                    "requests from this origin are not allowed", code="origin_forbidden"
                )
                response = error_shape(scope)(refused)
                response.headers["Vary"] = "Origin"
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
            # Cancelling uvicorn's receive while it waits loses no message.
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
