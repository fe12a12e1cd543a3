"""The OpenAI-compatible endpoint, driven by the official ``openai`` SDK over real sockets:
``OpenAI(base_url=<mount>/v1)`` must simply work, streamed and not."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount
from llm_sse_mount.core.records import CompletionRecord
from llm_sse_mount.errors import UpstreamError
from llm_sse_mount.events import (
    Done,
    Finish,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from llm_sse_mount.protocols.openai_chat import OpenAIEncoder
from llm_sse_mount.providers.base import Provider
from llm_sse_mount.providers.openai import OpenAICompatible
from llm_sse_mount.providers.scripted import Emit, Fail, Hang, Pause, Scripted, ScriptStep, Text

from .support.fake_upstream import Body, FakeUpstream, openai_stream
from .support.servers import ServerThread

ServeApp = Callable[..., ServerThread]
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
ANSWER = "Hello, 世界! 🙂\nSecond line."


class Running:
    """A mount served on a real socket, with an SDK client pointed at it."""

    def __init__(self, serve_app: ServeApp, provider: Provider, **mount_kw: Any) -> None:
        self.records: list[CompletionRecord] = []
        self.done = threading.Event()

        def on_complete(record: CompletionRecord) -> None:
            self.records.append(record)
            self.done.set()

        mount_kw.setdefault("models", ["m1", "m2"])
        self.mount = LLMMount(provider=provider, model="m1", on_complete=on_complete, **mount_kw)
        self.server = serve_app(Starlette(routes=[Mount("/llm", app=self.mount)]))
        self.base_url = self.server.url + "/llm/v1"
        self.client = openai.OpenAI(base_url=self.base_url, api_key="unused", max_retries=0)

    def record(self, timeout: float = 3.0) -> CompletionRecord:
        assert self.done.wait(timeout), "on_complete was not called"
        return self.records[-1]


@pytest.fixture
def run(serve_app: ServeApp) -> Callable[..., Running]:
    def start(script: Sequence[ScriptStep] | Provider, **mount_kw: Any) -> Running:
        provider = script if isinstance(script, Provider) else Scripted(script=script)
        return Running(serve_app, provider, **mount_kw)

    return start


def answer(*extra: ScriptStep, finish: str = "stop") -> list[ScriptStep]:
    return [
        Emit(ReasoningDelta("Let me think. ")),
        Emit(ReasoningDelta("想一想。")),
        Text(ANSWER, pieces=7),
        *extra,
        Emit(Finish(finish)),  # type: ignore[arg-type]
    ]


# --- streaming --------------------------------------------------------------------------------


def test_stream_is_openai_chunks_with_one_id_role_first_and_finish_last(
    run: Callable[..., Running],
) -> None:
    m = run(answer(Emit(Usage(5, 9, 14))))
    chunks = list(m.client.chat.completions.create(model="m1", messages=USER, stream=True))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert len({c.created for c in chunks}) == 1
    assert {c.model for c in chunks} == {"m1"}
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content == ANSWER
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    # Usage was not asked for: no usage chunk.
    assert all(c.usage is None and c.choices for c in chunks)


def test_reasoning_content_arrives_in_the_delta_extras(run: Callable[..., Running]) -> None:
    m = run(answer())
    chunks = list(m.client.chat.completions.create(model="m1", messages=USER, stream=True))
    extras = [(c.choices[0].delta.model_extra or {}) for c in chunks]
    reasoning = "".join(e.get("reasoning_content", "") for e in extras)
    assert reasoning == "Let me think. 想一想。"


def test_include_usage_adds_a_last_chunk_with_no_choices(run: Callable[..., Running]) -> None:
    m = run(answer(Emit(Usage(5, 9, 14))))
    chunks = list(
        m.client.chat.completions.create(
            model="m2",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (5, 9)
    assert last.usage.total_tokens == 14
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert {c.model for c in chunks} == {"m2"}


TOOL_SCRIPT: list[ScriptStep] = [
    Emit(ToolCallDelta(0, "call_a", "get_weather", "")),
    Emit(ToolCallDelta(0, None, None, '{"city": ')),
    Emit(ToolCallDelta(0, None, None, '"Paris"}')),
    Emit(ToolCallDelta(1, "call_b", "get_time", '{"tz": "CET"}')),
    Emit(Finish("tool_calls")),
]


def test_tool_calls_stream_as_openai_fragments(run: Callable[..., Running]) -> None:
    m = run(TOOL_SCRIPT)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in m.client.chat.completions.create(model="m1", messages=USER, stream=True):
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for tc in choice.delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            if tc.id:
                assert tc.type == "function"
                call["id"] = tc.id
            assert tc.function is not None
            call["name"] += tc.function.name or ""
            call["arguments"] += tc.function.arguments or ""
    assert finish == "tool_calls"
    assert calls == {
        0: {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_b", "name": "get_time", "arguments": '{"tz": "CET"}'},
    }


def test_pings_between_chunks_do_not_disturb_the_sdk(
    run: Callable[..., Running], fake_upstream: FakeUpstream
) -> None:
    # A slow real upstream: 0.15 s between writes, pings every 0.05 s in the gaps.
    slow = ["slow ", "and ", "steady"]
    fake_upstream.push(openai_stream(slow, pace=0.15), openai_stream(slow, pace=0.15))
    provider = OpenAICompatible(fake_upstream.url + "/v1", "k", default_model="m1")
    m = run(provider, ping_interval=0.05)
    body = {"model": "m1", "messages": USER, "stream": True}
    raw = httpx.post(m.base_url + "/chat/completions", json=body, timeout=5).text
    assert raw.count(": ping") >= 4  # the pings really were there...
    assert not any(line.startswith("id:") for line in raw.splitlines())  # ...with no ids
    assert raw.endswith("data: [DONE]\n\n")
    chunks = list(m.client.chat.completions.create(model="m1", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "slow and steady"
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.anyio
async def test_async_client_streams_too(serve_app: ServeApp) -> None:
    m = Running(serve_app, Scripted(script=answer()))
    client = openai.AsyncOpenAI(base_url=m.base_url, api_key="unused", max_retries=0)
    stream = await client.chat.completions.create(model="m1", messages=USER, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == ANSWER
    await client.close()


# --- not streaming ----------------------------------------------------------------------------


def test_non_streaming_returns_one_chat_completion(run: Callable[..., Running]) -> None:
    m = run(answer(Emit(Usage(5, 9, 14))))
    completion = m.client.chat.completions.create(model="m1", messages=USER)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == ANSWER
    assert (choice.message.model_extra or {})["reasoning_content"] == "Let me think. 想一想。"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 14
    # The same producer ran: the completion record says so.
    record = m.record()
    assert record.finish_reason == "stop"
    assert record.usage == Usage(5, 9, 14)


def test_non_streaming_assembles_tool_calls(run: Callable[..., Running]) -> None:
    m = run(TOOL_SCRIPT)
    completion = m.client.chat.completions.create(model="m1", messages=USER)
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None
    calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]  # type: ignore[union-attr]
    assert calls == [
        ("call_a", "get_weather", {"city": "Paris"}),
        ("call_b", "get_time", {"tz": "CET"}),
    ]


def test_non_streaming_upstream_timeout_is_a_504(run: Callable[..., Running]) -> None:
    m = run([Text("partial", pieces=1), Hang()], idle_timeout=0.2)
    with pytest.raises(openai.APIStatusError) as info:
        m.client.chat.completions.create(model="m1", messages=USER)
    assert info.value.status_code == 504
    assert info.value.code == "upstream_timeout"


def test_non_streaming_client_leaving_cancels_the_upstream(run: Callable[..., Running]) -> None:
    provider = Scripted(script=[Text("x", pieces=1), Hang()])
    m = run(provider)
    client = m.client.with_options(timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m1", messages=USER)
    record = m.record()
    assert record.finish_reason == "cancelled"
    assert record.client_disconnected


# --- the request ------------------------------------------------------------------------------


def test_openai_parameters_reach_the_provider(run: Callable[..., Running]) -> None:
    provider = Scripted(script=answer())
    m = run(provider)
    tools: Any = [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
        }
    ]
    m.client.chat.completions.create(
        model="m2",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
        temperature=0.5,
        top_p=0.9,
        max_completion_tokens=77,
        stop=["END"],
        tools=tools,
        tool_choice="auto",
        n=1,
        user="u-1",
        metadata={"k": "v"},
        seed=3,
        parallel_tool_calls=True,
    )
    req = provider.last_request
    assert req is not None
    assert req.model == "m2"
    assert [(msg.role, msg.content) for msg in req.messages] == [
        ("system", "Be brief."),
        ("user", "hi"),
    ]
    assert (req.temperature, req.top_p, req.max_tokens, req.stop) == (0.5, 0.9, 77, ("END",))
    assert [t.name for t in req.tools] == ["f"]
    assert req.tool_choice == "auto"


def test_an_assistant_message_from_the_sdk_can_be_sent_back(run: Callable[..., Running]) -> None:
    provider = Scripted(script=TOOL_SCRIPT)
    m = run(provider)
    first = m.client.chat.completions.create(model="m1", messages=USER)
    echoed = first.choices[0].message.model_dump()  # refusal/audio/annotations: None
    follow_up: Any = [
        *USER,
        echoed,
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
    ]
    m.client.chat.completions.create(model="m1", messages=follow_up)
    req = provider.last_request
    assert req is not None
    assert [c.id for c in req.messages[1].tool_calls] == ["call_a", "call_b"]
    assert req.messages[2].tool_call_id == "call_a"


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"extra_body": {"frobnicate": 1}}, "unknown_field", "frobnicate"),
        ({"n": 2}, "unsupported_parameter", "n"),
        ({"logprobs": True}, "unsupported_parameter", "logprobs"),
        ({"temperature": 3}, "invalid_parameter", "temperature"),
        ({"max_tokens": 10, "max_completion_tokens": 20}, "invalid_parameter", None),
        ({"model": "not-allowed"}, "unknown_model", "model"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "invalid_role", "messages"),
    ],
)
def test_bad_requests_are_400s_in_openai_error_shape(
    run: Callable[..., Running], kwargs: dict[str, Any], code: str, param: str | None
) -> None:
    m = run(answer())
    args: dict[str, Any] = {"model": "m1", "messages": USER, "stream": True, **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        m.client.chat.completions.create(**args)
    err = info.value
    assert err.status_code == 400
    assert err.code == code
    assert err.type == "invalid_request_error"
    if param is not None:
        assert err.param == param
    assert isinstance(err.body, dict)
    assert set(err.body) == {"message", "type", "param", "code"}


def test_malformed_json_is_a_400_in_openai_shape(run: Callable[..., Running]) -> None:
    m = run(answer())
    r = httpx.post(
        m.base_url + "/chat/completions",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "message": "the request body is not valid JSON",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_json",
        }
    }


# --- upstream failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc_type", "our_status", "code"),
    [
        (401, openai.InternalServerError, 502, "upstream_auth"),
        (429, openai.RateLimitError, 429, "upstream_rate_limited"),
        (503, openai.InternalServerError, 503, "upstream_overloaded"),
    ],
)
def test_upstream_refusal_before_the_stream_is_an_api_status_error_with_our_code(
    run: Callable[..., Running],
    fake_upstream: FakeUpstream,
    status: int,
    exc_type: type[openai.APIStatusError],
    our_status: int,
    code: str,
) -> None:
    fake_upstream.default = [Body(status, b'{"error": {"message": "no", "code": "vendor"}}')]
    provider = OpenAICompatible(fake_upstream.url + "/v1", "sk-secret", default_model="m1")
    m = run(provider, retries=0)
    for stream in (True, False):
        with pytest.raises(exc_type) as info:
            m.client.chat.completions.create(model="m1", messages=USER, stream=stream)
        assert info.value.status_code == our_status
        assert info.value.code == code
        assert "sk-secret" not in str(info.value.body)


def test_upstream_error_mid_stream_raises_in_the_sdk_after_the_text(
    run: Callable[..., Running], fake_upstream: FakeUpstream
) -> None:
    error = {"error": {"message": "inference failed", "code": "500"}}
    fake_upstream.push(openai_stream(["Hel", "lo", error], finish_reason=None, done=False))
    provider = OpenAICompatible(fake_upstream.url + "/v1", "k", default_model="m1")
    m = run(provider, retries=0)
    seen: list[str] = []

    def consume() -> None:
        for chunk in m.client.chat.completions.create(model="m1", messages=USER, stream=True):
            seen.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError) as info:
        consume()
    assert "".join(seen) == "Hello"
    assert info.value.code == "upstream_error"
    assert "inference failed" in info.value.message


def test_scripted_failure_mid_stream_is_an_error_frame_then_done(
    run: Callable[..., Running],
) -> None:
    m = run([Text("abc", pieces=1), Fail(UpstreamError("boom", code="upstream_error"))])
    body = {"model": "m1", "messages": USER, "stream": True}
    raw = httpx.post(m.base_url + "/chat/completions", json=body, timeout=5).text
    frames = [line[6:] for line in raw.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    assert json.loads(frames[-2]) == {
        "error": {
            "message": "boom",
            "type": "server_error",
            "param": None,
            "code": "upstream_error",
        }
    }
    # No finish chunk claims success after a failure.
    assert all('"finish_reason":"stop"' not in f for f in frames)


# --- models -----------------------------------------------------------------------------------


def test_models_list(run: Callable[..., Running]) -> None:
    m = run(answer())
    models = list(m.client.models.list())
    assert [(x.id, x.object, x.owned_by) for x in models] == [
        ("m1", "model", "scripted"),
        ("m2", "model", "scripted"),
    ]


def test_first_chunk_arrives_before_the_answer_is_complete(run: Callable[..., Running]) -> None:
    m = run([Text("first", pieces=1), Pause(2.0), Text(" second", pieces=1), Emit(Finish("stop"))])
    started = time.monotonic()
    stream = m.client.chat.completions.create(model="m1", messages=USER, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    assert (
        time.monotonic() - started < 1.5
    )  # well before the 2 s pause ends: nothing buffers the chunks
    stream.close()


def test_parameters_the_host_forbids_are_named_in_param(run: Callable[..., Running]) -> None:
    m = run(answer(), client_params=["max_tokens"])
    with pytest.raises(openai.BadRequestError) as info:
        m.client.chat.completions.create(model="m1", messages=USER, temperature=0.2)
    assert info.value.code == "parameter_not_allowed"
    assert info.value.param == "temperature"


def test_the_sdk_stream_helper_accumulates_a_final_completion(
    run: Callable[..., Running],
) -> None:
    m = run([Text("Checking.", pieces=2), *TOOL_SCRIPT[:3], Emit(Usage(1, 2, 3)), TOOL_SCRIPT[-1]])
    with m.client.chat.completions.stream(
        model="m1", messages=USER, stream_options={"include_usage": True}
    ) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert {"content.delta", "content.done", "tool_calls.function.arguments.done"} <= kinds
    message = final.choices[0].message
    assert message.content == "Checking."
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None
    assert final.usage.total_tokens == 3


# --- the encoder alone ------------------------------------------------------------------------


def test_encoder_wire_format_in_full() -> None:
    encoder = OpenAIEncoder("abc", "m1", include_usage=True)
    raw = encoder.encode(
        [
            (0, Start("abc", "m1")),
            (1, TextDelta("Hi\n")),
            (2, ToolCallDelta(0, "call_1", "f", "")),
            (3, ToolCallDelta(0, None, None, "{}")),
            (4, Usage(1, 2, 3)),
            (5, Done("tool_calls")),
        ]
    ).decode()
    blocks = raw.split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks[:-1])
    chunks = [json.loads(b[6:]) for b in blocks[:-2]]
    created, completion_id = chunks[0]["created"], chunks[0]["id"]
    # One id for every chunk, never derived from the stream id (the capability to read it).
    assert completion_id.startswith("chatcmpl-") and "abc" not in completion_id
    envelope = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    envelope["model"] = "m1"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **envelope,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    assert chunks == [
        choice({"role": "assistant", "content": ""}),
        choice({"content": "Hi\n"}),
        choice(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        ),
        choice({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        choice({}, "tool_calls"),
        {
            **envelope,
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
    ]


def test_a_non_streamed_answer_cut_by_a_rate_limit_says_when_to_come_back() -> None:
    from llm_sse_mount.events import Error as ErrorFrame
    from llm_sse_mount.protocols.openai_chat import CompletionBuilder

    builder = CompletionBuilder("s", "m")
    builder.add([(0, Start("s", "m")), (1, ErrorFrame("upstream_rate_limited", "slow", True))])
    response = builder.response()
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
