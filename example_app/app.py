"""A Starlette host app: its own page at ``/`` and the LLM mount at ``/llm``.

Serve it with ``python -m example_app``, or ``uvicorn example_app.app:create_app --factory``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from llm_sse_mount import LLMMount, mask_access_tokens

__all__ = ["PAGE_HEADERS", "STATIC_DIR", "create_app", "page"]

STATIC_DIR = Path(__file__).with_name("static")

#: Everything the page uses comes from this server: the policy makes the browser enforce it.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-cache",
}


def page(name: str) -> Response:
    """One of the example's HTML pages."""
    return FileResponse(STATIC_DIR / name, media_type="text/html", headers=PAGE_HEADERS)


async def index(request: Request) -> Response:
    return page("index.html")


async def eventsource_page(request: Request) -> Response:
    return page("eventsource.html")


def create_app(mount: LLMMount | None = None) -> Starlette:
    """The host app. Without ``mount``, the mount is configured from ``LLM_SSE_*`` variables:
    the embedded provider by default, a real one with ``LLM_SSE_PROVIDER``."""
    llm = mount if mount is not None else LLMMount.from_env()
    # EventSource sends its token as ?access_token=: keep it out of uvicorn's access log.
    mask_access_tokens()
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/eventsource.html", eventsource_page),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
            Mount("/llm", app=llm),
        ],
        # A mounted app gets no lifespan of its own: the host hands it the mount's.
        lifespan=llm.lifespan,
    )
    app.state.llm = llm
    return app
