"""The OpenAI Responses API as the upstream, against a real-socket fake whose every event the
official ``openai`` SDK's types validate (``tests/support/responses_stream.py``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount
from llm_sse_mount.errors import RequestError, UpstreamError
from llm_sse_mount.events import (
    Finish,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from llm_sse_mount.providers.openai_responses import OpenAIResponses
from llm_sse_mount.providers.registry import provider_from_env
from llm_sse_mount.request import ChatRequest, Message, Tool, ToolCall

from .support.fake_upstream import Body, Drop, FakeUpstream, Hang, Step
from .support.native import assert_contract, parse_frames, post_chat
from .support.responses_stream import Fn, Refusal, Summary, Text, responses_stream
from .support.servers import ServerThread

pytestmark = pytest.mark.anyio

KEY = "sk-responses-test-key"
ITEMS: list[Any] = [
    Summary("**Greeting** the user says 你好.", "Then answer 🙂."),
    Text("你好", ", 世界 🙂", "!"),
    Fn("call_1", "get_weather", '{"city":', '"巴黎"}'),
    Fn("call_2", "get_time", "{}", deltas=False),
]
EXPECTED: list[ProviderEvent] = [
    ReasoningDelta("**Greeting** the user says 你好."),
    ReasoningDelta("\n\n"),
    ReasoningDelta("Then answer 🙂."),
    TextDelta("你好"),
    TextDelta(", 世界 🙂"),
    TextDelta("!"),
    ToolCallDelta(0, "call_1", "get_weather", ""),
    ToolCallDelta(0, None, None, '{"city":'),
    ToolCallDelta(0, None, None, '"巴黎"}'),
    ToolCallDelta(1, "call_2", "get_time", ""),
    ToolCallDelta(1, None, None, "{}"),
    Usage(11, 22, 33),
    Finish("tool_calls"),
]


def chat(**kw: Any) -> ChatRequest:
    fields: dict[str, Any] = {"messages": (Message("user", "hi"),), "model": "gpt-test"}
    return ChatRequest(**{**fields, **kw})


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def collect(
    up: FakeUpstream,
    http: httpx.AsyncClient,
    script: Sequence[Step],
    request: ChatRequest | None = None,
) -> list[ProviderEvent]:
    up.push(script)
    stream = await OpenAIResponses(KEY, base_url=up.url).open(request or chat(), http)
    try:
        return [event async for event in stream.events()]
    finally:
        await stream.aclose()


async def test_summary_text_function_calls_and_usage_become_provider_events(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    assert await collect(fake_upstream, http, responses_stream(ITEMS)) == EXPECTED


@pytest.mark.parametrize("split", [1, 2, 3, 7, 64, 501])
async def test_byte_splits_anywhere_give_identical_events(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient, split: int
) -> None:
    assert await collect(fake_upstream, http, responses_stream(ITEMS, split=split)) == EXPECTED


async def test_cuts_inside_multibyte_characters_give_identical_events(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    raw = b"".join(s.data for s in responses_stream(ITEMS) if hasattr(s, "data"))
    inside = []
    for char in ("你", "世", "🙂", "巴"):
        at = raw.index(char.encode())
        inside += [at + 1, at + 2]
    assert await collect(fake_upstream, http, responses_stream(ITEMS, split=inside)) == EXPECTED


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("max_output_tokens", "length"),
        ("content_filter", "content_filter"),
        ("max_messages", "stop"),
    ],
)
async def test_incomplete_responses_finish_with_the_mapped_reason(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient, reason: str, finish: str
) -> None:
    script = responses_stream([Text("partial")], ending="incomplete", incomplete_reason=reason)
    events = await collect(fake_upstream, http, script)
    assert events == [TextDelta("partial"), Usage(11, 22, 33), Finish(finish)]  # type: ignore[arg-type]


async def test_a_refusal_is_text_with_a_content_filter_finish(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    events = await collect(fake_upstream, http, responses_stream([Refusal("I can't ", "help.")]))
    assert events == [
        TextDelta("I can't "),
        TextDelta("help."),
        Usage(11, 22, 33),
        Finish("content_filter"),
    ]


@pytest.mark.parametrize(
    ("ending", "error", "code", "retryable"),
    [
        ("failed", {"code": "server_error", "message": "boom"}, "upstream_error", True),
        (
            "failed",
            {"code": "rate_limit_exceeded", "message": "slow"},
            "upstream_rate_limited",
            True,
        ),
        ("failed", {"code": "invalid_prompt", "message": "no"}, "upstream_rejected", False),
        ("failed", {"code": "vector_store_timeout", "message": "slow"}, "upstream_error", True),
        ("error", None, "upstream_rate_limited", True),
    ],
)
async def test_failed_and_error_events_mid_stream(
    fake_upstream: FakeUpstream,
    http: httpx.AsyncClient,
    ending: str,
    error: dict[str, str] | None,
    code: str,
    retryable: bool,
) -> None:
    fake_upstream.push(responses_stream([Text("Hel", "lo")], ending=ending, error=error, split=9))
    stream = await OpenAIResponses(KEY, base_url=fake_upstream.url).open(chat(), http)
    seen: list[ProviderEvent] = []

    async def consume() -> None:
        async for event in stream.events():
            seen.append(event)

    with pytest.raises(UpstreamError) as info:
        await consume()
    await stream.aclose()
    assert seen == [TextDelta("Hel"), TextDelta("lo")]
    assert (info.value.code, info.value.retryable) == (code, retryable)


@pytest.mark.parametrize("last_step", [None, Drop(), Drop(reset=True)])
async def test_a_body_that_stops_before_the_terminal_event_is_an_error(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient, last_step: Step | None
) -> None:
    script = responses_stream([Text("Hel")], ending=None, last_step=last_step)
    with pytest.raises(UpstreamError) as info:
        await collect(fake_upstream, http, script)
    assert info.value.code in ("upstream_incomplete", "upstream_unreachable")


async def test_openai_error_bodies_before_the_stream(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    body = b'{"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}'
    with pytest.raises(UpstreamError) as info:
        await collect(fake_upstream, http, [Body(429, body, {"retry-after": "3"})])
    assert (info.value.status, info.value.code, info.value.retry_after) == (
        429,
        "upstream_rate_limited",
        3.0,
    )


async def test_the_request_is_translated_to_the_responses_api(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    request = chat(
        messages=(
            Message("system", "Be brief."),
            Message("user", "Weather?"),
            Message(
                "assistant",
                "Checking.",
                tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Paris"}'),),
            ),
            Message("tool", '{"tempC": 21}', tool_call_id="call_1"),
        ),
        temperature=0.5,
        max_tokens=64,
        tools=(
            Tool(
                "get_weather",
                "Weather",
                {"type": "object", "properties": {"city": {"type": "string"}}},
            ),
        ),
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    await collect(fake_upstream, http, responses_stream([Text("ok")]), request)
    sent = fake_upstream.requests[0]
    assert sent.path == "/responses"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": "gpt-test",
        "stream": True,
        "store": False,
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking."},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": '{"tempC": 21}'},
        ],
        "temperature": 0.5,
        "max_output_tokens": 64,
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": False,
            }
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "reasoning": {"summary": "auto"},
    }


def test_stop_sequences_are_refused_rather_than_silently_dropped() -> None:
    with pytest.raises(RequestError) as info:
        OpenAIResponses(KEY).build_body(chat(stop=("END",)))
    assert info.value.code == "invalid_parameter"


def test_reasoning_summary_can_be_switched_off() -> None:
    assert "reasoning" not in OpenAIResponses(KEY, reasoning_summary=None).build_body(chat())


def test_from_env_builds_the_responses_provider() -> None:
    provider = provider_from_env({"LLM_SSE_PROVIDER": "openai-responses", "OPENAI_API_KEY": KEY})
    assert isinstance(provider, OpenAIResponses)
    assert provider.base_url == "https://api.openai.com/v1"
    assert KEY not in repr(provider)


# --- through the mount -------------------------------------------------------------------------

ServeApp = Callable[..., ServerThread]


def serve(serve_app: ServeApp, up: FakeUpstream, **options: Any) -> str:
    mount = LLMMount(
        provider=OpenAIResponses(KEY, base_url=up.url), model="gpt-test", retries=0, **options
    )
    return serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"


def test_reasoning_summary_reaches_an_openai_chat_client(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.push(responses_stream([Summary("think"), Text("Hello, ", "世界")], split=11))
    client = openai.OpenAI(
        base_url=serve(serve_app, fake_upstream) + "/v1", api_key="x", max_retries=0
    )
    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello, 世界"
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content", "")
        for c in chunks
        if c.choices
    )
    assert reasoning == "think"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 33


def test_a_failed_response_mid_stream_is_an_error_frame_then_done(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.push(responses_stream([Text("Hel")], ending="failed"))
    _, raw = post_chat(
        serve(serve_app, fake_upstream) + "/chat", {"messages": [{"role": "user", "content": "x"}]}
    )
    frames = parse_frames(raw)
    assert_contract(frames)
    # No usage from the upstream: the mount's estimate, marked, comes before the error.
    assert [f.event for f in frames] == ["start", "delta", "usage", "error", "done"]
    assert frames[2].data["estimated"] is True
    assert frames[3].data["code"] == "upstream_error"
    assert frames[4].data == {"finish_reason": "error"}


def test_a_stall_mid_stream_ends_with_a_timeout_and_closes_the_upstream(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.push(responses_stream([Text("Hel")], ending=None, last_step=Hang()))
    url = serve(serve_app, fake_upstream, idle_timeout=0.5)
    started = time.monotonic()
    _, raw = post_chat(url + "/chat", {"messages": [{"role": "user", "content": "x"}]})
    frames = parse_frames(raw)
    # No usage from the upstream: the mount's estimate, marked, comes before the error.
    assert [f.event for f in frames] == ["start", "delta", "usage", "error", "done"]
    assert frames[2].data["estimated"] is True
    assert frames[3].data["code"] == "upstream_timeout"
    assert time.monotonic() - started < 5
    fake_upstream.wait_closed(timeout=1.0)  # raises if the upstream stayed open
