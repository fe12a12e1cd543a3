"""The mount's HTTP client: nothing left open when the host stops, with or without lifespan,
and a client the host injects is used and left to the host."""

from __future__ import annotations

import time

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount, OpenAICompatible

from .support.fake_upstream import openai_stream
from .support.native import parse_frames, post_chat, text_of
from .support.servers import ServerThread

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def test_without_lifespan_the_client_closes_when_the_last_stream_ends(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(["a"]), openai_stream(["b"]))
    mount = LLMMount(OpenAICompatible(fake_upstream.url + "/v1", "k"), model="m")
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    for expected in ("a", "b"):
        assert text_of(parse_frames(post_chat(server.url + "/llm/chat", CHAT)[1])) == expected
        # Released just after the response ends (the upstream body is drained first).
        deadline = time.monotonic() + 2
        while mount.pool.client is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mount.pool.client is None
        fake_upstream.wait_closed(timeout=2)
    assert fake_upstream.open_connections() == 0


def test_with_lifespan_connections_are_reused_then_closed_when_the_host_stops(fake_upstream):
    fake_upstream.push(openai_stream(["a"]), openai_stream(["b"]))
    mount = LLMMount(OpenAICompatible(fake_upstream.url + "/v1", "k"), model="m")
    host = Starlette(routes=[Mount("/llm", app=mount)], lifespan=mount.lifespan)
    server = ServerThread(host)
    server.start()
    try:
        for expected in ("a", "b"):
            assert text_of(parse_frames(post_chat(server.url + "/llm/chat", CHAT)[1])) == expected
        assert mount.pool.client is not None  # pinned by the lifespan: kept warm
        requests = fake_upstream.wait_requests(2)
        assert requests[0].connection_id == requests[1].connection_id  # keep-alive reuse
        assert fake_upstream.open_connections() == 1
    finally:
        server.stop()
    assert mount.pool.client is None
    fake_upstream.wait_closed(timeout=2)
    assert fake_upstream.open_connections() == 0


def test_an_injected_client_is_used_and_not_closed(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(["mine"]))
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    # The mount leaves a host's client open; this one keeps no idle connection, so nothing
    # outlives the server's event loop when the test ends.
    client = httpx.AsyncClient(
        event_hooks={"request": [hook]}, limits=httpx.Limits(max_keepalive_connections=0)
    )
    mount = LLMMount(
        OpenAICompatible(fake_upstream.url + "/v1", "k"), model="m", http_client=client
    )
    server = serve_app(mount)
    assert text_of(parse_frames(post_chat(server.url + "/chat", CHAT)[1])) == "mine"
    assert seen == [fake_upstream.url + "/v1/chat/completions"]
    assert not client.is_closed
