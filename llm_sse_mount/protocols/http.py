"""HTTP for every protocol: reading a JSON body within limits, and the headers of an error
before the first frame. The native error shape, ``{"error": {"code", "message"}}``, is the
default for every route that has no protocol of its own."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from ..errors import LLMSSEError, PayloadTooLarge, RequestError, UnsupportedMediaType, error_kind
from ..events import Error

__all__ = [
    "MAX_JSON_DEPTH",
    "collected_error",
    "error_headers",
    "error_response",
    "read_json_body",
    "require_json",
    "too_deep",
]

#: Deepest nesting of arrays and objects a request body may have. JSON Schemas of real tools
#: nest a few levels; this leaves room for generous ones and stays far from the interpreter's
#: recursion limit: ~950 levels parse, then crash the encoder on the way upstream (where
#: exactly depends on how deep the host's stack already is).
MAX_JSON_DEPTH = 64

#: The longest Retry-After we pass on (an upstream may say "inf").
MAX_RETRY_AFTER = 3600


def error_headers(exc: LLMSSEError) -> dict[str, str]:
    """``Cache-Control``, ``Retry-After`` (429 and whenever known) and, on a 401, the
    ``WWW-Authenticate`` challenge (RFC 9110; ``BearerTokens`` sets a precise one)."""
    out = {"Cache-Control": "no-store"}
    if exc.retry_after is not None:
        wait = exc.retry_after
        if not wait >= 1:  # also NaN
            wait = 1.0
        out["Retry-After"] = str(math.ceil(min(wait, MAX_RETRY_AFTER)))
    elif exc.status == 429:
        out["Retry-After"] = "1"
    if exc.status == 401:
        out["WWW-Authenticate"] = getattr(exc, "challenge", 'Bearer realm="llm"')
    return out


def collected_error(err: Error, body: dict[str, Any]) -> JSONResponse:
    """A non-streamed answer whose stream failed: ``body`` (the protocol's error shape) with
    the status the catalogue gives the frame's code, and the same headers as any error
    before a stream (a 429 says when to come back)."""
    kind = error_kind(err.code)
    headers = {"Cache-Control": "no-store"}
    if kind.status == 429:
        headers["Retry-After"] = "1"  # an error frame carries no Retry-After of its own
    return JSONResponse(body, status_code=kind.status, headers=headers)


def error_response(exc: LLMSSEError) -> JSONResponse:
    """The native error shape (also the default for routes without a protocol of their own)."""
    error = {"code": exc.code, "message": exc.message}
    return JSONResponse({"error": error}, status_code=exc.status, headers=error_headers(exc))


async def read_json_body(request: Request, limit: int) -> Any:
    """The request body as JSON, read no further than ``limit`` bytes. Only a body declared
    ``application/json`` is read (415 otherwise: see :func:`require_json`)."""
    require_json(request.headers)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise RequestError("invalid Content-Length", code="invalid_request") from None
        if too_big:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    except ClientDisconnect:
        raise RequestError("the client went away", code="client_disconnected") from None
    if not body.strip():
        raise RequestError("the request body is empty; send a JSON object", code="invalid_json")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: "[[[[..." nested deeper than the interpreter allows.
        raise RequestError("the request body is not valid JSON", code="invalid_json") from None
    if too_deep(value):
        # It parsed, but would crash the JSON encoder on the way upstream (a 500).
        raise RequestError(
            f"the request body nests deeper than {MAX_JSON_DEPTH} levels", code="invalid_json"
        )
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(value):
        # JSON may escape half a UTF-16 pair ("\ud800"); such a string cannot be encoded as
        # UTF-8 again, so it would crash the upstream request or the stream mid-way (found by
        # tests/test_fuzz_requests.py).
        raise RequestError(
            "the request body contains an unpaired UTF-16 surrogate escape", code="invalid_json"
        )
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any, depth: int = 0) -> bool:
    if depth > 200:  # no client protocol nests this deep; refuse rather than recurse further
        return True
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(
            _has_lone_surrogate(k) or _has_lone_surrogate(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_has_lone_surrogate(v, depth + 1) for v in value)
    return False


def require_json(headers: Mapping[str, str]) -> None:
    """Raise 415 unless ``Content-Type`` is ``application/json`` (or ``application/*+json``).

    A browser sends a cross-site POST without a CORS preflight when its body is ``text/plain``,
    a form, or a ``Blob`` without a type: with a cookie-reading ``authorize`` such a request
    would stream on the visitor's account. Every client of the mount (the OpenAI and Anthropic
    SDKs, the AI SDK, ``client.js``) sends ``application/json``, which a browser only sends
    cross-site after a preflight the mount does not grant."""
    media = (headers.get("content-type") or "").partition(";")[0].strip().lower()
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
