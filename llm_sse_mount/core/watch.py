"""Run a step of a request while watching for its client to leave."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.types import Message, Receive

from ..tasks import beside

__all__ = ["until_disconnected"]

T = TypeVar("T")


async def until_disconnected(receive: Receive, step: Callable[[], Awaitable[T]]) -> T | None:
    """``await step()``, unless the client disconnects first: then the step is cancelled (and
    with it, say, the upstream request it was making) and ``None`` is returned. The step's own
    exception is raised as is."""
    result: list[T] = []

    async def watch() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    async with beside(watch) as scope:
        result.append(await step())
    return result[0] if result else None
