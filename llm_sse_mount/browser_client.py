"""``GET <mount>/client.js``: the dependency-free browser client (``static/client.js``), served
by the mount itself so a host page needs no build step and no CDN."""

from __future__ import annotations

import hashlib
from importlib import resources

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["client_js_response"]

MEDIA_TYPE = "text/javascript; charset=utf-8"
#: Short enough that an upgraded package is picked up soon; the ETag makes revalidation cheap.
CACHE_CONTROL = "public, max-age=600"


def _read() -> bytes:
    return (resources.files("llm_sse_mount") / "static" / "client.js").read_bytes()


async def client_js_response(request: Request) -> Response:
    """The client module, with an ETag (``304 Not Modified`` when the browser has it)."""
    source = await anyio.to_thread.run_sync(_read)
    etag = '"' + hashlib.sha256(source).hexdigest()[:32] + '"'
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(source, media_type=MEDIA_TYPE, headers=headers)
