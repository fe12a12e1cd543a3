"""Stream store behaviour, one suite for every store: the in-memory default and Redis.

The Redis variant needs a Redis at ``REDIS_URL`` (skipped without one, a failure under
``LLM_SSE_REQUIRE_ALL=1``); each test works under its own key prefix and deletes it after.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from llm_sse_mount.codec import event_name
from llm_sse_mount.errors import NotFound, StreamInterrupted
from llm_sse_mount.events import (
    Done,
    Error,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from llm_sse_mount.store.base import Frame, StreamInfo, StreamStore
from llm_sse_mount.store.memory import MemoryStore

pytestmark = pytest.mark.anyio

LEASE_TTL = 0.6  # short, so lost-producer tests stay fast
BLOCK = 0.2

StoreFactory = Callable[..., StreamStore]


@asynccontextmanager
async def store_factory(url: str | None) -> AsyncIterator[StoreFactory]:
    """``make(retention=..., max_frames=...)`` builds a memory store (``url`` None) or a Redis
    store under a fresh key prefix; everything is closed and deleted afterwards."""
    stores: list[StreamStore] = []
    prefix = f"llm_sse_test:{uuid.uuid4().hex[:12]}:"

    def make(**kwargs: Any) -> StreamStore:
        store: StreamStore
        if url is None:
            store = MemoryStore(**kwargs)
        else:
            from llm_sse_mount.store.redis import RedisStore

            kwargs.setdefault("lease_ttl", LEASE_TTL)
            kwargs.setdefault("block", BLOCK)
            store = RedisStore(url, prefix=prefix, **kwargs)
        stores.append(store)
        return store

    try:
        yield make
    finally:
        for store in stores:
            await store.aclose()
        if url is not None:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(url)
            keys = [key async for key in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    async with store_factory(url) as make:
        yield make


@pytest.fixture
async def store(make_store: StoreFactory) -> StreamStore:
    return make_store()


async def collect(store: StreamStore, stream_id: str, after: int = -1) -> list[Frame]:
    out: list[Frame] = []
    async for batch in store.read(stream_id, after):
        out.extend(batch)
    return out


async def start(store: StreamStore, stream_id: str = "s1") -> str:
    await store.create(stream_id)
    await store.append(stream_id, [Start(stream_id, "m")])
    return stream_id


def texts(frames: list[Frame]) -> str:
    return "".join(e.text for _, e in frames if isinstance(e, TextDelta))


async def test_seq_starts_at_zero_and_grows_by_one_per_frame(store: StreamStore) -> None:
    sid = await start(store)
    assert await store.append(sid, [TextDelta("a")]) == 1
    assert await store.append(sid, [TextDelta("b"), TextDelta("c")]) == 3
    assert await store.append(sid, [Done("stop")]) == 4
    frames = await collect(store, sid)
    assert [seq for seq, _ in frames] == [0, 1, 2, 3, 4]
    assert frames[0][1] == Start(sid, "m")
    assert texts(frames) == "abc"
    assert await store.info(sid) == StreamInfo(4, True)


async def test_every_event_kind_survives_the_round_trip(store: StreamStore) -> None:
    events: list[StreamEvent] = [
        ReasoningDelta("思考…\n"),
        TextDelta('He said "hi"\r\n\\ 世界 ✨ \u2028'),
        ToolCallDelta(0, "call_1", "get_weather", '{"city":'),
        ToolCallDelta(0, None, None, '"Paris"}'),
        Usage(3, 4, 7),
        Error("upstream_error", "boom", True),
        Done("error"),
    ]
    sid = await start(store)
    await store.append(sid, events)
    frames = await collect(store, sid)
    assert [e for _, e in frames[1:]] == events


async def test_read_after_gives_exactly_the_later_frames(store: StreamStore) -> None:
    sid = await start(store)
    await store.append(sid, [TextDelta(str(i)) for i in range(1, 6)])
    await store.append(sid, [Done("stop")])
    frames = await collect(store, sid, after=2)
    assert [seq for seq, _ in frames] == [3, 4, 5, 6]
    assert texts(frames) == "345"


async def test_read_at_or_past_done_ends_at_once(store: StreamStore) -> None:
    sid = await start(store)
    last = await store.append(sid, [TextDelta("x"), Done("stop")])
    with anyio.fail_after(1):
        assert await collect(store, sid, after=last) == []


async def test_a_reader_ahead_of_a_running_stream_ends_with_it(store: StreamStore) -> None:
    sid = await start(store)
    got: list[Frame] = []

    async def follow() -> None:
        got.extend(await collect(store, sid, after=9))

    with anyio.fail_after(BLOCK * 3 + 2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(0.05)
            await store.append(sid, [TextDelta("a"), Done("stop")])
    assert got == []


async def test_live_reader_follows_appends_until_done(store: StreamStore) -> None:
    sid = await start(store)
    got: list[Frame] = []

    async def follow() -> None:
        async for batch in store.read(sid):
            got.extend(batch)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            for piece in ("Hel", "lo", " 世界"):
                await anyio.sleep(0.05)
                await store.append(sid, [TextDelta(piece)])
            await anyio.sleep(0.05)
            assert texts(got) == "Hello 世界"  # delivered live, before done
            await store.append(sid, [Done("stop")])
    assert [seq for seq, _ in got] == list(range(5))
    assert isinstance(got[-1][1], Done)


async def test_several_readers_each_get_every_frame_once(store: StreamStore) -> None:
    sid = await start(store)
    results: dict[int, list[Frame]] = {}

    async def follow(n: int, after: int) -> None:
        async with store.reader(sid):
            results[n] = await collect(store, sid, after)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(follow, n, -1)
            tg.start_soon(follow, 3, 0)
            for i in range(20):
                await store.append(sid, [TextDelta(f"{i},")])
                if i % 5 == 0:
                    await anyio.sleep(0.01)
            await store.append(sid, [Done("stop")])
    full = "".join(f"{i}," for i in range(20))
    for n in range(4):
        assert texts(results[n]) == full
        assert [seq for seq, _ in results[n]] == list(range(0 if n < 3 else 1, 22))


async def test_finished_stream_expires_after_retention(make_store: StoreFactory) -> None:
    store = make_store(retention=0.3)
    sid = await start(store)
    await store.append(sid, [TextDelta("x"), Done("stop")])
    assert await store.exists(sid)
    assert len(await collect(store, sid)) == 3
    await anyio.sleep(0.5)
    assert not await store.exists(sid)
    assert await store.info(sid) is None
    with pytest.raises(NotFound) as caught:
        await collect(store, sid)
    assert caught.value.code == "stream_not_found"


async def test_running_stream_does_not_expire(make_store: StoreFactory) -> None:
    store = make_store(retention=0.1)
    sid = await start(store)
    async with store.lease(sid):
        await anyio.sleep(LEASE_TTL * 2)
        assert await store.info(sid) == StreamInfo(0, False)


async def test_length_is_bounded_but_the_stream_can_still_end(make_store: StoreFactory) -> None:
    store = make_store(max_frames=4)
    sid = await start(store)
    await store.append(sid, [TextDelta("a"), TextDelta("b"), TextDelta("c")])
    with pytest.raises(StreamInterrupted) as caught:
        await store.append(sid, [TextDelta("d")])
    assert caught.value.code == "stream_too_long"
    await store.append(sid, [Error("stream_too_long", "cut", False), Done("error")])
    frames = await collect(store, sid)
    assert texts(frames) == "abc"
    assert [event_name(e) for _, e in frames][-2:] == ["error", "done"]


async def test_unknown_stream_is_not_found(store: StreamStore) -> None:
    assert not await store.exists("nope")
    assert await store.info("nope") is None
    with pytest.raises(NotFound) as caught:
        await collect(store, "nope")
    assert caught.value.code == "stream_not_found"


async def test_wait_abandoned_with_no_grace_returns_when_the_last_reader_leaves(
    store: StreamStore,
) -> None:
    sid = await start(store)
    returned_at: list[float] = []

    async def watch() -> None:
        await store.wait_abandoned(sid, 0)
        returned_at.append(time.monotonic())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, store.reader(sid):
            async with store.reader(sid):
                tg.start_soon(watch)
                await anyio.sleep(0.2)
            await anyio.sleep(0.2)
            assert not returned_at, "abandoned while a reader was still there"
            left = time.monotonic()
    # Promptly, not at the next retention sweep (a generous bound: CI boxes are loaded).
    assert returned_at[0] - left < 1.0


async def test_wait_abandoned_waits_the_grace_and_a_reconnect_restarts_it(
    store: StreamStore,
) -> None:
    sid = await start(store)
    grace = 0.5
    returned_at: list[float] = []

    async def watch() -> None:
        await store.wait_abandoned(sid, grace)
        returned_at.append(time.monotonic())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            async with store.reader(sid):
                tg.start_soon(watch)
                await anyio.sleep(0.1)
            await anyio.sleep(0.25)  # gone, but within the grace: a reconnect comes
            async with store.reader(sid):
                await anyio.sleep(0.3)
            left = time.monotonic()
    assert returned_at, "never abandoned"
    waited = returned_at[0] - left
    assert grace - 0.05 <= waited < grace + 0.7, waited


# --- Redis only: several processes, lost producers, outages ---------------------------------


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[StreamStore]:
    async with store_factory(redis_url) as make:
        yield make()


async def test_lost_producer_ends_every_reader_with_stream_lost(redis_store: StreamStore) -> None:
    store = redis_store
    sid = await start(store)
    await store.append(sid, [TextDelta("partial")])
    # Nobody holds the lease: like a producer whose process was killed after create().
    began = time.monotonic()
    results: list[list[Frame]] = []

    async def follow() -> None:
        results.append(await collect(store, sid, after=0))

    with anyio.fail_after(LEASE_TTL + BLOCK + 3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            tg.start_soon(follow)
    took = time.monotonic() - began
    assert took < LEASE_TTL + 2 * BLOCK + 0.5, took
    for frames in results:
        assert [seq for seq, _ in frames] == [1, 2, 3]
        error, done = frames[1][1], frames[2][1]
        assert isinstance(error, Error)
        assert error.code == "stream_lost"
        assert error.retryable
        assert done == Done("error")
    assert await store.info(sid) == StreamInfo(3, True)
    with pytest.raises(StreamInterrupted) as caught:  # a producer that comes back is told
        await store.append(sid, [TextDelta("late")])
    assert caught.value.code == "stream_lost"


async def test_a_leased_stream_is_never_declared_lost(redis_store: StreamStore) -> None:
    store = redis_store
    sid = await start(store)
    got: list[Frame] = []

    async def follow() -> None:
        got.extend(await collect(store, sid))

    async with anyio.create_task_group() as tg, store.lease(sid):
        tg.start_soon(follow)
        await anyio.sleep(LEASE_TTL * 3)
        await store.append(sid, [TextDelta("still here"), Done("stop")])
    assert texts(got) == "still here"
    assert [event_name(e) for _, e in got] == ["start", "delta", "done"]


async def test_every_redis_key_has_an_expiry(redis_store: StreamStore, redis_url: str) -> None:
    import redis.asyncio as aioredis

    from llm_sse_mount.store.redis import RedisStore

    store = redis_store
    assert isinstance(store, RedisStore)
    sid = await start(store)
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with store.lease(sid), store.reader(sid):
            await store.append(sid, [TextDelta("x")])
            await anyio.sleep(0.05)
            keys = [k async for k in client.scan_iter(match=f"{store.prefix}*")]
            assert len(keys) == 4
            for key in keys:
                assert await client.pttl(key) > 0, key
            await store.append(sid, [Done("stop")])
        keys = [k async for k in client.scan_iter(match=f"{store.prefix}*")]
        for key in keys:
            assert 0 < await client.pttl(key) <= (store.retention + 10) * 1000, key
    finally:
        await client.aclose()


async def test_unreachable_redis_is_store_unavailable() -> None:
    from llm_sse_mount.store.redis import RedisStore

    from .support.servers import free_port

    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        for call in (store.create("s"), store.info("s")):
            with pytest.raises(StreamInterrupted) as caught:
                await call
            assert caught.value.code == "store_unavailable"
            assert caught.value.status == 503
    finally:
        await store.aclose()
