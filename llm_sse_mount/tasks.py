"""Two small concurrency helpers shared by the core and the stores.

- :func:`beside` runs a helper task while a block runs, and re-raises the block's own
  exception as is (a plain task group would wrap it in an ``ExceptionGroup``, and every caller
  here catches :class:`~llm_sse_mount.errors.LLMSSEError`).
- :func:`every` is the heartbeat loop: call a coroutine every ``interval`` seconds, log and go
  on when it fails (the store may come back before a lease lapses).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio

__all__ = ["beside", "every"]

logger = logging.getLogger("llm_sse_mount")


@asynccontextmanager
async def beside(task: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[anyio.CancelScope]:
    """Run ``task`` in the background while the context is open; cancel it on exit.

    Yields the group's cancel scope: cancelling it ends the block (the block then exits
    normally, as a cancelled scope does)."""
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(task)
        try:
            yield tg.cancel_scope
        except Exception as exc:
            error = exc
        finally:
            tg.cancel_scope.cancel()
    if error is not None:
        raise error


async def every(
    interval: float,
    beat: Callable[[], Awaitable[object]],
    what: str,
    *,
    first: bool = False,
    errors: tuple[type[BaseException], ...] = (Exception,),
) -> None:
    """Call ``beat`` every ``interval`` seconds until cancelled (``first``: once at once too).
    A failing beat is logged as ``what`` and retried at the next interval."""
    if not first:
        await anyio.sleep(interval)
    while True:
        try:
            await beat()
        except errors as exc:
            logger.warning("%s failed: %r", what, exc)
        await anyio.sleep(interval)
