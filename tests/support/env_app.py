"""An app for subprocess servers, configured entirely by ``LLM_SSE_*`` variables: a Starlette
host with ``LLMMount.from_env()`` at ``/llm`` (``uvicorn tests.support.env_app:app``)."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount

logging.basicConfig(level=logging.INFO)

mount = LLMMount.from_env()
app = Starlette(routes=[Mount("/llm", app=mount)], lifespan=mount.lifespan)
