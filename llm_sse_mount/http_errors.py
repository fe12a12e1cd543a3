"""Errors before the first frame: plain HTTP with ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

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
    """The request body as JSON, read no further than ``limit`` bytes."""
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
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("the request body is not valid JSON", code="invalid_json") from None
