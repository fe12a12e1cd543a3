"""The Redis store and the Redis limits on a real three-master Redis Cluster.

``LLM_SSE_STORE=redis+cluster://127.0.0.1:<port>`` (one node seeds the client) makes both the
stream store and the limit store use ``redis.asyncio.RedisCluster``; the fixture starts the
cluster once per session (``tests/support/redis_cluster.py``).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from llm_sse_mount import LLMMount
from llm_sse_mount.core.limit_stores import RedisLimitStore
from llm_sse_mount.errors import ConfigError
from llm_sse_mount.events import Done, TextDelta
from llm_sse_mount.store.redis import RedisStore

from .support.redis_cluster import RedisClusterInfo
from .support.resume_app import ANSWER
from .support.servers import ServerProcess, serve_subprocess
from .support.sse_client import assert_complete, delta_text, read_stream, resume_until_done

APP = "tests.support.resume_app:make_app"


def test_a_cluster_url_builds_cluster_clients_for_both_stores() -> None:
    pytest.importorskip("redis")
    from redis.asyncio.cluster import RedisCluster

    mount = LLMMount.from_env(
        {"LLM_SSE_STORE": "redis+cluster://127.0.0.1:7000", "LLM_SSE_RATE_LIMIT": "5/minute"}
    )
    assert isinstance(mount.store, RedisStore)
    assert isinstance(mount.store.client, RedisCluster)
    assert mount.access.limiter is not None
    limits = mount.access.limiter.store
    assert isinstance(limits, RedisLimitStore)
    limits._script("gcra", "return 1")  # builds the client without connecting
    assert isinstance(limits._client, RedisCluster)
    # A cluster has one database: a /<db> other than 0 is a configuration error.
    with pytest.raises(ConfigError, match="database 0"):
        LLMMount.from_env({"LLM_SSE_STORE": "redis+cluster://127.0.0.1:7000/2"})


def test_the_cluster_starts_quickly(redis_cluster: RedisClusterInfo) -> None:
    print(f"three-master cluster ready in {redis_cluster.started_in:.2f} s")
    assert len(redis_cluster.ports) == 3
    assert redis_cluster.started_in < 10


def _keys_by_node(info: RedisClusterInfo, prefix: str) -> dict[int, list[bytes]]:
    import redis

    out: dict[int, list[bytes]] = {}
    for port in info.ports:
        node = redis.Redis(port=port)
        try:
            out[port] = list(node.scan_iter(match=prefix + "*", count=1000))
        finally:
            node.close()
    return out


@pytest.mark.anyio
async def test_store_scripts_run_on_the_cluster_and_keys_spread_over_nodes(
    redis_cluster: RedisClusterInfo,
) -> None:
    prefix = f"llm_sse_cl:{uuid.uuid4().hex[:8]}:"
    store = RedisStore(redis_cluster.url, prefix=prefix, retention=30)
    ids = [f"s{i}" for i in range(12)]
    try:
        for sid in ids:
            await store.create(sid)
            async with store.lease(sid):
                await store.append(sid, [TextDelta("前"), TextDelta(sid)])
                await store.append(sid, [Done("stop")])
        for sid in ids:
            frames = [f for batch in [b async for b in store.read(sid)] for f in batch]
            assert frames == [(0, TextDelta("前")), (1, TextDelta(sid)), (2, Done("stop"))]
    finally:
        await store.aclose()
    by_node = _keys_by_node(redis_cluster, prefix)
    # Every stream's keys sit on one node (the hash tag), and streams spread over the nodes.
    for sid in ids:
        holders = [
            p for p, keys in by_node.items() if any(f"{{{sid}}}".encode() in k for k in keys)
        ]
        assert len(holders) == 1, (sid, holders)
    assert sum(1 for keys in by_node.values() if keys) >= 2, by_node


@pytest.mark.anyio
async def test_limit_scripts_run_on_the_cluster(redis_cluster: RedisClusterInfo) -> None:
    store = RedisLimitStore(redis_cluster.url, prefix=f"llm_sse_cl:{uuid.uuid4().hex[:8]}:")
    try:
        waits = [await store.gcra(f"requests:k{i % 4}", 60, 2, 1, "hit") for i in range(12)]
        assert waits[:8] == [0.0] * 8 and all(w > 0 for w in waits[8:]), waits
        assert await store.acquire("slots:a", "one", 1, 5)
        assert not await store.acquire("slots:a", "two", 1, 5)
        await store.release("slots:a", "one")
        assert await store.acquire("slots:a", "two", 1, 5)
    finally:
        await store.aclose()


@contextlib.contextmanager
def cluster_workers(env: dict[str, str]) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with (
        serve_subprocess(APP, env=env, factory=True, ready_path="/llm/health") as a,
        serve_subprocess(APP, env=env, factory=True, ready_path="/llm/health") as b,
    ):
        assert a.pid != b.pid
        yield a, b


def test_resume_across_two_workers_on_the_cluster(redis_cluster: RedisClusterInfo) -> None:
    env = {
        "LLM_SSE_STORE": redis_cluster.url,
        "LLM_SSE_STORE_PREFIX": f"llm_sse_cl:{uuid.uuid4().hex[:8]}:",
        "LLM_SSE_RESUME_GRACE": "5",
        "LLM_SSE_STORE_LEASE_TTL": "1",
        "RESUME_TEST_PACE": "0.01",
    }
    with cluster_workers(env) as (wa, wb):
        a, b = wa.url + "/llm", wb.url + "/llm"
        first = read_stream(a + "/chat", params={"prompt": "hi"}, stop_after=8)
        rest = read_stream(b + "/chat", headers={"Last-Event-ID": first.last_id})
        assert rest.frames[0].seq == 8
        assert_complete(first.frames + rest.frames, ANSWER)

        rng = random.Random(14)
        cuts = iter([rng.randint(1, 20) for _ in range(6)])
        start = read_stream(a + "/chat", params={"prompt": "hi"}, stop_after=next(cuts))
        frames = resume_until_done(
            start, lambda attempt: (b, a)[attempt % 2] + "/chat", lambda: next(cuts, None)
        )
        assert_complete(frames, ANSWER)
        assert delta_text(frames) == ANSWER


def test_limits_are_shared_by_two_workers_on_the_cluster(redis_cluster: RedisClusterInfo) -> None:
    env = {
        "LLM_SSE_STORE": redis_cluster.url,
        "LLM_SSE_STORE_PREFIX": f"llm_sse_cl:{uuid.uuid4().hex[:8]}:",
        "LLM_SSE_RATE_LIMIT": "4/minute",
        "LLM_SSE_MAX_CONCURRENT": "1",
        # Slow enough that the first stream is still open while the other worker is asked.
        "RESUME_TEST_PACE": "0.02",
    }
    with cluster_workers(env) as (wa, wb):
        a, b = wa.url + "/llm/chat", wb.url + "/llm/chat"
        opened = threading.Event()
        finished = threading.Event()

        def long_reader() -> None:
            read_stream(a, params={"prompt": "hi"}, on_frame=lambda f: opened.set())
            finished.set()

        thread = threading.Thread(target=long_reader, daemon=True)
        thread.start()
        assert opened.wait(5)
        # The slot is held on worker a: worker b refuses for concurrency.
        busy = httpx.get(b, params={"prompt": "hi"})
        assert busy.status_code == 429, busy.text
        assert "at once" in busy.json()["error"]["message"]
        assert finished.wait(15)
        thread.join(5)
        # 4 per minute across both workers, and the refusal for concurrency cost nothing:
        # the first stream and three more, then refused for the rate.
        statuses = [_start_when_free(url) for url in (b, a, b, a)]
        assert statuses == [200, 200, 200, 429], statuses


def _start_when_free(url: str) -> int:
    """Start a stream, waiting while the 429 is only the slot of a stream that just ended
    (it is released right after its done frame is sent)."""
    deadline = time.monotonic() + 3
    while True:
        run = read_stream(url, params={"prompt": "hi"})
        busy = run.status == 429 and b"at once" in run.body
        if not busy or time.monotonic() > deadline:
            return run.status
        time.sleep(0.05)
