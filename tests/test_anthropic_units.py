"""Unit tests of the Anthropic Messages protocol's two halves, one module each: the body parser
(Anthropic's request → our request fields) and the encoder (our frames → Anthropic's events)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_sse_mount.errors import RequestError
from llm_sse_mount.events import Done, Error, ReasoningDelta, Start, TextDelta, ToolCallDelta, Usage
from llm_sse_mount.protocols.anthropic_request import parse_anthropic_body
from llm_sse_mount.protocols.anthropic_wire import AnthropicEncoder, MessageBuilder
from llm_sse_mount.request import ImagePart, Message, Reasoning, ResponseFormat, TextPart, ToolCall

PNG = "iVBORw0KGgo="


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **kw}


def fields(**kw: Any) -> dict[str, Any]:
    return parse_anthropic_body(body(**kw))[0]


# --- the body ---------------------------------------------------------------------------------


def test_a_user_turn_with_results_puts_tool_messages_before_its_text() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "巴黎"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "and hurry"},
                {"type": "tool_result", "tool_use_id": "t1", "content": "sunny", "is_error": False},
                {"type": "tool_result", "tool_use_id": "t2", "content": "boom", "is_error": True},
            ],
        },
    ]
    got = fields(messages=messages, system="Be brief.")["messages"]
    assert got == (
        Message("system", "Be brief."),
        Message("user", "weather?"),
        Message("assistant", "Checking.", tool_calls=(ToolCall("t1", "w", '{"city": "巴黎"}'),)),
        Message("tool", "sunny", tool_call_id="t1"),
        Message("tool", "Error: boom", tool_call_id="t2"),
        Message("user", "and hurry"),
    )


def test_image_blocks_become_image_parts_in_order() -> None:
    content = [
        {"type": "text", "text": "What is "},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "and "},
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}},
    ]
    (message,) = fields(messages=[{"role": "user", "content": content}])["messages"]
    assert message.content == "What is and "
    assert message.parts == (
        TextPart("What is "),
        ImagePart(f"data:image/png;base64,{PNG}", media_type="image/png"),
        TextPart("and "),
        ImagePart("https://example.test/cat.jpg"),
    )


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ({"type": "url", "url": "http://plain.test/x.png"}, "invalid_image"),
        ({"type": "base64", "media_type": "text/html", "data": PNG}, "invalid_image"),
        ({"type": "file", "file_id": "f1"}, "unsupported_content"),
    ],
)
def test_images_the_mount_will_not_pass_on_are_400s(source: dict[str, Any], code: str) -> None:
    content = [{"type": "image", "source": source}]
    with pytest.raises(RequestError) as info:
        fields(messages=[{"role": "user", "content": content}])
    assert info.value.code == code


def test_thinking_effort_and_output_format() -> None:
    assert fields()["reasoning"] is None
    assert fields(thinking={"type": "enabled", "budget_tokens": 2048})["reasoning"] == Reasoning(
        budget_tokens=2048
    )
    assert fields(thinking={"type": "adaptive"})["reasoning"] is None
    got = fields(
        thinking={"type": "enabled", "budget_tokens": 4096},
        output_config={"effort": "max", "format": {"type": "json_schema", "schema": {"a": 1}}},
    )
    assert got["reasoning"] == Reasoning(effort="max", budget_tokens=4096)
    assert got["response_format"] == ResponseFormat("json_schema", {"a": 1}, name="response")
    with pytest.raises(RequestError, match="budget_tokens"):
        fields(thinking={"type": "enabled", "budget_tokens": 100})  # Anthropic's floor: 1024


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any", "disable_parallel_tool_use": True}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice_in_openai_terms(choice: dict[str, Any], expected: Any) -> None:
    assert fields(tool_choice=choice)["tool_choice"] == expected


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"max_tokens": None}, "invalid_request"),
        ({"max_tokens": 0}, "invalid_parameter"),
        ({"model": ""}, "invalid_parameter"),
        ({"stream": "yes"}, "invalid_parameter"),
        ({"top_k": 3}, "unsupported_parameter"),
        ({"n": 2}, "unknown_field"),
        ({"messages": []}, "invalid_request"),
        ({"messages": [{"role": ["user"], "content": "x"}]}, "invalid_role"),
        ({"messages": [{"role": "user", "content": [{"type": {}}]}]}, "unsupported_content"),
        ({"system": [{"type": "image"}]}, "unsupported_content"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "invalid_parameter"),
        ({"tool_choice": {"type": ["auto"]}}, "invalid_parameter"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048, "x": 1}}, "unknown_field"),
    ],
)
def test_bad_bodies_raise_request_errors_with_stable_codes(
    extra: dict[str, Any], code: str
) -> None:
    with pytest.raises(RequestError) as info:
        parse_anthropic_body(body(**extra))
    assert info.value.code == code


# --- the stream -------------------------------------------------------------------------------


def decode(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in data.decode().split("\n\n"):
        if block:
            event, payload = block.split("\n")
            out.append((event.removeprefix("event: "), json.loads(payload.removeprefix("data: "))))
    return out


def test_blocks_open_and_close_as_the_kind_of_content_changes() -> None:
    enc = AnthropicEncoder("sid", "m")
    frames: list[Any] = [
        Start("sid", "m"),
        ReasoningDelta("a"),
        ReasoningDelta("b"),
        TextDelta("c"),
        ToolCallDelta(0, "t0", "f", ""),
        ToolCallDelta(0, None, None, '{"x":1}'),
        ToolCallDelta(1, "t1", "g", "{}"),
        Usage(3, 4, 7),
        Done("tool_calls"),
    ]
    events = decode(enc.encode(list(enumerate(frames))))
    shape = [
        (
            name,
            data.get("index"),
            (data.get("delta") or data.get("content_block") or {}).get("type"),
        )
        for name, data in events
    ]
    assert shape == [
        ("message_start", None, None),
        ("ping", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"] == {"input_tokens": 3, "output_tokens": 4}


def test_an_error_after_the_start_ends_the_stream_with_an_error_event() -> None:
    enc = AnthropicEncoder("sid", "m")
    start = enc.encode([(0, Start("sid", "m")), (1, TextDelta("x"))])
    assert b"content_block_delta" in start
    end = decode(enc.encode([(2, Error("upstream_overloaded", "busy", True)), (3, Done("error"))]))
    assert end == [
        (
            "error",
            {
                "type": "error",
                "error": {
                    "type": "overloaded_error",
                    "message": "busy",
                    "code": "upstream_overloaded",
                },
            },
        )
    ]


def test_a_stream_every_reader_left_says_cancelled_not_end_turn() -> None:
    enc = AnthropicEncoder("sid", "m")
    enc.encode([(0, Start("sid", "m"))])
    ((name, data),) = decode(enc.encode([(1, Done("cancelled"))]))
    assert name == "error"
    assert data["error"]["code"] == "cancelled"


def test_the_collector_builds_one_message_and_refuses_unparsable_tool_input() -> None:
    builder = MessageBuilder("sid", "m")
    builder.add(
        [
            (0, Start("sid", "m2")),
            (1, TextDelta("Hi ")),
            (2, TextDelta("there")),
            (3, ToolCallDelta(0, "t0", "f", '{"a": ')),
            (4, ToolCallDelta(0, None, None, "[1]}")),
            (5, Done("tool_calls")),
        ]
    )
    message = builder.message()
    assert message["id"].startswith("msg_") and "sid" not in message["id"]
    assert message["model"] == "m2"
    assert message["content"] == [
        {"type": "text", "text": "Hi there"},
        {"type": "tool_use", "id": "t0", "name": "f", "input": {"a": [1]}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert builder.response().status_code == 200
    broken = MessageBuilder("sid", "m")
    broken.add([(0, ToolCallDelta(0, "t0", "f", "{not json")), (1, Done("tool_calls"))])
    response = broken.response()
    assert response.status_code == 502
    assert json.loads(bytes(response.body))["error"] == {
        "type": "api_error",
        "message": "the upstream's arguments for the tool call 'f' are not a JSON object",
        "code": "upstream_bad_response",
    }
