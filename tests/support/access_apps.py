"""Small builders shared by the access, limits, fuzz and secrets tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from llm_sse_mount import LLMMount, Scripted

__all__ = ["CHAT", "events_of", "host_app", "quick_mount"]

#: The smallest valid chat body.
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}


def quick_mount(provider: Any = None, **kwargs: Any) -> LLMMount:
    """A mount whose default provider answers at once ("Hello there", no pauses)."""
    if provider is None:
        provider = Scripted(pace=0, answer="Hello there", reasoning="")
    return LLMMount(provider=provider, **kwargs)


def host_app(mount: LLMMount, middleware: Sequence[Middleware] = ()) -> Starlette:
    """A host app with the mount at ``/llm`` (and its lifespan, which closes its stores)."""
    return Starlette(
        routes=[Mount("/llm", app=mount)], middleware=list(middleware), lifespan=mount.lifespan
    )


def events_of(response: httpx.Response) -> list[tuple[str, Any]]:
    """``(event, data)`` of every frame of a finished native stream."""
    out: list[tuple[str, Any]] = []
    for block in response.text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out
