"""The Anthropic provider against a real-socket fake upstream speaking the Messages API stream."""

from __future__ import annotations

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
from llm_sse_mount.providers.anthropic import Anthropic
from llm_sse_mount.providers.registry import provider_from_env
from llm_sse_mount.request import ChatRequest, Message, Tool, ToolCall

from .support.anthropic_stream import TextBlock, Thinking, anthropic_stream
from .support.anthropic_stream import Tool as ToolBlock
from .support.fake_upstream import Body, Drop, FakeUpstream, Step
from .support.servers import ServerThread

pytestmark = pytest.mark.anyio

KEY = "sk-ant-test-key"
HELLO = "Hello, 世界 🙂!\nHow are you?"
BLOCKS: list[Any] = [
    Thinking("The user greets ", "me; 想一想."),
    TextBlock("Hello, 世界", " 🙂!\n", "How are you?"),
    ToolBlock("toolu_01", "get_weather", '{"city":', ' "Paris"}'),
    ToolBlock("toolu_02", "get_time"),
]
EXPECTED: list[ProviderEvent] = [
    ReasoningDelta("The user greets "),
    ReasoningDelta("me; 想一想."),
    TextDelta("Hello, 世界"),
    TextDelta(" 🙂!\n"),
    TextDelta("How are you?"),
    ToolCallDelta(0, "toolu_01", "get_weather", ""),
    ToolCallDelta(0, None, None, '{"city":'),
    ToolCallDelta(0, None, None, ' "Paris"}'),
    ToolCallDelta(1, "toolu_02", "get_time", ""),
    ToolCallDelta(1, None, None, "{}"),
    Usage(12, 34, 46),
    Finish("tool_calls"),
]


def chat(**kw: Any) -> ChatRequest:
    fields: dict[str, Any] = {"messages": (Message("user", "hi"),), "model": "claude-test"}
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
    provider = Anthropic(KEY, base_url=up.url)
    stream = await provider.open(request or chat(), http)
    out: list[ProviderEvent] = []
    try:
        async for event in stream.events():
            out.append(event)
    finally:
        await stream.aclose()
    return out


async def test_thinking_text_tool_use_and_usage_become_provider_events(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    events = await collect(fake_upstream, http, anthropic_stream(BLOCKS, stop_reason="tool_use"))
    assert events == EXPECTED


# Cuts inside the 3-byte 世 and the 4-byte 🙂, between "event:" and its value, and CR/LF-free
# one-byte writes: the decoder must give the very same events whatever the network did.
@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, 64, 333])
async def test_byte_splits_anywhere_give_identical_events(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient, split: int
) -> None:
    script = anthropic_stream(BLOCKS, stop_reason="tool_use", split=split)
    assert await collect(fake_upstream, http, script) == EXPECTED


