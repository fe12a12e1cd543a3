"""A stream belongs to whoever started it: only its owner may resume, read or stop it; to
anyone else it does not exist. A stop is not a disconnect: it ends the stream at once, on any
worker, and closes the upstream; closing the tab with a resume grace keeps it going."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import BearerTokens, LLMMount, OpenAICompatible, Scripted
from llm_sse_mount.core.records import CompletionRecord
from llm_sse_mount.sse_decoder import SSEDecoder

from .support.fake_upstream import FakeUpstream, trickle
from .support.redis_cluster import RedisClusterInfo
from .support.servers import serve_subprocess

ALICE, BOB = {"Authorization": "Bearer alice-token"}, {"Authorization": "Bearer bob-token"}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
TOKEN_DELTA = b'data: {"choices":[{"index":0,"delta":{"content":"t "}}]}\n\n'


def slow_mount(**kwargs: object) -> LLMMount:
    tokens = BearerTokens({"alice-token": "alice", "bob-token": "bob"})
    provider = Scripted(answer="word " * 400, reasoning="", pace=0.01, jitter=0.0)
    return LLMMount(provider=provider, authorize=tokens, **kwargs)  # type: ignore[arg-type]


class Stream:
    """A native stream POSTed to ``url`` and read up to its start frame."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.client = httpx.Client(timeout=10)
        request = self.client.build_request("POST", url + "/chat", json=CHAT, headers=headers)
        self.response = self.client.send(request, stream=True)
        self.chunks = self.response.iter_raw()
        self.decoder = SSEDecoder()
        for chunk in self.chunks:
            for event in self.decoder.feed(chunk):
                if event.event == "start":
                    self.stream_id: str = json.loads(event.data)["stream_id"]
                    return
        raise AssertionError("no start frame")

    def rest(self) -> list[tuple[str, dict[str, object]]]:
        out = []
        for chunk in self.chunks:
            out += [(e.event, json.loads(e.data)) for e in self.decoder.feed(chunk) if e.data]
        return out

    def close(self) -> None:
        self.response.close()
        self.client.close()


def rest_of(response: httpx.Response) -> list[tuple[str, dict[str, object]]]:
    decoder, out = SSEDecoder(), []
    for chunk in response.iter_raw():
        out += [(e.event, json.loads(e.data)) for e in decoder.feed(chunk) if e.data]
    return out


@pytest.fixture
def base(serve_app) -> str:
    mount = slow_mount(resume_grace=30)
    return serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"


def test_a_foreign_principal_sees_the_same_404_as_for_no_stream(base: str) -> None:
    stream = Stream(base, ALICE)
    stream_id = stream.stream_id
    with closing(stream):
        nothing = httpx.get(base + "/chat/doesNotExist0", headers=BOB)
        attempts = [
            httpx.get(base + f"/chat/{stream_id}", headers=BOB),
            httpx.get(base + "/chat", headers={**BOB, "Last-Event-ID": f"{stream_id}:0"}),
            httpx.post(base + f"/chat/{stream_id}/stop", headers=BOB),
            httpx.delete(base + f"/chat/{stream_id}", headers=BOB),
        ]
        for attempt in attempts:
            assert (attempt.status_code, attempt.json()) == (404, nothing.json())
        # The owner reads it, from the start, while it runs.
        with httpx.stream("GET", base + f"/chat/{stream_id}", headers=ALICE) as mine:
            assert mine.status_code == 200
            chunks = mine.iter_raw()
            assert next(chunks).startswith(b"retry: 1000\nid: ")


def test_the_owner_stops_a_stream_for_every_reader_at_once(serve_app) -> None:
    records: list[CompletionRecord] = []
    mount = slow_mount(resume_grace=30, on_complete=records.append)
    base = serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"
    stream = Stream(base, ALICE)
    stream_id = stream.stream_id
    with closing(stream):
        stopped_at = time.monotonic()
        stop = httpx.post(base + f"/chat/{stream_id}/stop", headers=ALICE)
        assert stop.status_code == 204
        frames = stream.rest()
    assert frames[-1] == ("done", {"finish_reason": "cancelled"})
    assert time.monotonic() - stopped_at < 2.0
    deadline = time.monotonic() + 3
    while not records and time.monotonic() < deadline:
        time.sleep(0.01)
    (record,) = records
    assert (record.finish_reason, record.client_disconnected) == ("cancelled", False)
    # Stopped streams stay readable for their owner, ending in the same done frame.
    again = httpx.get(base + f"/chat/{stream_id}", headers=ALICE)
    assert again.status_code == 200 and again.text.rstrip().endswith(
        '{"finish_reason":"cancelled"}'
    )


def test_stop_closes_the_upstream_within_a_second(serve_app, fake_upstream: FakeUpstream) -> None:
    fake_upstream.push(trickle(TOKEN_DELTA, 0.05))
    tokens = BearerTokens({"alice-token": "alice"})
    mount = LLMMount(
        provider=OpenAICompatible(fake_upstream.url + "/v1", "sk-test"),
        model="m",
        authorize=tokens,
        resume_grace=30,
    )
    base = serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"
    stream = Stream(base, ALICE)
    stream_id = stream.stream_id
    with closing(stream):
        assert httpx.post(base + f"/chat/{stream_id}/stop", headers=ALICE).status_code == 204
        assert fake_upstream.wait_closed(timeout=1.0) < 1.0


