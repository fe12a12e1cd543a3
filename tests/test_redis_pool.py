"""A Redis store built from a URL serves more open streams than redis-py's default pool of 100
connections: every open stream's reader holds a connection in its blocking ``XREAD``."""

from __future__ import annotations

import anyio
import pytest

from llm_sse_mount.events import Done, Start, TextDelta

from .test_stores import store_factory

pytestmark = pytest.mark.anyio

READERS = 160  # > redis-py's default max_connections (100)


async def test_more_waiting_readers_than_the_default_pool_all_get_their_frames(
    redis_url: str,
) -> None:
    async with store_factory(redis_url) as make:
        store = make(block=2.0)
        ids = [f"s{i}" for i in range(READERS)]
        for sid in ids:
            await store.create(sid)
            await store.append(sid, [Start(sid, "m")])
        got: dict[str, list[str]] = {}

        async def follow(sid: str) -> None:
            texts: list[str] = []
            async for batch in store.read(sid, after=0):  # waits in XREAD: nothing new yet
                texts += [e.text for _, e in batch if isinstance(e, TextDelta)]
            got[sid] = texts

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for sid in ids:
                    tg.start_soon(follow, sid)
                await anyio.sleep(0.5)  # every reader is blocked on its own connection now
                for sid in ids:
                    await store.append(sid, [TextDelta("hi"), Done("stop")])
        assert got == {sid: ["hi"] for sid in ids}
