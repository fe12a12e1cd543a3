"""A mount served on a real socket with an ``openai`` SDK client pointed at it, and the
completion records it produced (for the Responses API tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import openai
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount
from llm_sse_mount.core.records import CompletionRecord
from llm_sse_mount.providers.base import Provider

from .servers import ServerThread

__all__ = ["Running"]


class Running:
    """``Running(serve_app, provider, **mount_kwargs)``: ``.client``, ``.base_url`` (the
    ``/v1`` root), ``.record()`` (waits for ``on_complete``), ``.records`` (all of them)."""

    def __init__(
        self, serve_app: Callable[..., ServerThread], provider: Provider, **mount_kw: Any
    ) -> None:
        self.records: list[CompletionRecord] = []
        self.done = threading.Event()

        def on_complete(record: CompletionRecord) -> None:
            self.records.append(record)
            self.done.set()

        mount_kw.setdefault("models", ["m1", "m2"])
        mount_kw.setdefault("retries", 0)
        self.mount = LLMMount(provider=provider, model="m1", on_complete=on_complete, **mount_kw)
        self.server = serve_app(Starlette(routes=[Mount("/llm", app=self.mount)]))
        self.base_url = self.server.url + "/llm/v1"
        self.client = openai.OpenAI(base_url=self.base_url, api_key="unused", max_retries=0)

    def record(self, timeout: float = 3.0) -> CompletionRecord:
        assert self.done.wait(timeout), "on_complete was not called"
        return self.records[-1]
