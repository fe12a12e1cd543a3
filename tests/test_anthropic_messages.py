"""``POST /v1/messages`` driven by the official ``anthropic`` SDK over real sockets: a real
uvicorn serving the mount, and a real OpenAI-compatible fake upstream behind it.
``Anthropic(base_url=<mount>)`` must simply work, streamed and not, tools and errors included."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount
from llm_sse_mount.core.access import BearerTokens
from llm_sse_mount.core.limits import Limits
from llm_sse_mount.core.records import CompletionRecord
from llm_sse_mount.providers.anthropic import Anthropic
from llm_sse_mount.providers.openai import OpenAICompatible

from .support.anthropic_stream import Thinking, anthropic_stream
from .support.anthropic_stream import Tool as ToolBlock
from .support.fake_upstream import Body, FakeUpstream, Hang, Step, openai_stream
from .support.servers import ServerThread

ServeApp = Callable[..., ServerThread]
USER: list[MessageParam] = [{"role": "user", "content": "hi"}]
TOKEN = "client-token-1"


class Running:
    """A mount over the fake upstream, served on a real socket, with an SDK client for it."""

    def __init__(self, serve_app: ServeApp, upstream: FakeUpstream, **mount_kw: Any) -> None:
        self.records: list[CompletionRecord] = []
        self.done = threading.Event()

        def on_complete(record: CompletionRecord) -> None:
            self.records.append(record)
            self.done.set()

        provider = OpenAICompatible(upstream.url + "/v1", "upstream-key", default_model="m1")
        mount_kw.setdefault("models", ["m1", "m2"])
        self.mount = LLMMount(provider=provider, model="m1", on_complete=on_complete, **mount_kw)
        self.server = serve_app(Starlette(routes=[Mount("/llm", app=self.mount)]))
        self.base_url = self.server.url + "/llm"
        self.upstream = upstream
        self.client = anthropic.Anthropic(base_url=self.base_url, api_key=TOKEN, max_retries=0)

    def record(self, timeout: float = 3.0) -> CompletionRecord:
        assert self.done.wait(timeout), "on_complete was not called"
        return self.records[-1]

    def sent(self) -> dict[str, Any]:
        """The body the upstream received last."""
        body: dict[str, Any] = self.upstream.requests[-1].json
        return body


@pytest.fixture
def run(serve_app: ServeApp, fake_upstream: FakeUpstream) -> Callable[..., Running]:
    def start(*scripts: Sequence[Step], **mount_kw: Any) -> Running:
        fake_upstream.push(*scripts)
        return Running(serve_app, fake_upstream, **mount_kw)

    return start


USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
HELLO = ["Hel", "lo, 世界", " 🙂!"]


def tool_chunks() -> list[Any]:
    def call(index: int, **fn: str) -> dict[str, Any]:
        tc: dict[str, Any] = {"index": index, "function": fn}
        if "name" in fn:
            tc |= {"id": f"call_{index}", "type": "function"}
        return {"tool_calls": [tc]}

    return [
        "Checking.",
        call(0, name="get_weather", arguments=""),
        call(0, arguments='{"city": '),
        call(0, arguments='"Paris"}'),
        call(1, name="get_time", arguments='{"tz": "CET"}'),
    ]


# --- streaming --------------------------------------------------------------------------------


def test_streamed_create_gives_the_sdk_its_event_sequence(run: Callable[..., Running]) -> None:
    m = run(openai_stream(HELLO, usage=USAGE, model="m1"))
    events = list(m.client.messages.create(model="m1", max_tokens=100, messages=USER, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    start = events[0]
    assert start.type == "message_start"
    assert start.message.id.startswith("msg_")
    assert (start.message.model, start.message.role) == ("m1", "assistant")
    text = "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "Hello, 世界 🙂!"
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert (delta.usage.input_tokens, delta.usage.output_tokens) == (11, 7)
    assert m.record().finish_reason == "stop"


def test_the_raw_stream_has_event_lines_a_ping_and_no_ids(run: Callable[..., Running]) -> None:
    m = run(openai_stream(HELLO, model="m1"))
    body = {"model": "m1", "max_tokens": 5, "stream": True, "messages": USER}
    r = httpx.post(m.base_url + "/v1/messages", json=body, timeout=5)
    assert r.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in r.text.split("\n\n") if b.strip()]
    names = [b.splitlines()[0] for b in blocks]
    assert names[:2] == ["event: message_start", "event: ping"]
    assert names[-1] == "event: message_stop"
    for block in blocks:  # each event's name matches its data's type, as Anthropic sends
        event, data = block.splitlines()
        assert json.loads(data.removeprefix("data: "))["type"] == event.removeprefix("event: ")
    assert "\nid:" not in r.text and not r.text.startswith("id:")


def test_messages_stream_final_message_has_thinking_then_text(
    run: Callable[..., Running],
) -> None:
    chunks: list[Any] = [{"reasoning_content": "Let me "}, {"reasoning_content": "想一想."}, *HELLO]
    m = run(openai_stream(chunks, usage=USAGE, model="m1"))
    with m.client.messages.stream(model="m1", max_tokens=100, messages=USER) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == "Hello, 世界 🙂!"
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == "Let me 想一想."
    assert final.content[1].type == "text"
    assert final.content[1].text == "Hello, 世界 🙂!"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)


def test_length_and_content_filter_map_to_anthropic_stop_reasons(
    run: Callable[..., Running],
) -> None:
    m = run(
        openai_stream(["cut"], finish_reason="length", model="m1"),
        openai_stream([""], finish_reason="content_filter", model="m1"),
    )
    first = m.client.messages.create(model="m1", max_tokens=1, messages=USER)
    assert first.stop_reason == "max_tokens"
    with m.client.messages.stream(model="m1", max_tokens=5, messages=USER) as stream:
        assert stream.get_final_message().stop_reason == "refusal"


# --- not streaming ----------------------------------------------------------------------------


def test_create_without_stream_returns_one_message(run: Callable[..., Running]) -> None:
    chunks: list[Any] = [{"reasoning_content": "Hmm."}, *HELLO]
    m = run(openai_stream(chunks, usage=USAGE, model="m1"))
    message = m.client.messages.create(model="m1", max_tokens=100, messages=USER)
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].type == "text"
    assert message.content[1].text == "Hello, 世界 🙂!"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)
    # The same producer ran: the completion record says so.
    assert m.record().finish_reason == "stop"


# --- the request reaching the upstream --------------------------------------------------------


def test_anthropic_parameters_reach_the_upstream_in_its_form(
    run: Callable[..., Running],
) -> None:
    m = run(openai_stream(["ok"], model="m2"))
    m.client.messages.create(
        model="m2",
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        max_tokens=77,
        # Newer SDKs dropped these from their signature; older ones (and other clients) send them.
        extra_body={"temperature": 0.5, "top_p": 0.9},
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        tools=[{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": "f"},
    )
    sent = m.sent()
    assert sent["model"] == "m2"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (77, 0.5, 0.9)
    assert sent["stop"] == ["END"]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
        }
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "f"}}


def test_max_tokens_is_clamped_to_the_mount_ceiling(run: Callable[..., Running]) -> None:
    m = run(openai_stream(["ok"], model="m1"), max_tokens=50)
    m.client.messages.create(model="m1", max_tokens=20_000, messages=USER)
    assert m.sent()["max_tokens"] == 50


def test_tool_use_round_trip(run: Callable[..., Running]) -> None:
    m = run(
        openai_stream(tool_chunks(), finish_reason="tool_calls", model="m1"),
        openai_stream(["Sunny at noon."], model="m1"),
    )
    tools: Any = [
        {"name": "get_weather", "input_schema": {"type": "object"}},
        {"name": "get_time", "input_schema": {"type": "object"}},
    ]
    with m.client.messages.stream(model="m1", max_tokens=100, messages=USER, tools=tools) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use", "tool_use"]
    calls = [(b.id, b.name, b.input) for b in first.content if b.type == "tool_use"]
    assert calls == [
        ("call_0", "get_weather", {"city": "Paris"}),
        ("call_1", "get_time", {"tz": "CET"}),
    ]
    # The SDK's own way back: the assistant message as a param, then the results.
    follow_up: list[MessageParam] = [
        *USER,
        first.to_param(),  # type: ignore[list-item]
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_0", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": [{"type": "text", "text": "noon"}],
                },
            ],
        },
    ]
    answer = m.client.messages.create(model="m1", max_tokens=100, messages=follow_up, tools=tools)
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "Sunny at noon."
    sent = m.sent()["messages"]
    assert sent[1]["role"] == "assistant"
    assert sent[1]["content"] == "Checking."
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in sent[1]["tool_calls"]
    ] == [("call_0", "get_weather", {"city": "Paris"}), ("call_1", "get_time", {"tz": "CET"})]
    assert sent[2:] == [
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
    ]


def test_non_streamed_tool_use_has_parsed_input(run: Callable[..., Running]) -> None:
    m = run(openai_stream(tool_chunks(), finish_reason="tool_calls", model="m1"))
    message = m.client.messages.create(model="m1", max_tokens=100, messages=USER)
    assert message.stop_reason == "tool_use"
    inputs = [b.input for b in message.content if b.type == "tool_use"]
    assert inputs == [{"city": "Paris"}, {"tz": "CET"}]


# --- errors before the stream -----------------------------------------------------------------


def test_client_token_works_as_x_api_key(run: Callable[..., Running]) -> None:
    m = run(openai_stream(["ok"], model="m1"), authorize=BearerTokens([TOKEN]))
    assert m.client.messages.create(model="m1", max_tokens=5, messages=USER).content
    wrong = m.client.with_options(api_key="wrong")
    with pytest.raises(anthropic.AuthenticationError) as info:
        wrong.messages.create(model="m1", max_tokens=5, messages=USER, stream=True)
    err = info.value
    assert err.status_code == 401
    assert err.body == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "the bearer token is not valid",
            "code": "unauthorized",
        },
    }
    assert len(m.upstream.requests) == 1  # the refused call never reached the upstream


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"extra_body": {"frobnicate": 1}}, "unknown_field"),
        ({"extra_body": {"top_k": 5}}, "unsupported_parameter"),
        ({"extra_body": {"temperature": 1.5}}, "invalid_parameter"),
        ({"model": "not-allowed"}, "unknown_model"),
        ({"messages": [{"role": "system", "content": "x"}]}, "invalid_role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "unsupported_content",
        ),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "unsupported_parameter",
        ),
    ],
)
def test_bad_requests_are_400s_in_anthropic_error_shape(
    run: Callable[..., Running], kwargs: dict[str, Any], code: str
) -> None:
    m = run()
    args: dict[str, Any] = {"model": "m1", "max_tokens": 5, "messages": USER, **kwargs}
    with pytest.raises(anthropic.BadRequestError) as info:
        m.client.messages.create(**args)
    body: Any = info.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == code
    assert m.upstream.requests == []


def test_missing_max_tokens_is_a_400_as_at_anthropic(run: Callable[..., Running]) -> None:
    m = run()
    r = httpx.post(m.base_url + "/v1/messages", json={"model": "m1", "messages": USER})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]


def test_rate_limit_is_a_429_the_sdk_raises_as_such(run: Callable[..., Running]) -> None:
    m = run(openai_stream(["ok"], model="m1"), limits=Limits(requests="1/minute"))
    m.client.messages.create(model="m1", max_tokens=5, messages=USER)
    with pytest.raises(anthropic.RateLimitError) as info:
        m.client.messages.create(model="m1", max_tokens=5, messages=USER, stream=True)
    body: Any = info.value.body
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "rate_limited"
    assert int(info.value.response.headers["retry-after"]) >= 1


def test_upstream_refusal_before_the_stream_is_an_http_error(run: Callable[..., Running]) -> None:
    m = run(
        [Body(429, b'{"error": {"message": "slow down"}}', {"retry-after": "3"})],
        retries=0,
    )
    with pytest.raises(anthropic.RateLimitError) as info:
        m.client.messages.create(model="m1", max_tokens=5, messages=USER, stream=True)
    body: Any = info.value.body
    assert body["error"]["code"] == "upstream_rate_limited"
    assert m.record().error_code == "upstream_rate_limited"


# --- errors after the start -------------------------------------------------------------------


MID_STREAM_ERROR = {"error": {"message": "the model fell over", "type": "server_error"}}


def test_error_after_the_start_is_an_error_event(run: Callable[..., Running]) -> None:
    m = run(openai_stream(["partial ", MID_STREAM_ERROR], finish_reason=None, done=False))
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:  # noqa: PT012
        for event in m.client.messages.create(model="m1", max_tokens=5, messages=USER, stream=True):
            seen.append(event.type)
    assert seen[0] == "message_start"
    assert "content_block_delta" in seen
    assert "message_stop" not in seen
    body: Any = info.value.body
    assert body["type"] == "error"
    assert "the model fell over" in body["error"]["message"]
    assert body["error"]["code"] == m.record().error_code


def test_error_after_the_start_without_stream_is_an_http_error(
    run: Callable[..., Running],
) -> None:
    m = run(openai_stream(["partial ", MID_STREAM_ERROR], finish_reason=None, done=False))
    with pytest.raises(anthropic.InternalServerError) as info:
        m.client.messages.create(model="m1", max_tokens=5, messages=USER)
    assert info.value.status_code == 502
    body: Any = info.value.body
    assert body["error"]["type"] == "api_error"


# --- the same guarantees as every route -------------------------------------------------------


def test_leaving_mid_stream_closes_the_upstream_within_a_second(
    run: Callable[..., Running],
) -> None:
    m = run(openai_stream(["first "], finish_reason=None, done=False, ending=Hang()))
    stream = m.client.messages.create(model="m1", max_tokens=5, messages=USER, stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            break
    stream.close()
    left = time.monotonic()
    closed = m.upstream.wait_closed(timeout=2.0)
    assert closed - left < 1.0
    record = m.record()
    assert record.finish_reason == "cancelled"
    assert record.client_disconnected
    time.sleep(0.2)
    assert len(m.records) == 1  # on_complete once


def test_non_streamed_client_leaving_cancels_the_upstream(run: Callable[..., Running]) -> None:
    m = run(openai_stream(["x"], finish_reason=None, done=False, ending=Hang()))
    with pytest.raises(anthropic.APITimeoutError):
        m.client.with_options(timeout=0.3).messages.create(model="m1", max_tokens=5, messages=USER)
    m.upstream.wait_closed(timeout=1.5)
    record = m.record()
    assert record.finish_reason == "cancelled"
    time.sleep(0.2)
    assert len(m.records) == 1


def test_async_client_streams_too(run: Callable[..., Running]) -> None:
    import anyio

    m = run(openai_stream(HELLO, model="m1"))

    async def main() -> str:
        client = anthropic.AsyncAnthropic(base_url=m.base_url, api_key="x", max_retries=0)
        async with client.messages.stream(model="m1", max_tokens=5, messages=USER) as stream:
            text = "".join([t async for t in stream.text_stream])
        await client.close()
        return text

    assert anyio.run(main) == "Hello, 世界 🙂!"


# --- images, structured output, thinking ------------------------------------------------------

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_image_blocks_reach_the_upstream_as_image_url_parts(run: Callable[..., Running]) -> None:
    m = run(openai_stream(["A red pixel."], model="m1"))
    message = m.client.messages.create(
        model="m1",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://img.test/a.jpg"}},
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "A red pixel."
    assert m.sent()["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://img.test/a.jpg"}},
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]


def test_too_many_images_is_a_400_before_the_upstream(run: Callable[..., Running]) -> None:
    m = run(max_images=1)
    image: Any = {"type": "image", "source": {"type": "url", "url": "https://img.test/a.jpg"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        m.client.messages.create(
            model="m1", max_tokens=5, messages=[{"role": "user", "content": [image, image]}]
        )
    body: Any = info.value.body
    assert body["error"]["code"] == "too_many_images"
    assert m.upstream.requests == []


def test_output_format_reaches_the_upstream_as_a_json_schema(run: Callable[..., Running]) -> None:
    m = run(openai_stream(['{"city": "Paris"}'], model="m1"))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    message = m.client.messages.create(
        model="m1",
        max_tokens=50,
        messages=USER,
        output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "low"},
    )
    assert message.content[0].type == "text"
    assert json.loads(message.content[0].text) == {"city": "Paris"}
    sent = m.sent()
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }
    assert sent["reasoning_effort"] == "low"


def test_thinking_streams_back_as_a_thinking_block(run: Callable[..., Running]) -> None:
    chunks: list[Any] = [{"reasoning_content": "Step one. "}, {"reasoning_content": "Two."}, "42"]
    m = run(openai_stream(chunks, model="m1"))
    thinking: list[str] = []
    with m.client.messages.stream(
        model="m1",
        max_tokens=4096,
        messages=USER,
        thinking={"type": "enabled", "budget_tokens": 2048},
    ) as stream:
        for event in stream:
            if event.type == "thinking":
                thinking.append(event.thinking)
        final = stream.get_final_message()
    assert "".join(thinking) == "Step one. Two."
    assert [b.type for b in final.content] == ["thinking", "text"]
    # An OpenAI-compatible upstream has no thinking budget: nothing unasked-for is sent.
    assert "thinking" not in m.sent() and "reasoning_effort" not in m.sent()


def test_anthropic_in_anthropic_out_passes_thinking_images_and_tools_on(
    serve_app: ServeApp, fake_upstream: FakeUpstream
) -> None:
    # The Anthropic provider upstream: the request makes the round trip Anthropic → ours →
    # Anthropic, and the answer the way back.
    fake_upstream.push(
        anthropic_stream(
            [
                Thinking("Looking ", "closely."),
                "A pixel.",
                ToolBlock("toolu_9", "zoom", '{"x":', "1}"),
            ],
            stop_reason="tool_use",
        )
    )
    provider = Anthropic("sk-ant-upstream", base_url=fake_upstream.url, default_model="claude-x")
    mount = LLMMount(provider=provider, model="claude-x")
    url = serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"
    client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
    source: Any = {"type": "base64", "media_type": "image/png", "data": PNG}
    with client.messages.stream(
        model="claude-x",
        max_tokens=4096,
        system="Look carefully.",
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[{"name": "zoom", "input_schema": {"type": "object"}}],
        messages=[
            {
                "role": "user",
                "content": [{"type": "image", "source": source}, {"type": "text", "text": "?"}],
            }
        ],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[2].type == "tool_use"
    assert final.content[2].input == {"x": 1}
    assert final.stop_reason == "tool_use"
    sent = fake_upstream.requests[-1].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["system"] == "Look carefully."
    assert sent["messages"][0]["content"][0] == {"type": "image", "source": source}
    assert sent["tools"][0]["name"] == "zoom"


def test_pings_between_events_do_not_disturb_the_sdk(run: Callable[..., Running]) -> None:
    slow = ["slow ", "and ", "steady"]
    m = run(
        openai_stream(slow, pace=0.15, model="m1"),
        openai_stream(slow, pace=0.15, model="m1"),
        ping_interval=0.05,
    )
    body = {"model": "m1", "max_tokens": 5, "stream": True, "messages": USER}
    raw = httpx.post(m.base_url + "/v1/messages", json=body, timeout=5).text
    assert raw.count(": ping") >= 4  # the keep-alives really were there
    with m.client.messages.stream(model="m1", max_tokens=5, messages=USER) as stream:
        assert "".join(stream.text_stream) == "slow and steady"
        assert stream.get_final_message().stop_reason == "end_turn"


def test_an_upstream_going_quiet_mid_stream_is_a_timeout_error_event(
    run: Callable[..., Running],
) -> None:
    m = run(
        openai_stream(["partial"], finish_reason=None, done=False, ending=Hang()), idle_timeout=0.3
    )
    stream = m.client.messages.stream(model="m1", max_tokens=5, messages=USER)
    with pytest.raises(anthropic.APIStatusError) as info, stream as events:
        for _ in events:
            pass
    body: Any = info.value.body
    assert body["error"]["type"] == "timeout_error"
    assert body["error"]["code"] == "upstream_timeout"
    m.upstream.wait_closed(timeout=1.0)
