"""Fault injection over real sockets: every way a client or an upstream misbehaves gets a clear
outcome, promptly, and nothing is left behind."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from llm_sse_mount import CompletionRecord, LLMMount, OpenAICompatible, Scripted
from llm_sse_mount.redaction import log_id

from .support.fake_upstream import (
    Body,
    Drop,
    FakeUpstream,
    Hang,
    Respond,
    Send,
    Sleep,
    openai_stream,
    trickle,
)
from .support.native import assert_contract, parse_frames, post_chat, text_of
from .support.servers import serve_subprocess

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
SLOW = [f"tok{i} " for i in range(200)]


class Host:
    """A host app with the mount at /llm, its completion records, and a task counter."""

    def __init__(self, up: FakeUpstream, **kwargs: Any) -> None:
        self.records: list[CompletionRecord] = []
        kwargs.setdefault("retries", 0)
        provider = kwargs.pop("provider", None) or OpenAICompatible(up.url + "/v1", "sk-k")
        self.mount = LLMMount(
            provider=provider, model="m", on_complete=self.records.append, **kwargs
        )

        async def tasks(request: Request) -> JSONResponse:
            return JSONResponse({"tasks": len(asyncio.all_tasks())})

        self.app = Starlette(
            routes=[Route("/tasks", tasks), Mount("/llm", app=self.mount)],
            middleware=[Middleware(GZipMiddleware, minimum_size=1)],
        )

    def wait_records(self, n: int, timeout: float = 3.0) -> list[CompletionRecord]:
        deadline = time.monotonic() + timeout
        while len(self.records) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.records) == n, self.records
        return self.records


def read_until(response: httpx.Response, needle: bytes) -> bytes:
    seen = b""
    for chunk in response.iter_raw():
        seen += chunk
        if needle in seen:
            return seen
    raise AssertionError(f"stream ended before {needle!r}: {seen!r}")


def closed_within(up: FakeUpstream, since: float, limit: float = 1.0) -> float:
    up.wait_closed(timeout=limit + 1.0)
    closed_at = up.connections[-1].closed_at
    assert closed_at is not None
    assert up.connections[-1].closed_by == "client"
    took = closed_at - since
    assert took < limit, f"upstream closed {took:.3f}s after the client left"
    return took


# --- the client goes away --------------------------------------------------------------------


def test_disconnect_before_the_upstream_answered_closes_it_within_a_second(
    serve_app, fake_upstream
):
    fake_upstream.push([Sleep(10), Respond(), Send(b"data: [DONE]\n\n")])
    host = Host(fake_upstream)
    server = serve_app(host.app)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/llm/chat", json=CHAT, timeout=httpx.Timeout(5, read=0.5))
    left = time.monotonic()
    closed_within(fake_upstream, left)
    record = host.wait_records(1)[0]
    assert record.client_disconnected and record.finish_reason == "cancelled"


def test_disconnect_while_waiting_for_the_first_token(serve_app, fake_upstream):
    fake_upstream.push([Respond(), Hang()])
    host = Host(fake_upstream)
    server = serve_app(host.app)
    with httpx.Client() as client, client.stream("POST", server.url + "/llm/chat", json=CHAT) as r:
        read_until(r, b"event: start")
    left = time.monotonic()
    closed_within(fake_upstream, left)
    record = host.wait_records(1)[0]
    assert record.finish_reason == "cancelled" and record.client_disconnected


def test_disconnect_mid_stream_closes_upstream_within_a_second(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(SLOW, pace=0.05))
    host = Host(fake_upstream)
    server = serve_app(host.app)
    with httpx.Client() as client, client.stream("POST", server.url + "/llm/chat", json=CHAT) as r:
        read_until(r, b"tok3 ")
    left = time.monotonic()
    closed_within(fake_upstream, left)
    record = host.wait_records(1)[0]
    assert record.finish_reason == "cancelled"
    assert record.time_to_first_token is not None


# --- timeouts --------------------------------------------------------------------------------


def test_no_status_line_in_time_is_a_504_before_the_stream(serve_app, fake_upstream):
    fake_upstream.push([Sleep(5), Respond()])
    server = serve_app(Host(fake_upstream, first_token_timeout=0.5).app)
    started = time.monotonic()
    response = httpx.post(server.url + "/llm/chat", json=CHAT, timeout=5)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 2
    closed_within(fake_upstream, started, limit=1.5)


def upstream_timeout_frames(server_url: str) -> list:
    response, raw = post_chat(server_url + "/llm/chat", CHAT)
    assert response.status_code == 200
    frames = parse_frames(raw)
    assert_contract(frames)
    assert frames[-2].event == "error"
    assert frames[-2].data["code"] == "upstream_timeout"
    assert frames[-2].data["retryable"] is True
    assert frames[-1].data == {"finish_reason": "error"}
    return frames


def test_first_token_timeout_after_the_start_is_an_error_frame(serve_app, fake_upstream):
    fake_upstream.push([Respond(), Hang()])
    server = serve_app(Host(fake_upstream, first_token_timeout=0.5).app)
    frames = upstream_timeout_frames(server.url)
    assert text_of(frames) == ""
    fake_upstream.wait_closed(timeout=2)


def test_idle_gap_between_events_times_out(serve_app, fake_upstream):
    raw = b'data: {"choices":[{"index":0,"delta":{"content":"one"}}]}\n\n'
    fake_upstream.push([Respond(), Send(raw), Hang()])
    server = serve_app(Host(fake_upstream, idle_timeout=0.5).app)
    assert text_of(upstream_timeout_frames(server.url)) == "one"


def test_trickle_of_bytes_that_never_makes_an_event_times_out(serve_app, fake_upstream):
    # Bytes keep arriving, so no socket-level timeout fires; no event ever completes, so the
    # first-token deadline does (idle gaps are measured between events, after the first).
    fake_upstream.push(trickle(b"x", interval=0.1))
    server = serve_app(Host(fake_upstream, first_token_timeout=0.6).app)
    upstream_timeout_frames(server.url)


def test_trickle_after_a_first_event_hits_the_idle_timeout(serve_app, fake_upstream):
    first = b'data: {"choices":[{"index":0,"delta":{"content":"one"}}]}\n\n'
    fake_upstream.push(
        [Respond(), Send(first), *list(trickle(b":\n", interval=0.1, count=100))[1:]]
    )
    server = serve_app(Host(fake_upstream, idle_timeout=0.6).app)
    assert text_of(upstream_timeout_frames(server.url)) == "one"


def test_total_time_is_bounded(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(SLOW, pace=0.1))
    server = serve_app(Host(fake_upstream, total_timeout=0.8).app)
    started = time.monotonic()
    frames = upstream_timeout_frames(server.url)
    assert 0.7 < time.monotonic() - started < 2.5
    assert 0 < len(text_of(frames)) < len("".join(SLOW))


# --- retries and fallbacks -------------------------------------------------------------------


def test_429_is_retried_after_retry_after(serve_app, fake_upstream):
    fake_upstream.push([Body(429, b'{"error":{"message":"slow"}}', {"Retry-After": "1"})])
    fake_upstream.push(openai_stream(["after ", "retry"]))
    server = serve_app(Host(fake_upstream, retries=2).app)
    response, raw = post_chat(server.url + "/llm/chat", CHAT)
    assert response.status_code == 200
    assert text_of(parse_frames(raw)) == "after retry"
    first, second = fake_upstream.requests
    assert second.received_at - first.received_at >= 0.95


def test_5xx_retried_with_backoff_until_it_works(serve_app, fake_upstream):
    fake_upstream.push(
        [Body(500, b"")], [Body(502, b"<html></html>", {"content-type": "text/html"})]
    )
    fake_upstream.push(openai_stream(["third ", "time"]))
    server = serve_app(Host(fake_upstream, retries=2).app)
    _, raw = post_chat(server.url + "/llm/chat", CHAT)
    assert text_of(parse_frames(raw)) == "third time"
    assert len(fake_upstream.requests) == 3


def test_retries_give_up_with_the_last_error(serve_app, fake_upstream):
    fake_upstream.default = [Body(503, b"")]
    server = serve_app(Host(fake_upstream, retries=1).app)
    response = httpx.post(server.url + "/llm/chat", json=CHAT)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_overloaded"
    assert len(fake_upstream.requests) == 2


def test_a_refused_request_is_not_retried(serve_app, fake_upstream):
    fake_upstream.push(
        [Body(400, b'{"error":{"message":"bad"}}', {"content-type": "application/json"})]
    )
    server = serve_app(Host(fake_upstream, retries=3).app)
    assert httpx.post(server.url + "/llm/chat", json=CHAT).status_code == 400
    assert len(fake_upstream.requests) == 1


def test_fallback_provider_takes_over_when_the_main_one_keeps_failing(serve_app, fake_upstream):
    fake_upstream.default = [Body(503, b"")]
    fallback = Scripted(answer="from the fallback", reasoning="", pace=0, default_model="backup-1")
    host = Host(fake_upstream, retries=1, fallbacks=[fallback])
    server = serve_app(host.app)
    _, raw = post_chat(server.url + "/llm/chat", CHAT)
    frames = parse_frames(raw)
    assert frames[0].data["model"] == "backup-1"
    assert text_of(frames) == "from the fallback"
    assert len(fake_upstream.requests) == 2
    assert host.wait_records(1)[0].provider == "scripted"


def test_no_retry_once_a_token_reached_the_client(serve_app, fake_upstream):
    raw = b'data: {"choices":[{"index":0,"delta":{"content":"once"}}]}\n\n'
    fake_upstream.push([Respond(), Send(raw), Drop()])
    fake_upstream.push(openai_stream(["must not be used"]))
    server = serve_app(Host(fake_upstream, retries=3).app)
    frames = parse_frames(post_chat(server.url + "/llm/chat", CHAT)[1])
    assert text_of(frames) == "once"
    assert frames[-2].event == "error"
    assert len(fake_upstream.requests) == 1


# --- garbage from upstream -------------------------------------------------------------------


def test_malformed_json_in_a_data_line(serve_app, fake_upstream):
    raw = b'data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\ndata: {not json\n\n'
    fake_upstream.push([Respond(), Send(raw), Hang()])
    server = serve_app(Host(fake_upstream).app)
    frames = parse_frames(post_chat(server.url + "/llm/chat", CHAT)[1])
    assert_contract(frames)
    assert frames[-2].data["code"] == "upstream_bad_response"


def test_invalid_utf8_is_replaced_not_fatal(serve_app, fake_upstream):
    raw = b'data: {"choices":[{"index":0,"delta":{"content":"a\xff\xfeb"}}]}\n\n'
    fake_upstream.push([Respond(), Send(raw), *openai_stream(["c"])[1:]])
    server = serve_app(Host(fake_upstream).app)
    frames = parse_frames(post_chat(server.url + "/llm/chat", CHAT)[1])
    assert_contract(frames)
    assert text_of(frames).startswith("a\ufffd\ufffdb")


def test_a_ten_megabyte_line_is_refused_with_bounded_memory(serve_app, fake_upstream):
    def huge() -> Iterator[Any]:
        yield Respond()
        yield Send(b'data: {"choices":[{"index":0,"delta":{"content":"')
        for _ in range(160):
            yield Send(b"x" * 65536)
        yield Send(b'"}}]}\n\n')

    fake_upstream.push(huge())
    server = serve_app(Host(fake_upstream).app)
    tracemalloc.start()
    try:
        frames = parse_frames(post_chat(server.url + "/llm/chat", CHAT)[1])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_contract(frames)
    assert frames[-2].data["code"] == "upstream_bad_stream"
    assert peak < 6 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while refusing a 10 MB line"


# --- the client stops reading ----------------------------------------------------------------


def test_a_client_that_stops_reading_is_dropped_and_the_upstream_closed(serve_app, fake_upstream):
    # 12 MB, more than the socket buffers hold, then the answer is still being generated.
    pieces = ["y" * 1000] * 12000
    fake_upstream.push(openai_stream(pieces, done=False, finish_reason=None, ending=Hang()))
    host = Host(fake_upstream, send_timeout=0.5)
    server = serve_app(host.app)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    body = json.dumps(CHAT).encode()
    sock.sendall(
        b"POST /llm/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    try:
        sock.recv(100)  # the response began; now stop reading
        fake_upstream.wait_closed(timeout=10)
        record = host.wait_records(1, timeout=5)[0]
        assert record.finish_reason == "cancelled"
    finally:
        sock.close()


# --- keep-alive and proxies ------------------------------------------------------------------


def test_pings_keep_a_slow_stream_alive_and_headers_disable_buffering(serve_app, fake_upstream):
    fake_upstream.push([Respond(), Sleep(0.8), *openai_stream(["late"])[1:]])
    server = serve_app(Host(fake_upstream, ping_interval=0.2).app)
    with (
        httpx.Client() as client,
        client.stream(
            "POST", server.url + "/llm/chat", json=CHAT, headers={"accept-encoding": "gzip"}
        ) as r,
    ):
        raw = r.read()
        headers = r.headers
    text = raw.decode()
    assert text.index(": ping") < text.index("event: delta")
    assert text.count(": ping") >= 2
    assert "content-encoding" not in headers  # GZipMiddleware left the stream alone
    assert headers["x-accel-buffering"] == "no"
    assert "no-cache" in headers["cache-control"] and "no-transform" in headers["cache-control"]
    frames = parse_frames(raw)
    assert_contract(frames)
    assert text_of(frames) == "late"


# --- shutdown --------------------------------------------------------------------------------


def test_shutdown_mid_stream_tells_every_stream_and_exits_within_the_grace(fake_upstream):
    fake_upstream.default = [*openai_stream(["first "], done=False)[:-1], Hang()]
    env = {
        "LLM_SSE_PROVIDER": "openai",
        "LLM_SSE_BASE_URL": fake_upstream.url + "/v1",
        "LLM_SSE_API_KEY": "sk-k",
        "LLM_SSE_MODEL": "m",
        "LLM_SSE_SHUTDOWN_GRACE": "2",
    }
    results: list[bytes] = []
    with serve_subprocess("tests.support.env_app:app", env=env) as server:

        def read() -> None:
            with (
                httpx.Client(timeout=10) as client,
                client.stream("POST", server.url + "/llm/chat", json=CHAT) as r,
            ):
                results.append(r.read())

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        fake_upstream.wait_requests(3, timeout=5)
        time.sleep(0.3)  # let every stream deliver its first token
        took = server.terminate(timeout=10)
        for t in readers:
            t.join(5)
    assert took < 2 + 1.5, f"exit took {took:.2f}s"
    assert len(results) == 3
    for raw in results:
        frames = parse_frames(raw)
        assert_contract(frames)
        assert text_of(frames) == "first "
        assert frames[-2].data["code"] == "server_shutdown"
        assert frames[-2].data["retryable"] is True
    assert fake_upstream.open_connections() == 0


# --- records and logs ------------------------------------------------------------------------


def test_on_complete_record_for_a_normal_stream(serve_app, fake_upstream, caplog):
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    fake_upstream.push(openai_stream(["a", "b"], usage=usage))
    host = Host(fake_upstream)
    server = serve_app(host.app)
    with caplog.at_level("INFO", logger="llm_sse_mount"):
        frames = parse_frames(post_chat(server.url + "/llm/chat", CHAT)[1])
        record = host.wait_records(1)[0]
    assert record.stream_id == frames[0].data["stream_id"]
    assert (record.model, record.provider, record.finish_reason) == ("m", "openai", "stop")
    assert record.usage is not None and record.usage.total_tokens == 7
    assert record.error_code is None and not record.client_disconnected
    assert record.time_to_first_token is not None and record.duration >= record.time_to_first_token
    assert record.frames == len(frames)
    # Logs name the stream by a digest: on an open mount the id itself is the capability.
    assert any(log_id(record.stream_id) in m for m in caplog.messages)
    assert not any(record.stream_id in m for m in caplog.messages)


def test_a_failing_hook_does_not_break_the_stream(serve_app, fake_upstream):
    def boom(record: CompletionRecord) -> None:
        raise RuntimeError("hook bug")

    fake_upstream.push(openai_stream(["fine"]))
    mount = LLMMount(OpenAICompatible(fake_upstream.url + "/v1", "k"), model="m", on_complete=boom)
    server = serve_app(mount)
    frames = parse_frames(post_chat(server.url + "/chat", CHAT)[1])
    assert text_of(frames) == "fine"


# --- churn -----------------------------------------------------------------------------------


def test_churn_leaves_nothing_behind(serve_app, fake_upstream):
    import random

    rng = random.Random(7)
    scripts = [
        lambda: openai_stream([f"w{i} " for i in range(30)], pace=0.01),
        lambda: [Body(500, b"")],
        lambda: [Respond(), Hang()],
        lambda: [
            Respond(),
            Send(b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'),
            Drop(),
        ],
        lambda: openai_stream(["q"], split=1),
    ]
    host = Host(fake_upstream, first_token_timeout=1.0, retention=0)
    server = serve_app(host.app)
    baseline_tasks = httpx.get(server.url + "/tasks").json()["tasks"]
    n = 300
    for _ in range(n):
        fake_upstream.push(rng.choice(scripts)())

    async def one(client: httpx.AsyncClient, i: int) -> None:
        stop_after = rng.choice([0, 1, 3, 10, None])
        try:
            async with client.stream("POST", server.url + "/llm/chat", json=CHAT) as r:
                seen = 0
                async for _ in r.aiter_raw():
                    seen += 1
                    if stop_after is not None and seen > stop_after:
                        break
        except httpx.HTTPError:
            pass

    async def run() -> None:
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            sem = asyncio.Semaphore(40)

            async def bounded(i: int) -> None:
                async with sem:
                    await one(client, i)

            await asyncio.gather(*(bounded(i) for i in range(n)))

    asyncio.run(run())
    host.wait_records(n, timeout=10)
    deadline = time.monotonic() + 5
    while fake_upstream.open_connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_upstream.open_connections() == 0
    assert httpx.get(server.url + "/tasks").json()["tasks"] <= baseline_tasks + 1
    assert host.mount.pool.client is None  # the mount's own client was closed when idle
    # ...and a normal stream still works (its script matched by its prompt: a script the
    # burst left queued must not answer it).
    fake_upstream.push(openai_stream(["still ", "alive"]), match="after the churn")
    after = {**CHAT, "messages": [{"role": "user", "content": "after the churn"}]}
    frames = parse_frames(post_chat(server.url + "/llm/chat", after)[1])
    assert_contract(frames)
    assert text_of(frames) == "still alive"
    assert len(host.mount.store) <= 1  # finished streams expired (retention 0)


def test_without_an_idle_timeout_the_first_token_deadline_stops_applying(serve_app, fake_upstream):
    # First token well within 0.5 s, then a stream that runs past it: only the first-token
    # deadline was set, and the first event must lift it.
    fake_upstream.push(openai_stream([f"t{i} " for i in range(12)], pace=0.1))
    server = serve_app(Host(fake_upstream, first_token_timeout=0.5, idle_timeout=None).app)
    _, raw = post_chat(server.url + "/llm/chat", CHAT)
    frames = parse_frames(raw)
    assert_contract(frames)
    assert frames[-1].data == {"finish_reason": "stop"}
    assert text_of(frames) == "".join(f"t{i} " for i in range(12))
