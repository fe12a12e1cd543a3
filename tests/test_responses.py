"""``POST /v1/responses``, driven by the official ``openai`` SDK over real sockets: streamed
and not, the ``responses.stream`` helper, function-call round trips, structured output,
images, and the same guarantees as every route (limits, timeouts, disconnects, records)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import openai
import pydantic
import pytest

from llm_sse_mount.core.limits import Limits
from llm_sse_mount.errors import UpstreamError
from llm_sse_mount.events import Finish, ReasoningDelta, ToolCallDelta, Usage
from llm_sse_mount.providers.base import Provider
from llm_sse_mount.providers.openai import OpenAICompatible
from llm_sse_mount.providers.scripted import Emit, Fail, Hang, Scripted, ScriptStep, Text

from .support.fake_upstream import FakeUpstream, openai_stream
from .support.fake_upstream import Hang as UpstreamHang
from .support.running import Running
from .support.servers import ServerThread

ServeApp = Callable[..., ServerThread]
ANSWER = "Hello, 世界! 🙂\nSecond line."
TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


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
        Emit(Usage(5, 9, 14)),
        Emit(Finish(finish)),  # type: ignore[arg-type]
    ]


TOOLS_SCRIPT: list[ScriptStep] = [
    Emit(ToolCallDelta(0, "call_a", "get_weather", "")),
    Emit(ToolCallDelta(0, None, None, '{"city": ')),
    Emit(ToolCallDelta(0, None, None, '"Paris"}')),
    Emit(ToolCallDelta(1, "call_b", "get_time", '{"tz": "CET"}')),
    Emit(Finish("tool_calls")),
]
WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def raw_events(base_url: str, body: dict[str, Any]) -> tuple[str, list[tuple[str, Any]]]:
    text = httpx.post(base_url + "/responses", json={**body, "stream": True}, timeout=5).text
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields["event"], json.loads(fields["data"])))
    return text, events


# --- streamed -----------------------------------------------------------------------------------


def test_stream_is_typed_events_numbered_from_zero_with_one_terminal_event(
    run: Callable[..., Running],
) -> None:
    m = run(answer())
    raw, events = raw_events(m.base_url, {"model": "m1", "input": "hi"})
    assert not any(line.startswith("id:") for line in raw.splitlines())
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert [n for n in names if n in TERMINAL] == ["response.completed"]
    assert names[-1] == "response.completed"
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 7,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_sdk_stream_text_reasoning_and_usage(run: Callable[..., Running]) -> None:
    m = run(answer())
    events = list(m.client.responses.create(model="m1", input="hi", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == ANSWER
    reasoning = "".join(
        e.delta for e in events if e.type == "response.reasoning_summary_text.delta"
    )
    assert reasoning == "Let me think. 想一想。"
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.status == "completed"
    assert final.response.output_text == ANSWER
    assert final.response.usage is not None
    assert (final.response.usage.input_tokens, final.response.usage.output_tokens) == (5, 9)
    assert [item.type for item in final.response.output] == ["reasoning", "message"]
    assert m.record().finish_reason == "stop"


def test_the_stream_helper_accumulates_a_final_response(run: Callable[..., Running]) -> None:
    m = run(answer())
    deltas: list[str] = []
    with m.client.responses.stream(model="m1", input="hi") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == ANSWER
    assert final.output_text == ANSWER
    assert final.id.startswith("resp_")


def test_function_calls_stream_as_items_with_argument_deltas(run: Callable[..., Running]) -> None:
    m = run(TOOLS_SCRIPT)
    events = list(
        m.client.responses.create(model="m1", input="hi", tools=[WEATHER_TOOL], stream=True)
    )
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [(e.name, e.arguments) for e in done] == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_time", '{"tz": "CET"}'),
    ]
    final = events[-1]
    assert final.type == "response.completed"
    calls = [
        (i.call_id, i.name, i.arguments) for i in final.response.output if i.type == "function_call"
    ]
    assert calls == [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_time", '{"tz": "CET"}'),
    ]


def test_length_is_response_incomplete(run: Callable[..., Running]) -> None:
    m = run(answer(finish="length"))
    events = list(m.client.responses.create(model="m1", input="hi", stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details is not None
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert not any(e.type in ("response.completed", "response.failed") for e in events)
    nonstream = m.client.responses.create(model="m1", input="hi")
    assert nonstream.status == "incomplete"
    assert nonstream.output_text == ANSWER


def test_an_error_after_the_start_is_response_failed(run: Callable[..., Running]) -> None:
    m = run([Text("abc", pieces=1), Fail(UpstreamError("boom", code="upstream_error"))])
    _, events = raw_events(m.base_url, {"model": "m1", "input": "hi"})
    names = [n for n, _ in events]
    assert [n for n in names if n in TERMINAL] == ["response.failed"]
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "upstream_error", "message": "boom"}
    # The open message is closed as incomplete before the terminal event.
    item_done = [d for n, d in events if n == "response.output_item.done"][-1]
    assert item_done["item"]["status"] == "incomplete"


def test_pings_do_not_disturb_the_sdk(
    run: Callable[..., Running], fake_upstream: FakeUpstream
) -> None:
    slow = ["slow ", "and ", "steady"]
    fake_upstream.push(openai_stream(slow, pace=0.15), openai_stream(slow, pace=0.15))
    m = run(OpenAICompatible(fake_upstream.url + "/v1", "k"), ping_interval=0.05)
    raw, _ = raw_events(m.base_url, {"model": "m1", "input": "hi"})
    assert raw.count(": ping") >= 4
    events = list(m.client.responses.create(model="m1", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "slow and steady"


# --- not streamed -------------------------------------------------------------------------------


def test_non_streaming_returns_the_response_object(run: Callable[..., Running]) -> None:
    m = run(answer())
    response = m.client.responses.create(
        model="m1", input="hi", instructions="Be brief.", temperature=0.5
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == ANSWER
    assert response.instructions == "Be brief."
    assert response.temperature == 0.5
    assert response.usage is not None and response.usage.total_tokens == 14
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "Let me think. 想一想。"
    assert m.record().finish_reason == "stop"
    assert len(m.records) == 1


def test_non_streaming_upstream_timeout_is_a_504(run: Callable[..., Running]) -> None:
    m = run([Text("partial", pieces=1), Hang()], idle_timeout=0.2)
    with pytest.raises(openai.APIStatusError) as info:
        m.client.responses.create(model="m1", input="hi")
    assert info.value.status_code == 504
    assert info.value.code == "upstream_timeout"


def test_streamed_idle_timeout_is_response_failed(run: Callable[..., Running]) -> None:
    m = run([Text("partial", pieces=1), Hang()], idle_timeout=0.2)
    events = list(m.client.responses.create(model="m1", input="hi", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None
    assert events[-1].response.error.code == "upstream_timeout"


# --- the request reaches the upstream -------------------------------------------------------------


def upstream_run(run: Callable[..., Running], up: FakeUpstream, **kw: Any) -> Running:
    return run(OpenAICompatible(up.url + "/v1", "k"), **kw)


def test_function_call_round_trip(run: Callable[..., Running], fake_upstream: FakeUpstream) -> None:
    call = {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ]
    }
    fake_upstream.push(
        openai_stream([call], finish_reason="tool_calls"), openai_stream(["Sunny in Oslo."])
    )
    m = upstream_run(run, fake_upstream)
    first = m.client.responses.create(
        model="m1", input="weather in Oslo?", tools=[WEATHER_TOOL], tool_choice="required"
    )
    (fc,) = [item for item in first.output if item.type == "function_call"]
    assert (fc.call_id, fc.name, fc.arguments) == ("call_1", "get_weather", '{"city":"Oslo"}')
    # The client sends the call and its output back, as the SDK docs show.
    second = m.client.responses.create(
        model="m1",
        input=[
            {"role": "user", "content": "weather in Oslo?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": "call_1", "output": '{"sky":"clear"}'},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "Sunny in Oslo."
    sent_first, sent_second = (r.json for r in fake_upstream.requests)
    assert sent_first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]
    assert sent_first["tool_choice"] == "required"
    assert sent_second["messages"] == [
        {"role": "user", "content": "weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"sky":"clear"}', "tool_call_id": "call_1"},
    ]


def test_parameters_text_format_image_and_instructions_reach_the_upstream(
    run: Callable[..., Running], fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(openai_stream(['{"city": "Oslo", "days": 3}']))
    m = upstream_run(run, fake_upstream)

    class Trip(pydantic.BaseModel):
        city: str
        days: int

    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + bytes(64)).decode()
    parsed = m.client.responses.parse(
        model="m2",
        instructions="Plan trips.",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "plan this"},
                    {"type": "input_image", "image_url": png, "detail": "low"},
                ],
            }
        ],
        text_format=Trip,
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=100,
        reasoning={"effort": "low"},
        store=False,
    )
    assert parsed.output_parsed == Trip(city="Oslo", days=3)
    sent = fake_upstream.requests[0].json
    assert sent["model"] == "m2"
    assert sent["messages"] == [
        {"role": "system", "content": "Plan trips."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "plan this"},
                {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
            ],
        },
    ]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.3, 0.9, 100)
    assert sent["reasoning_effort"] == "low"
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Trip"
    assert fmt["json_schema"]["schema"]["required"] == ["city", "days"]


# --- refused before the stream ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (
            {"input": "x", "previous_response_id": "resp_1"},
            "unsupported_parameter",
            "previous_response_id",
        ),
        ({"input": "x", "conversation": "conv_1"}, "unsupported_parameter", "conversation"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "unsupported_parameter", "input"),
        ({"input": "x", "tools": [{"type": "web_search"}]}, "unsupported_parameter", "tools"),
        ({"input": "x", "background": True}, "unsupported_parameter", "background"),
        ({"input": "x", "temperature": 5}, "invalid_parameter", "temperature"),
        ({"input": "x", "max_output_tokens": 0}, "invalid_parameter", "max_output_tokens"),
        ({"input": "x", "frobnicate": 1}, "unknown_field", "frobnicate"),
        ({"input": []}, "invalid_request", "input"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "unsupported_content",
            "input",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "http://x/a.png"}],
                    }
                ]
            },
            "invalid_image",
            "input",
        ),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}},
            "invalid_parameter",
            "text",
        ),
        ({"input": "x", "model": "gpt-nope"}, "unknown_model", "model"),
    ],
)
def test_bad_requests_are_openai_shaped_400s_naming_the_parameter(
    run: Callable[..., Running], body: dict[str, Any], code: str, param: str
) -> None:
    m = run(answer())
    r = httpx.post(m.base_url + "/responses", json={"model": "m1", **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (code, param, "invalid_request_error")
    known = {k: v for k, v in body.items() if k != "frobnicate"}
    with pytest.raises(openai.BadRequestError) as info:
        m.client.responses.create(
            **{"model": "m1", **known}, extra_body={k: v for k, v in body.items() if k not in known}
        )
    assert info.value.code == code


def test_text_format_on_an_upstream_without_it_is_refused(run: Callable[..., Running]) -> None:
    m = run(answer())  # the scripted provider declares no structured output
    with pytest.raises(openai.BadRequestError) as info:
        m.client.responses.create(model="m1", input="x", text={"format": {"type": "json_object"}})
    assert info.value.code == "unsupported_parameter"
    assert "scripted" in info.value.message


def test_limits_apply_with_openai_shaped_429s(run: Callable[..., Running]) -> None:
    m = run(answer(), limits=Limits(requests="1/minute"))
    m.client.responses.create(model="m1", input="hi")
    with pytest.raises(openai.RateLimitError) as info:
        m.client.responses.create(model="m1", input="hi")
    assert info.value.code == "rate_limited"
    assert info.value.response.headers["retry-after"]
    assert set(info.value.response.json()["error"]) == {"message", "type", "param", "code"}


# --- the client leaving ---------------------------------------------------------------------------


def test_client_closing_the_stream_closes_the_upstream_within_a_second(
    run: Callable[..., Running], fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(
        openai_stream(["first "], done=False, finish_reason=None, ending=UpstreamHang())
    )
    m = upstream_run(run, fake_upstream)
    stream = m.client.responses.create(model="m1", input="hi", stream=True)
    for event in stream:
        if event.type == "response.output_text.delta":
            break
    closed_at = time.monotonic()
    stream.close()
    assert fake_upstream.wait_closed(timeout=1.0)
    assert time.monotonic() - closed_at < 1.0
    record = m.record()
    assert record.finish_reason == "cancelled"
    assert len(m.records) == 1


def test_client_leaving_a_non_streamed_request_cancels_the_upstream(
    run: Callable[..., Running], fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(openai_stream(["x"], done=False, finish_reason=None, ending=UpstreamHang()))
    m = upstream_run(run, fake_upstream)
    with pytest.raises(openai.APITimeoutError):
        m.client.with_options(timeout=0.3).responses.create(model="m1", input="hi")
    assert fake_upstream.wait_closed(timeout=1.5)
    record = m.record()
    assert record.finish_reason == "cancelled"
    assert record.client_disconnected
