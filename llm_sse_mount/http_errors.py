"""Errors before the first frame: plain HTTP with ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from .edge import MAX_JSON_DEPTH, require_json, too_deep
from .errors import LLMSSEError, PayloadTooLarge, RequestError

__all__ = ["error_response", "read_json_body"]


def error_response(exc: LLMSSEError, headers: dict[str, str] | None = None) -> JSONResponse:
    out = dict(headers or {})
    if exc.retry_after is not None:
        out["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif exc.status == 429:
        out["Retry-After"] = "1"
    out["Cache-Control"] = "no-store"
    if exc.status == 401:
        # RFC 9110: a 401 says how to authenticate (access.BearerTokens sets a precise one).
        out.setdefault("WWW-Authenticate", getattr(exc, "challenge", 'Bearer realm="llm"'))
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status, headers=out
    )


async def read_json_body(request: Request, limit: int) -> Any:
    """The request body as JSON, read no further than ``limit`` bytes. Only a body declared
    ``application/json`` is read (415 otherwise: see :mod:`.edge` on cross-site requests)."""
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