async def test_cuts_inside_multibyte_characters_give_identical_events(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    raw = b"".join(
        s.data for s in anthropic_stream(BLOCKS, stop_reason="tool_use") if hasattr(s, "data")
    )
    inside = []
    for char in ("世", "界", "🙂", "想"):
        at = raw.index(char.encode())
        inside += [at + 1, at + 2]
    script = anthropic_stream(BLOCKS, stop_reason="tool_use", split=inside)
    assert await collect(fake_upstream, http, script) == EXPECTED


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
async def test_stop_reasons_map_to_finish_reasons(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient, stop_reason: str, finish: str
) -> None:
    events = await collect(fake_upstream, http, anthropic_stream(["ok"], stop_reason=stop_reason))
    assert events[-1] == Finish(finish)  # type: ignore[arg-type]


async def test_usage_counts_cached_input_tokens_as_prompt_tokens(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    script = anthropic_stream(["ok"], input_tokens=5, output_tokens=7)
    events = await collect(fake_upstream, http, script)
    assert Usage(5, 7, 12) in events


async def test_error_event_mid_stream_raises_a_retryable_upstream_error(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    overloaded = {"type": "overloaded_error", "message": "Overloaded"}
    fake_upstream.push(anthropic_stream(["Hel", "lo"], error=overloaded, split=7))
    stream = await Anthropic(KEY, base_url=fake_upstream.url).open(chat(), http)
    seen: list[ProviderEvent] = []

    async def consume() -> None:
        async for event in stream.events():
            seen.append(event)

    with pytest.raises(UpstreamError) as info:
        await consume()
    await stream.aclose()
    assert seen == [TextDelta("Hel"), TextDelta("lo")]
    assert info.value.code == "upstream_overloaded"
    assert info.value.retryable
    assert "Overloaded" in info.value.message


async def test_a_body_cut_before_the_stop_reason_is_incomplete(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    script = anthropic_stream(["partial"], stop_reason=None, stop=False)
    with pytest.raises(UpstreamError) as info:
        await collect(fake_upstream, http, script)
    assert info.value.code == "upstream_incomplete"


async def test_connection_dropped_mid_stream_is_an_upstream_error(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    script = anthropic_stream(["partial"], stop_reason=None, stop=False, ending=Drop())
    with pytest.raises(UpstreamError):
        await collect(fake_upstream, http, script)


@pytest.mark.parametrize(
    ("status", "error_type", "our_status", "code", "retryable"),
    [
        (529, "overloaded_error", 503, "upstream_overloaded", True),
        (429, "rate_limit_error", 429, "upstream_rate_limited", True),
        (401, "authentication_error", 502, "upstream_auth", False),
        (400, "invalid_request_error", 400, "upstream_rejected", False),
    ],
)
async def test_error_statuses_before_the_stream(
    fake_upstream: FakeUpstream,
    http: httpx.AsyncClient,
    status: int,
    error_type: str,
    our_status: int,
    code: str,
    retryable: bool,
) -> None:
    body = b'{"type":"error","error":{"type":"%s","message":"nope"}}' % error_type.encode()
    fake_upstream.push([Body(status, body)])
    with pytest.raises(UpstreamError) as info:
        await Anthropic(KEY, base_url=fake_upstream.url).open(chat(), http)
    assert (info.value.status, info.value.code, info.value.retryable) == (
        our_status,
        code,
        retryable,
    )
    assert error_type in info.value.message


# --- the request ------------------------------------------------------------------------------


async def test_request_is_translated_to_the_messages_api(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    request = chat(
        messages=(
            Message("system", "Be brief."),
            Message("user", "Weather and time in Paris?"),
            Message(
                "assistant",
                "Let me check.",
                tool_calls=(
                    ToolCall("toolu_01", "get_weather", '{"city": "Paris"}'),
                    ToolCall("toolu_02", "get_time", ""),
                ),
            ),
            Message("tool", "sunny", tool_call_id="toolu_01"),
            Message("tool", "noon", tool_call_id="toolu_02"),
            Message("system", "Answer in French."),
        ),
        max_tokens=None,
        temperature=0.3,
        stop=("END",),
        tools=(Tool("get_weather", "Weather now", {"type": "object"}), Tool("get_time")),
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    await collect(fake_upstream, http, anthropic_stream(["ok"]), request)
    sent = fake_upstream.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = sent.json
    assert body["stream"] is True
    assert body["model"] == "claude-test"
    assert body["max_tokens"] == 4096  # required by the API: the default fills in
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "noon"},
            ],
        },
    ]
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object"}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert body["temperature"] == 0.3
    assert body["stop_sequences"] == ["END"]
    assert "top_p" not in body
    assert "thinking" not in body


def test_tool_choice_and_thinking_budget() -> None:
    provider = Anthropic(KEY, thinking_budget=2048)
    for choice, expected in [("auto", "auto"), ("required", "any"), ("none", "none")]:
        body = provider.build_body(chat(tool_choice=choice, max_tokens=100))
        assert body["tool_choice"] == {"type": expected}
        assert body["max_tokens"] == 100
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_tool_call_arguments_that_are_not_json_are_a_request_error() -> None:
    bad = Message("assistant", "", tool_calls=(ToolCall("t1", "f", "{not json"),))
    with pytest.raises(RequestError):
        Anthropic(KEY).build_body(chat(messages=(Message("user", "x"), bad)))


def test_from_env_builds_the_anthropic_provider() -> None:
    provider = provider_from_env({"LLM_SSE_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": KEY})
    assert isinstance(provider, Anthropic)
    assert provider.base_url == "https://api.anthropic.com"
    assert provider.default_model == "claude-sonnet-4-5"
    assert provider.secrets() == (KEY,)
    assert KEY not in repr(provider)
    custom = provider_from_env(
        {
            "LLM_SSE_PROVIDER": "anthropic",
            "LLM_SSE_API_KEY": KEY,
            "LLM_SSE_BASE_URL": "http://proxy/",
            "LLM_SSE_MODEL": "claude-haiku-4-5",
        }
    )
    assert isinstance(custom, Anthropic)
    assert (custom.base_url, custom.default_model) == ("http://proxy", "claude-haiku-4-5")


# --- through the mount ------------------------------------------------------------------------


def test_anthropic_upstream_through_the_openai_endpoint(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    blocks: list[Any] = [Thinking("hmm"), TextBlock(*HELLO.split(" "))]
    fake_upstream.push(anthropic_stream(blocks, split=5, input_tokens=3, output_tokens=4))
    mount = LLMMount(provider=Anthropic(KEY, base_url=fake_upstream.url), model="claude-test")
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    client = openai.OpenAI(base_url=server.url + "/llm/v1", api_key="x", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="claude-test",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(HELLO.split(" "))
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content", "")
        for c in chunks
        if c.choices
    )
    assert reasoning == "hmm"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 7


def test_529_then_success_is_retried_by_the_mount(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    overloaded = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    fake_upstream.push([Body(529, overloaded, {"retry-after": "0"})], anthropic_stream(["fine"]))
    mount = LLMMount(provider=Anthropic(KEY, base_url=fake_upstream.url), model="c", retries=1)
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    client = openai.OpenAI(base_url=server.url + "/llm/v1", api_key="x", max_retries=0)
    completion = client.chat.completions.create(
        model="c", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "fine"
    assert len(fake_upstream.requests) == 2


def test_529_without_retries_is_a_503_for_the_client(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    overloaded = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    fake_upstream.default = [Body(529, overloaded)]
    mount = LLMMount(provider=Anthropic(KEY, base_url=fake_upstream.url), model="c", retries=0)
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    r = httpx.post(server.url + "/llm/chat", json={"messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "upstream_overloaded"
    assert KEY not in r.text
