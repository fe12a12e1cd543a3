"""The same mount in a FastAPI app, next to ordinary routes::

    uvicorn example_app.fastapi_app:app

``/`` is the example page, ``/api/hello`` an ordinary JSON route, ``/llm`` the mount.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from llm_sse_mount import LLMMount, mask_access_tokens

from .app import STATIC_DIR, page

__all__ = ["app", "create_app"]


def create_app(mount: LLMMount | None = None) -> FastAPI:
    llm = mount if mount is not None else LLMMount.from_env()
    # EventSource sends its token as ?access_token=: keep it out of uvicorn's access log.
    mask_access_tokens()
    api = FastAPI(title="llm_sse_mount example", lifespan=llm.lifespan)

    @api.get("/", include_in_schema=False)
    async def index() -> Response:
        return page("index.html")

    @api.get("/eventsource.html", include_in_schema=False)
    async def eventsource_page() -> Response:
        return page("eventsource.html")

    @api.get("/api/hello")
    async def hello(name: str = "world") -> dict[str, str]:
        """An ordinary route: the mount lives next to the host's own API."""
        return {"hello": name}

    api.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    api.mount("/llm", llm)
    api.state.llm = llm
    return api


app = create_app()
