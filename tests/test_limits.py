"""Limits per principal: requests per period, concurrent streams, tokens per minute; each rule
on the memory store and on Redis, through the limiter and through a running mount."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

from llm_sse_mount import ConfigError, LLMMount, LLMSSEError, RateLimited, Scripted
from llm_sse_mount.core.access import BearerTokens, Principal
from llm_sse_mount.core.limits import (
    Limiter,
    Limits,
    LimitStore,
    MemoryLimitStore,
    Rate,
    RedisLimitStore,
)
from llm_sse_mount.events import Finish, Usage
from llm_sse_mount.providers.scripted import Emit, Hang, Text

from .support.access_apps import CHAT, events_of, host_app
from .support.servers import ServerThread

Serve = Callable[..., ServerThread]
StoreFactory = Callable[[], LimitStore]


@pytest.fixture(params=["memory", "redis"])
def new_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """A factory of stores sharing one budget space (two Redis stores = two workers)."""
    if request.param == "memory":
        yield MemoryLimitStore
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"test-limits:{uuid.uuid4().hex}:"
    yield lambda: RedisLimitStore(url, prefix=prefix)
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


# --- rates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("60/minute", Rate(60, 60)),
        ("10/second", Rate(10, 1)),
        ("1000/hour", Rate(1000, 3600)),
        ("5/10s", Rate(5, 10)),
        ("100 per day", Rate(100, 86400)),
        ("3/min", Rate(3, 60)),
        (" 2 / hours ", Rate(2, 3600)),
    ],
)
def test_rate_parse(text: str, rate: Rate) -> None:
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["", "60", "60/fortnight", "-1/minute", "0/minute", "x/second"])
def test_rate_parse_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        Rate.parse(text)


def test_limits_validate() -> None:
    assert Limits(requests="2/second").rate == Rate(2, 1)
    with pytest.raises(ConfigError):
        Limits(concurrent=0)
    with pytest.raises(ConfigError):
        Limits(tokens_per_minute=0)


# --- the limiter, on each store ------------------------------------------------------------------


@pytest.mark.anyio
async def test_requests_burst_then_refused_with_exact_retry_after(new_store: StoreFactory) -> None:
    limiter = Limiter(Limits(requests=Rate(3, 60)), new_store())
    for _ in range(3):
        await limiter.admit("alice")
    with pytest.raises(RateLimited) as refused:
        await limiter.admit("alice")
    assert refused.value.retry_after is not None
    assert 19.0 < refused.value.retry_after <= 20.05  # one request back every 20 s
    await limiter.admit("bob")  # budgets are per principal
    await limiter.aclose()


@pytest.mark.anyio
async def test_budget_refills_evenly(new_store: StoreFactory) -> None:
    limiter = Limiter(Limits(requests=Rate(2, 1.0)), new_store())
    await limiter.admit("a")
    await limiter.admit("a")
    with pytest.raises(RateLimited):
        await limiter.admit("a")
    await anyio.sleep(0.6)  # one request refills every 0.5 s
    await limiter.admit("a")
    with pytest.raises(RateLimited):
        await limiter.admit("a")
    await limiter.aclose()


@pytest.mark.anyio
async def test_concurrency_slots(new_store: StoreFactory) -> None:
    limiter = Limiter(Limits(concurrent=2), new_store())
    first = await limiter.admit("a")
    await limiter.admit("a")
    with pytest.raises(RateLimited) as refused:
        await limiter.admit("a")
    assert refused.value.retry_after == 1
    await limiter.admit("b")
    await first.release()
    await first.release()  # idempotent: must not free someone else's slot
    await limiter.admit("a")
    with pytest.raises(RateLimited):
        await limiter.admit("a")
    await limiter.aclose()


@pytest.mark.anyio
async def test_hold_releases_the_slot_when_the_body_fails(new_store: StoreFactory) -> None:
    limiter = Limiter(Limits(concurrent=1), new_store())
    lease = await limiter.admit("a")

    async def boom() -> None:
        raise ValueError("stream failed")

    with pytest.raises(ValueError, match="stream failed"):
        await lease.hold(boom)
    await limiter.admit("a")
    await limiter.aclose()


@pytest.mark.anyio
async def test_tokens_per_minute_counts_growth_of_cumulative_usage(
    new_store: StoreFactory,
) -> None:
    limiter = Limiter(Limits(tokens_per_minute=100), new_store())
    lease = await limiter.admit("a")
    await lease.record_usage(Usage(10, 20, 30))
    await lease.record_usage(Usage(10, 50, 60))  # cumulative: 60 in all, not 90
    lease2 = await limiter.admit("a")  # 60 of 100 spent: still admitted
    await lease2.record_usage(Usage(30, 30, 60))  # 120 spent: the budget is in debt
    with pytest.raises(RateLimited) as refused:
        await limiter.admit("a")
    # 0.6 s refills a token; 21 tokens (20 of debt + the one the next request needs) ≈ 12.6 s.
    assert refused.value.retry_after is not None
    assert 12.0 < refused.value.retry_after <= 12.65
    await limiter.admit("b")
    await limiter.aclose()


@pytest.mark.anyio
async def test_principal_limits_override_the_mount_limits(new_store: StoreFactory) -> None:
    limiter = Limiter(Limits(requests=Rate(100, 60)), new_store())
    strict = Limits(requests=Rate(1, 60))
    await limiter.admit("vip")
    await limiter.admit("trial", strict)
    with pytest.raises(RateLimited):
        await limiter.admit("trial", strict)
    await limiter.admit("vip")
    await limiter.aclose()


# --- Redis specifics ------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    import redis

    prefix = f"test-limits:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.anyio
async def test_redis_workers_share_one_budget_and_every_key_expires(
    redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio

    limits = Limits(requests=Rate(2, 60), concurrent=5, tokens_per_minute=1000)
    worker_a = Limiter(limits, RedisLimitStore(redis_url, prefix=redis_prefix))
    worker_b = Limiter(limits, RedisLimitStore(redis_url, prefix=redis_prefix))
    lease = await worker_a.admit("alice")
    await lease.record_usage(Usage(1, 1, 2))
    await worker_b.admit("alice")
    with pytest.raises(RateLimited):
        await worker_a.admit("alice")
    with pytest.raises(RateLimited):
        await worker_b.admit("alice")
    client = redis.asyncio.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(redis_prefix + "*")]
    assert len(keys) == 3  # requests, tokens, slots
    for key in keys:
        ttl = await client.pttl(key)
        assert 0 < ttl <= 61_000, (key, ttl)
    await client.aclose()
    await worker_a.aclose()
    await worker_b.aclose()


@pytest.mark.anyio
async def test_redis_slot_of_a_dead_worker_lapses_but_a_live_one_is_kept(
    redis_url: str, redis_prefix: str
) -> None:
    limits = Limits(concurrent=1)
    live = Limiter(limits, RedisLimitStore(redis_url, prefix=redis_prefix), slot_ttl=0.3)
    dead = Limiter(limits, RedisLimitStore(redis_url, prefix=redis_prefix), slot_ttl=0.3)
    await dead.admit("a")  # a worker that died holding a slot: never released, never refreshed
    with pytest.raises(RateLimited):
        await live.admit("a")
    await anyio.sleep(0.4)
    lease = await live.admit("a")

    async def long_stream() -> None:
        await anyio.sleep(0.8)  # well past slot_ttl: the keep-alive must renew it
        with pytest.raises(RateLimited):
            await dead.admit("a")

    await lease.hold(long_stream)
    await dead.admit("a")  # released at once when the stream ended
    await live.aclose()
    await dead.aclose()


@pytest.mark.anyio
async def test_redis_down_refuses_with_503() -> None:
    store = RedisLimitStore("redis://127.0.0.1:1/0")
    limiter = Limiter(Limits(requests=Rate(10, 60)), store)
    with pytest.raises(LLMSSEError) as failed:
        await limiter.admit("a")
    assert failed.value.code == "limits_unavailable"
    assert failed.value.status == 503
    await limiter.aclose()


@pytest.mark.anyio
async def test_redis_that_never_answers_refuses_within_the_timeout() -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        store = RedisLimitStore(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        limiter = Limiter(Limits(requests=Rate(10, 60)), store)
        started = anyio.current_time()
        with pytest.raises(LLMSSEError) as failed:
            await limiter.admit("a")
        assert failed.value.code == "limits_unavailable"
        assert anyio.current_time() - started < 2.0
        await limiter.aclose()


def test_redis_store_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(RedisLimitStore("redis://:hunter2@cache:6379/0"))


# --- through a running mount -----------------------------------------------------------------


def mount_with(store: LimitStore, limits: Limits, **kwargs: Any) -> LLMMount:
    kwargs.setdefault("provider", Scripted(pace=0, answer="Hi", reasoning=""))
    return LLMMount(limits=limits, limits_store=store, **kwargs)


def test_rate_limit_429_with_retry_after(serve_app: Serve, new_store: StoreFactory) -> None:
    tokens = BearerTokens({"ta": "alice", "tb": "bob"})
    mount = mount_with(new_store(), Limits(requests="2/minute"), authorize=tokens)
    url = serve_app(host_app(mount)).url + "/llm/chat"
    alice = {"Authorization": "Bearer ta"}
    assert httpx.post(url, json=CHAT, headers=alice).status_code == 200
    assert httpx.post(url, json=CHAT, headers=alice).status_code == 200
    refused = httpx.post(url, json=CHAT, headers=alice)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) in (29, 30)  # one request back every 30 s
    assert httpx.post(url, json=CHAT, headers={"Authorization": "Bearer tb"}).status_code == 200


def test_anonymous_callers_are_limited_by_address(serve_app: Serve) -> None:
    mount = mount_with(MemoryLimitStore(), Limits(requests="1/hour"))
    url = serve_app(host_app(mount)).url
    assert httpx.get(url + "/llm/chat", params={"prompt": "x"}).status_code == 200
    assert httpx.get(url + "/llm/chat", params={"prompt": "x"}).status_code == 429
    assert httpx.get(url + "/llm/models").status_code == 200  # listing spends nothing


def test_concurrency_slot_is_released_when_the_client_disconnects(
    serve_app: Serve, new_store: StoreFactory
) -> None:
    provider = Scripted(script=[Text("Hello"), Hang()])
    mount = mount_with(new_store(), Limits(concurrent=1), provider=provider)
    url = serve_app(host_app(mount)).url + "/llm/chat"
    with httpx.Client(timeout=5) as first, first.stream("POST", url, json=CHAT) as stream:
        assert stream.status_code == 200
        # Keep the iterator referenced: a dropped httpx line iterator closes the connection.
        lines = stream.iter_lines()
        for line in lines:
            if line == "event: delta":
                break
        busy = httpx.post(url, json=CHAT, timeout=5)
        assert busy.status_code == 429
        assert busy.headers["retry-after"] == "1"
    # The first client is gone (connection closed): its slot comes back at once.
    left = time.monotonic()
    provider.script = [Text("again")]
    while True:
        r = httpx.post(url, json=CHAT, timeout=5)
        if r.status_code == 200:
            break
        assert r.status_code == 429
        assert time.monotonic() - left < 1.0, "the slot was not released within 1 s"
        time.sleep(0.02)
    assert "".join(d["text"] for e, d in events_of(r) if e == "delta") == "again"


def test_finished_streams_free_their_slot(serve_app: Serve, new_store: StoreFactory) -> None:
    mount = mount_with(new_store(), Limits(concurrent=1))
    url = serve_app(host_app(mount)).url + "/llm/chat"
    with httpx.Client(timeout=5) as client:
        for _ in range(5):
            assert client.post(url, json=CHAT).status_code == 200


def test_upstream_failure_before_the_stream_frees_the_slot(serve_app: Serve) -> None:
    from llm_sse_mount import UpstreamError

    provider = Scripted(fail_open=UpstreamError("nope", code="upstream_rejected"))
    mount = mount_with(MemoryLimitStore(), Limits(concurrent=1), provider=provider, retries=0)
    url = serve_app(host_app(mount)).url + "/llm/chat"
    for _ in range(3):
        assert httpx.post(url, json=CHAT).status_code == 400


def test_tokens_per_minute_through_the_mount(serve_app: Serve, new_store: StoreFactory) -> None:
    script = [Text("Hi"), Emit(Usage(30, 20, 50)), Emit(Usage(40, 40, 80)), Emit(Finish("stop"))]
    mount = mount_with(new_store(), Limits(tokens_per_minute=100), provider=Scripted(script=script))
    url = serve_app(host_app(mount)).url + "/llm/chat"
    first = httpx.post(url, json=CHAT)
    assert ("usage", {"prompt_tokens": 40, "completion_tokens": 40, "total_tokens": 80}) in (
        events_of(first)
    )
    assert httpx.post(url, json=CHAT).status_code == 200  # 80 of 100 spent
    refused = httpx.post(url, json=CHAT)  # 160 spent: refused until 61 tokens refill
    assert refused.status_code == 429
    assert 35 <= int(refused.headers["retry-after"]) <= 37  # 61 tokens at 100/minute


def test_leaving_before_the_usage_report_still_pays_for_the_prompt(
    serve_app: Serve, new_store: StoreFactory
) -> None:
    # A client could send big prompts and hang up before the upstream reports usage: the
    # upstream bills the prompt all the same, so its estimate is charged at admission.
    mount = mount_with(
        new_store(), Limits(tokens_per_minute=1000), provider=Scripted(script=[Hang()])
    )
    url = serve_app(host_app(mount)).url + "/llm/chat"
    big = {"messages": [{"role": "user", "content": "x" * 8000}]}  # ~2000 tokens: 1 min of debt
    with httpx.Client(timeout=5) as client, client.stream("POST", url, json=big) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines) == "retry: 1000"  # the first frame tells EventSource how to resume
        assert next(lines).startswith("id:")
    refused = httpx.post(url, json=CHAT)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 55 <= int(refused.headers["retry-after"]) <= 61


def test_principal_limits_through_the_mount(serve_app: Serve) -> None:
    tokens = BearerTokens(
        {"t-trial": Principal("trial", limits=Limits(requests="1/hour")), "t-paid": "paid"}
    )
    mount = mount_with(MemoryLimitStore(), Limits(requests="100/hour"), authorize=tokens)
    url = serve_app(host_app(mount)).url + "/llm/chat"
    trial = {"Authorization": "Bearer t-trial"}
    assert httpx.post(url, json=CHAT, headers=trial).status_code == 200
    assert httpx.post(url, json=CHAT, headers=trial).status_code == 429
    assert httpx.post(url, json=CHAT, headers={"Authorization": "Bearer t-paid"}).status_code == 200


def test_principal_limits_apply_without_mount_limits(serve_app: Serve) -> None:
    tokens = BearerTokens({"t": Principal("trial", limits=Limits(requests="1/hour"))})
    mount = LLMMount(provider=Scripted(pace=0, answer="Hi", reasoning=""), authorize=tokens)
    url = serve_app(host_app(mount)).url + "/llm/chat"
    auth = {"Authorization": "Bearer t"}
    assert httpx.post(url, json=CHAT, headers=auth).status_code == 200
    assert httpx.post(url, json=CHAT, headers=auth).status_code == 429


def test_refused_models_spend_no_budget(serve_app: Serve) -> None:
    tokens = BearerTokens({"t": Principal("alice", models={"scripted-1"})})
    limits = Limits(requests="1/hour")
    mount = mount_with(MemoryLimitStore(), limits, authorize=tokens, models=["other"])
    url = serve_app(host_app(mount)).url + "/llm/chat"
    auth = {"Authorization": "Bearer t"}
    for _ in range(3):
        assert httpx.post(url, json={**CHAT, "model": "other"}, headers=auth).status_code == 403
    assert httpx.post(url, json=CHAT, headers=auth).status_code == 200