def test_closing_the_tab_keeps_the_answer_going_for_a_reconnect(base: str) -> None:
    stream = Stream(base, ALICE)
    stream_id = stream.stream_id
    stream.close()
    time.sleep(0.3)
    with httpx.stream("GET", base + f"/chat/{stream_id}", headers=ALICE) as again:
        frames = rest_of(again)
    assert frames[-1] == ("done", {"finish_reason": "stop"})


def test_on_an_open_mount_the_stream_id_is_the_capability(serve_app) -> None:
    mount = LLMMount(provider=Scripted(answer="open " * 50, pace=0.005, jitter=0.0))
    base = serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"
    stream = Stream(base, {})
    stream_id = stream.stream_id
    with closing(stream):
        # Anyone who holds the id may read and stop it (document: keep it secret); it is not
        # reused as an OpenAI or AI SDK id, nor logged at INFO.
        assert httpx.get(base + f"/chat/{stream_id}").status_code == 200
        assert httpx.delete(base + f"/chat/{stream_id}").status_code == 204


def test_readers_per_stream_are_capped(serve_app) -> None:
    mount = slow_mount(resume_grace=30, max_readers=2)
    base = serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"
    stream = Stream(base, ALICE)
    stream_id = stream.stream_id
    with closing(stream), httpx.stream("GET", base + f"/chat/{stream_id}", headers=ALICE) as two:
        assert two.status_code == 200
        chunks = two.iter_raw()  # held: a dropped iterator closes the response
        next(chunks)
        third = httpx.get(base + f"/chat/{stream_id}", headers=ALICE)
        assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_readers"


# --- several workers ---------------------------------------------------------------------------


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    import redis

    prefix = f"llm_sse_test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def stop_across_workers(store_url: str, prefix: str, fake_upstream: FakeUpstream) -> None:
    """A stream produced on worker A: a foreign principal cannot read or stop it on worker
    B, its owner stops it on B, and A's upstream closes and its reader sees done{cancelled}."""
    fake_upstream.push(trickle(TOKEN_DELTA, 0.05))
    env = {
        "LLM_SSE_PROVIDER": "openai",
        "LLM_SSE_BASE_URL": fake_upstream.url + "/v1",
        "LLM_SSE_API_KEY": "sk-test",
        "LLM_SSE_MODEL": "m",
        "LLM_SSE_CLIENT_TOKENS": "alice-token,bob-token",
        "LLM_SSE_STORE": store_url,
        "LLM_SSE_STORE_PREFIX": prefix,
        "LLM_SSE_RESUME_GRACE": "30",
    }
    app = "tests.support.env_app:app"
    with (
        serve_subprocess(app, env=env, ready_path="/llm/health") as a,
        serve_subprocess(app, env=env, ready_path="/llm/health") as b,
    ):
        stream = Stream(a.url + "/llm", ALICE)
        stream_id = stream.stream_id
        with closing(stream):
            frames: list[tuple[str, dict[str, object]]] = []
            reader = threading.Thread(target=lambda: frames.extend(stream.rest()))
            reader.start()
            for foreign in (
                httpx.get(b.url + f"/llm/chat/{stream_id}", headers=BOB),
                httpx.post(b.url + f"/llm/chat/{stream_id}/stop", headers=BOB),
            ):
                assert foreign.status_code == 404
            assert (
                httpx.post(b.url + f"/llm/chat/{stream_id}/stop", headers=ALICE).status_code == 204
            )
            assert fake_upstream.wait_closed(timeout=1.5) < 1.5
            reader.join(5)
        assert frames[-1] == ("done", {"finish_reason": "cancelled"})


@pytest.mark.redis
def test_a_stop_on_one_worker_ends_the_stream_produced_on_another(
    redis_url: str, redis_prefix: str, fake_upstream: FakeUpstream
) -> None:
    stop_across_workers(redis_url, redis_prefix, fake_upstream)


@pytest.mark.redis
def test_ownership_and_the_cross_worker_stop_on_a_redis_cluster(
    redis_cluster: RedisClusterInfo, fake_upstream: FakeUpstream
) -> None:
    stop_across_workers(redis_cluster.url, f"llm_sse_own:{uuid.uuid4().hex[:8]}:", fake_upstream)


# --- stuck and slow readers --------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_long_finished_stream_is_read_in_bounded_batches() -> None:
    from llm_sse_mount import MemoryStore
    from llm_sse_mount.events import Done, Start, TextDelta

    store = MemoryStore(batch=64)
    await store.create("s", None)
    await store.append("s", [Start("s", "m"), *(TextDelta("x" * 1000) for _ in range(1000))])
    await store.append("s", [Done("stop")])
    sizes = [len(batch) async for batch in store.read("s")]
    assert max(sizes) == 64 and sum(sizes) == 1002


@pytest.mark.anyio
async def test_an_open_reader_keeps_a_finished_stream_only_for_a_bounded_time() -> None:
    import anyio

    from llm_sse_mount import MemoryStore
    from llm_sse_mount.events import Done, Start

    store = MemoryStore(retention=0.2, reader_hold=0.3)
    await store.create("s", None)
    await store.append("s", [Start("s", "m"), Done("stop")])
    async with store.reader("s"):
        await anyio.sleep(0.3)
        assert await store.info("s") is not None  # a reader holds it a little longer...
        await anyio.sleep(0.3)
        assert await store.info("s") is None  # ...but not past the bound


def test_no_response_outlives_max_response_time(serve_app) -> None:
    mount = slow_mount(max_response_time=0.5)
    base = serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"
    stream = Stream(base, ALICE)
    started = time.monotonic()
    with closing(stream):
        frames = stream.rest()
    assert time.monotonic() - started < 2.0
    assert frames and frames[-1][0] != "done"  # cut off; the client may resume
