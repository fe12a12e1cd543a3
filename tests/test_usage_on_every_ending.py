"""Usage on every ending: when the upstream reports none, the producer appends its estimate
(``"estimated": true``), ``on_complete`` records it and the token budget charges it; the
upstream's own figure always wins. Real uvicorn, real fake upstream."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import CompletionRecord, Limits, LLMMount, MemoryLimitStore
from llm_sse_mount.events import TextDelta, Usage
from llm_sse_mount.providers.openai import OpenAICompatible
from llm_sse_mount.request import ChatRequest, Message
from llm_sse_mount.usage_estimate import UsageTally, prompt_tokens

from .support.fake_upstream import FakeUpstream, Hang, openai_stream
from .support.native import assert_contract, parse_frames, post_chat
from .support.servers import ServerThread

ServeApp = Callable[..., ServerThread]
PIECES = ["Hello there! ", "你好，世界。", "This answer goes on ", "and on 🙂 " * 10]
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def expected_usage() -> Usage:
    tally = UsageTally()
    for piece in PIECES:
        tally.observe(TextDelta(piece))
    prompt = prompt_tokens(ChatRequest((Message("user", "hi"),), "m"))
    return Usage(prompt, tally.completion_tokens, prompt + tally.completion_tokens, estimated=True)


def serve(
    serve_app: ServeApp, up: FakeUpstream, **options: Any
) -> tuple[str, list[CompletionRecord]]:
    records: list[CompletionRecord] = []

    async def on_complete(record: CompletionRecord) -> None:
        records.append(record)

    mount = LLMMount(
        provider=OpenAICompatible(up.url, "k", stream_usage=False),
        model="m",
        retries=0,
        on_complete=on_complete,
        **options,
    )
    app = Starlette(routes=[Mount("/llm", app=mount)], lifespan=mount.lifespan)
    return serve_app(app).url + "/llm", records


def wait_for(records: list[CompletionRecord], timeout: float = 5.0) -> CompletionRecord:
    deadline = time.monotonic() + timeout
    while not records:
        assert time.monotonic() < deadline, "no on_complete record"
        time.sleep(0.02)
    assert len(records) == 1
    return records[0]


def test_a_cancelled_stream_records_and_charges_the_estimate(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.push(openai_stream(PIECES, done=False, finish_reason=None, ending=Hang()))
    # 100 tokens a minute; one such stream costs 75 (8 prompt + 67 answer, both estimated).
    url, records = serve(
        serve_app,
        fake_upstream,
        limits=Limits(tokens_per_minute=100),
        limits_store=MemoryLimitStore(),
    )
    deltas = 0
    with (
        httpx.Client(timeout=5) as client,
        client.stream("POST", url + "/chat", json=CHAT) as stream,
    ):
        lines = stream.iter_lines()
        for line in lines:
            deltas += line == "event: delta"
            if deltas == len(PIECES):
                break  # everything relayed; the upstream now hangs and the client leaves
    record = wait_for(records)
    assert record.finish_reason == "cancelled"
    assert record.client_disconnected
    assert record.usage == expected_usage()
    assert record.usage.estimated
    fake_upstream.wait_closed(timeout=1.0)  # raises if the upstream stayed open
    # The budget was charged the estimate, not just the prompt (8): a second stream is still
    # admitted (75 of 100 spent), a third is not (150). Charging only the prompt, all pass.
    fake_upstream.push(openai_stream(PIECES, finish_reason="stop"))
    assert httpx.post(url + "/chat", json=CHAT).status_code == 200
    refused = httpx.post(url + "/chat", json=CHAT)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"


def test_a_timed_out_stream_shows_the_estimate_in_its_usage_frame(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.push(openai_stream(PIECES, done=False, finish_reason=None, ending=Hang()))
    url, records = serve(serve_app, fake_upstream, idle_timeout=0.5)
    _, raw = post_chat(url + "/chat", CHAT)
    frames = parse_frames(raw)
    assert_contract(frames)
    assert [f.event for f in frames][-3:] == ["usage", "error", "done"]
    usage = expected_usage()
    assert frames[-3].data == {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "estimated": True,
    }
    assert frames[-2].data["code"] == "upstream_timeout"
    assert wait_for(records).usage == usage


def test_a_finished_stream_without_usage_gets_the_estimate_in_every_protocol(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.default = openai_stream(PIECES)  # finishes, never reports usage
    url, _ = serve(serve_app, fake_upstream)
    _, raw = post_chat(url + "/chat", CHAT)
    frames = parse_frames(raw)
    assert [f.event for f in frames][-2:] == ["usage", "done"]
    assert frames[-2].data["estimated"] is True
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.total_tokens == expected_usage().total_tokens
    assert (usage.model_extra or {}).get("estimated") is True  # never passed off as the upstream's


def test_the_upstreams_usage_wins_and_no_estimate_follows_it(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.push(
        openai_stream(
            PIECES, usage={"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
        )
    )
    url, records = serve(serve_app, fake_upstream)
    _, raw = post_chat(url + "/chat", CHAT)
    usages = [f.data for f in parse_frames(raw) if f.event == "usage"]
    assert usages == [{"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}]
    record = wait_for(records)
    assert record.usage == Usage(5, 7, 12)
    assert not record.usage.estimated
