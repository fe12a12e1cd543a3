"""Unit tests of the Responses protocol: the body parser, and the encoder's event stream as a
property over any sequence of stream events cut into any batches."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_sse_mount.errors import RequestError
from llm_sse_mount.events import (
    Done,
    Error,
    Frame,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from llm_sse_mount.protocols.responses import ResponsesEncoder
from llm_sse_mount.protocols.responses_input import parse_responses_body
from llm_sse_mount.request import ImagePart, Message, Reasoning, ResponseFormat, TextPart, ToolCall

TERMINAL = {"response.completed", "response.incomplete", "response.failed"}

# --- the body -----------------------------------------------------------------------------------


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    fields, stream = parse_responses_body({"input": "hi", "instructions": "Be brief."})
    assert fields["messages"] == (Message("system", "Be brief."), Message("user", "hi"))
    assert stream is False


def test_items_become_the_chat_conversation() -> None:
    fields, _ = parse_responses_body(
        {
            "input": [
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"},
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}],
                },
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "warm"}],
                },
            ],
            "stream": True,
        }
    )
    assert fields["messages"] == (
        Message("system", "rules"),
        Message("user", "weather?"),
        Message(
            "assistant",
            "Let me look.",
            tool_calls=(ToolCall("c1", "f", "{}"), ToolCall("c2", "g", "{}")),
        ),
        Message("tool", "sunny", tool_call_id="c1"),
        Message("tool", "warm", tool_call_id="c2"),
    )


def test_images_text_format_reasoning_and_tools() -> None:
    fields, _ = parse_responses_body(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what?"},
                        {"type": "input_image", "image_url": "https://x/a.png", "detail": "high"},
                    ],
                }
            ],
            "text": {"format": {"type": "json_schema", "name": "T", "schema": {"type": "object"}}},
            "reasoning": {"effort": "high", "summary": "auto"},
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "max_output_tokens": 64,
        }
    )
    (message,) = fields["messages"]
    assert message.parts == (TextPart("what?"), ImagePart("https://x/a.png", detail="high"))
    assert fields["response_format"] == ResponseFormat("json_schema", {"type": "object"}, "T")
    assert fields["reasoning"] == Reasoning(effort="high")
    assert fields["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert fields["max_tokens"] == 64


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "previous_response_id": "r"}, "previous_response_id"),
        ({"input": [{"type": "item_reference", "id": "m"}]}, "input"),
        (
            {
                "input": [
                    {
                        "role": "assistant",
                        "content": [{"type": "input_image", "image_url": "https://x/a.png"}],
                    }
                ]
            },
            "input",
        ),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input"),
        ({"input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"input": "x", "reasoning": {"effort": "huge"}}, "reasoning"),
        ({"input": "x", "top_logprobs": 3}, "top_logprobs"),
        ([], None),
    ],
)
def test_refusals_name_the_parameter(body: Any, param: str | None) -> None:
    with pytest.raises(RequestError) as info:
        parse_responses_body(body)
    assert info.value.status == 400
    assert info.value.param == param


# --- the encoder --------------------------------------------------------------------------------


def parse(data: bytes) -> list[dict[str, Any]]:
    events = []
    for block in data.decode().split("\n\n"):
        if not block:
            continue
        head, body = block.split("\n")
        assert head.startswith("event: ") and body.startswith("data: ")
        event = json.loads(body[6:])
        assert head[7:] == event["type"]
        events.append(event)
    return events


def encode(events: list[StreamEvent], cuts: list[int]) -> list[dict[str, Any]]:
    frames: list[Frame] = [(i, e) for i, e in enumerate(events)]
    encoder = ResponsesEncoder("sid", "m", {"tools": [], "instructions": None})
    out = b""
    bounds = [0, *sorted({c % (len(frames) + 1) for c in cuts}), len(frames)]
    for a, b in itertools.pairwise(bounds):
        out += encoder.encode(frames[a:b])
    return parse(out)


body_events = st.lists(
    st.one_of(
        st.text(min_size=1, max_size=5).map(TextDelta),
        st.text(min_size=1, max_size=5).map(ReasoningDelta),
        st.tuples(st.integers(0, 2), st.booleans(), st.text(max_size=5)).map(
            lambda t: ToolCallDelta(
                t[0], f"call_{t[0]}" if t[1] else None, "f" if t[1] else None, t[2]
            )
        ),
        st.just(Usage(1, 2, 3)),
    ),
    max_size=25,
)
endings = st.one_of(
    st.sampled_from(["stop", "length", "tool_calls", "content_filter", "cancelled"]).map(
        lambda r: [Done(r)]  # type: ignore[arg-type]
    ),
    st.just([Error("upstream_error", "boom"), Done("error")]),
)


@given(body_events, endings, st.lists(st.integers(0, 40), max_size=6))
def test_any_stream_is_numbered_closed_and_ended_once(
    middle: list[StreamEvent], ending: list[StreamEvent], cuts: list[int]
) -> None:
    events = encode([Start("sid", "m"), *middle, *ending], cuts)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert [e["type"] for e in events if e["type"] in TERMINAL] == [events[-1]["type"]]
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    done = {
        e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.done"
    }
    assert added == list(range(len(added))) == sorted(done)
    final = events[-1]["response"]
    assert final["output"] == [done[i] for i in added]
    # Every text delta lands in its item, in order; the whole text is the stream's text.
    texts = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert texts == "".join(e.text for e in middle if type(e) is TextDelta)
    for item in final["output"]:
        if item["type"] == "message":
            deltas = [
                e["delta"]
                for e in events
                if e["type"] == "response.output_text.delta" and e["item_id"] == item["id"]
            ]
            assert item["content"][0]["text"] == "".join(deltas)
    # A terminal that matches how the stream ended.
    reason = ending[-1].finish_reason  # type: ignore[union-attr]
    expected = {"length": "response.incomplete", "content_filter": "response.incomplete"}.get(
        reason, "response.failed" if reason in ("error", "cancelled") else "response.completed"
    )
    assert events[-1]["type"] == expected


def test_batching_does_not_change_the_events() -> None:
    script: list[StreamEvent] = [
        Start("sid", "m"),
        ReasoningDelta("a"),
        TextDelta("b"),
        ToolCallDelta(0, "c", "f", "{}"),
        TextDelta("d"),
        Usage(1, 2, 3),
        Done("stop"),
    ]
    one = encode(script, [])
    many = encode(script, list(range(1, 8)))
    strip = [{k: v for k, v in e.items() if k != "response"} for e in one]
    assert strip == [{k: v for k, v in e.items() if k != "response"} for e in many]
    assert [i["type"] for i in one[-1]["response"]["output"]] == [
        "reasoning",
        "message",
        "function_call",
        "message",
    ]
    assert one[-1]["response"]["usage"]["total_tokens"] == 3
