"""The AI SDK format in isolation: the encoder's chunk sequences and the useChat body parser.
End to end through the SDK's own parser: tests/test_aisdk.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_sse_mount.errors import RequestError
from llm_sse_mount.events import (
    Done,
    Error,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from llm_sse_mount.protocols.aisdk import AISDKEncoder
from llm_sse_mount.protocols.aisdk_messages import parse_ui_body
from llm_sse_mount.request import Message, ToolCall

# The keys AI SDK 5.0.0's strict chunk schema allows, for the chunk types this encoder emits
# (node_modules/ai-v5-strict/dist/index.mjs, `uiMessageChunkSchema`). Optional keys we never
# send are left out, so sending one of them fails here before it fails in a browser.
ALLOWED_KEYS: dict[str, set[str]] = {
    "start": {"type", "messageId", "messageMetadata"},
    "start-step": {"type"},
    "text-start": {"type", "id"},
    "text-delta": {"type", "id", "delta"},
    "text-end": {"type", "id"},
    "reasoning-start": {"type", "id"},
    "reasoning-delta": {"type", "id", "delta"},
    "reasoning-end": {"type", "id"},
    "tool-input-start": {"type", "toolCallId", "toolName"},
    "tool-input-delta": {"type", "toolCallId", "inputTextDelta"},
    "tool-input-available": {"type", "toolCallId", "toolName", "input"},
    "error": {"type", "errorText"},
    "finish-step": {"type"},
    "finish": {"type", "messageMetadata"},
}


def encode(events: list[StreamEvent], *, batch: int = 1, **kwargs: Any) -> bytes:
    """Run events through one encoder in batches of ``batch`` frames, as the store delivers."""
    encoder = AISDKEncoder("stream-id", "m", **{"message_id": "sid", **kwargs})
    frames = list(enumerate(events))
    return b"".join(encoder.encode(frames[i : i + batch]) for i in range(0, len(frames), batch))


def chunks(events: list[StreamEvent], **kwargs: Any) -> list[Any]:
    """The decoded ``data:`` payloads, checking the SSE framing on the way."""
    raw = encode(events, **kwargs).decode()
    assert raw.endswith("\n\n")
    out: list[Any] = []
    for block in raw[:-2].split("\n\n"):
        # One data line per event, nothing else: no id:, no event: (the SDK needs neither).
        assert block.startswith("data: "), block
        assert "\n" not in block, block
        payload = block[len("data: ") :]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    for chunk in out[:-1]:
        assert set(chunk) <= ALLOWED_KEYS[chunk["type"]], chunk
    return out


def types(out: list[Any]) -> list[str]:
    return [c if isinstance(c, str) else c["type"] for c in out]


# --- encoder ---------------------------------------------------------------------------------


def test_text_stream_is_start_step_text_block_finish_and_done() -> None:
    out = chunks([Start("sid", "m"), TextDelta("你好，"), TextDelta("world\n"), Done("stop")])
    assert out == [
        {"type": "start", "messageId": "sid"},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-0"},
        {"type": "text-delta", "id": "text-0", "delta": "你好，"},
        {"type": "text-delta", "id": "text-0", "delta": "world\n"},
        {"type": "text-end", "id": "text-0"},
        {"type": "finish-step"},
        {"type": "finish"},
        "[DONE]",
    ]


def test_switching_kinds_closes_the_open_block_and_ids_stay_stable_per_block() -> None:
    events: list[StreamEvent] = [
        Start("sid", "m"),
        ReasoningDelta("think"),
        ReasoningDelta(" more"),
        TextDelta("answer"),
        ReasoningDelta("again"),
        TextDelta(""),  # empty pieces open nothing
        Done("stop"),
    ]
    for batch in (1, 3, len(events)):
        out = chunks(events, batch=batch)
        assert types(out)[2:-3] == [
            "reasoning-start",
            "reasoning-delta",
            "reasoning-delta",
            "reasoning-end",
            "text-start",
            "text-delta",
            "text-end",
            "reasoning-start",
            "reasoning-delta",
            "reasoning-end",
        ]
        ids = [c.get("id") for c in out[2:-3]]
        assert ids == ["reasoning-0"] * 4 + ["text-1"] * 3 + ["reasoning-2"] * 3


def test_text_survives_json_exactly() -> None:
    text = 'line\r\nnext\u2028sep "q" \\ \x00 ✨ 中文'
    out = chunks([Start("sid", "m"), TextDelta(text), Done("stop")])
    assert out[3]["delta"] == text


def test_tool_call_fragments_stream_and_become_available_at_step_end() -> None:
    out = chunks(
        [
            Start("sid", "m"),
            TextDelta("Let me check."),
            ToolCallDelta(0, "call_1", "get_weather", ""),
            ToolCallDelta(0, None, None, '{"city":'),
            ToolCallDelta(0, None, None, ' "北京"}'),
            ToolCallDelta(1, "call_2", "now", ""),
            Done("tool_calls"),
        ]
    )
    assert out[2:-1] == [
        {"type": "text-start", "id": "text-0"},
        {"type": "text-delta", "id": "text-0", "delta": "Let me check."},
        {"type": "text-end", "id": "text-0"},
        {"type": "tool-input-start", "toolCallId": "call_1", "toolName": "get_weather"},
        {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '{"city":'},
        {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": ' "北京"}'},
        {"type": "tool-input-start", "toolCallId": "call_2", "toolName": "now"},
        {
            "type": "tool-input-available",
            "toolCallId": "call_1",
            "toolName": "get_weather",
            "input": {"city": "北京"},
        },
        {"type": "tool-input-available", "toolCallId": "call_2", "toolName": "now", "input": {}},
        {"type": "finish-step"},
        {"type": "finish"},
    ]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [("[1, 2]", [1, 2]), ('{"a": 1', '{"a": 1'), ('{"x": NaN}', '{"x": NaN}'), ("  ", {})],
)
def test_tool_input_is_parsed_json_or_else_the_raw_string(arguments: str, expected: Any) -> None:
    out = chunks([Start("sid", "m"), ToolCallDelta(0, "c", "f", arguments), Done("tool_calls")])
    available = [c for c in out if isinstance(c, dict) and c["type"] == "tool-input-available"]
    assert available[0]["input"] == expected


def test_a_fragment_without_id_or_name_still_gets_strings() -> None:
    out = chunks([Start("sid", "m"), ToolCallDelta(3, None, None, "{}"), Done("tool_calls")])
    assert out[2] == {"type": "tool-input-start", "toolCallId": "sid-call-3", "toolName": "unknown"}


def test_error_closes_the_block_keeps_unfinished_calls_pending_and_still_finishes() -> None:
    out = chunks(
        [
            Start("sid", "m"),
            ToolCallDelta(0, "c1", "f", '{"a":'),
            TextDelta("partial"),
            Error("upstream_error", "the upstream failed"),
            Done("error"),
        ]
    )
    assert types(out)[-6:] == ["text-delta", "text-end", "error", "finish-step", "finish", "[DONE]"]
    assert out[-4] == {"type": "error", "errorText": "upstream_error: the upstream failed"}
    assert "tool-input-available" not in types(out)


def test_cancelled_stream_makes_no_tool_call_available() -> None:
    out = chunks([Start("sid", "m"), ToolCallDelta(0, "c1", "f", "{}"), Done("cancelled")])
    assert "tool-input-available" not in types(out)


def test_usage_goes_to_finish_metadata_with_the_sdk_names() -> None:
    out = chunks([Start("sid", "m"), Usage(1, 2, 3), Usage(5, 7, 12), Done("stop")])
    assert out[-2] == {
        "type": "finish",
        "messageMetadata": {"usage": {"inputTokens": 5, "outputTokens": 7, "totalTokens": 12}},
    }


def test_continued_message_keeps_its_id() -> None:
    out = chunks([Start("sid", "m"), Done("stop")], message_id="msg-a1")
    assert out[0] == {"type": "start", "messageId": "msg-a1"}


def test_nothing_follows_done_and_done_is_emitted_once() -> None:
    raw = encode([Start("sid", "m"), TextDelta("x"), Done("stop")], batch=3)
    assert raw.count(b"data: [DONE]\n\n") == 1
    assert raw.endswith(b"data: [DONE]\n\n")
    assert b"\nid:" not in raw
    assert not raw.startswith(b"id:")


# --- body parser -----------------------------------------------------------------------------


def text(t: str) -> dict[str, str]:
    return {"type": "text", "text": t}


def ui(role: str, *parts: dict[str, Any], id: str = "m") -> dict[str, Any]:
    return {"id": id, "role": role, "parts": list(parts)}


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "chat", "messages": list(messages), "trigger": "submit-message", **extra}


def test_text_parts_are_joined_reasoning_and_unknown_parts_are_ignored() -> None:
    parsed = parse_ui_body(
        body(
            ui("system", text("Be brief.")),
            ui(
                "user",
                text("Hello, "),
                {"type": "file", "url": "data:,x", "mediaType": "text/plain"},
                {"type": "data-weather", "data": {"x": 1}},
                {"type": "some-future-part", "whatever": [1]},
                text("世界\n"),
            ),
            ui("assistant", {"type": "step-start"}, {"type": "reasoning", "text": "hm"}),
            model="glm-4-flash",
            temperature=0.5,
        )
    )
    assert parsed.fields["messages"] == (
        Message("system", "Be brief."),
        Message("user", "Hello, 世界\n"),
    )
    assert parsed.fields["model"] == "glm-4-flash"
    assert parsed.fields["temperature"] == 0.5
    assert parsed.continued_message_id == "m"
    assert parsed.trigger == "submit-message"


def test_assistant_steps_and_tool_outcomes_become_tool_calls_and_tool_messages() -> None:
    weather = {
        "type": "tool-get_weather",
        "toolCallId": "call_1",
        "state": "output-available",
        "input": {"city": "北京"},
        "output": {"tempC": 21},
    }
    failed = {
        "type": "dynamic-tool",
        "toolName": "lookup",
        "toolCallId": "call_2",
        "state": "output-error",
        "input": {},
        "errorText": "no network",
    }
    pending = {"type": "tool-x", "toolCallId": "call_3", "state": "input-available", "input": {}}
    parsed = parse_ui_body(
        body(
            ui("user", text("Weather?")),
            ui(
                "assistant",
                {"type": "step-start"},
                text("Checking."),
                weather,
                failed,
                text("It is 21°C."),  # text after tool results: a new step, even unmarked
                {"type": "step-start"},
                pending,
                text("Anything else?"),
                id="a1",
            ),
            ui("user", text("Tomorrow?"), id="u2"),
        )
    )
    assert parsed.fields["messages"] == (
        Message("user", "Weather?"),
        Message(
            "assistant",
            "Checking.",
            tool_calls=(
                ToolCall("call_1", "get_weather", '{"city":"北京"}'),
                ToolCall("call_2", "lookup", "{}"),
            ),
        ),
        Message("tool", '{"tempC":21}', tool_call_id="call_1"),
        Message("tool", "Error: no network", tool_call_id="call_2"),
        Message("assistant", "It is 21°C."),
        Message("assistant", "Anything else?"),
        Message("user", "Tomorrow?"),
    )
    assert parsed.continued_message_id is None


def test_regenerate_trigger_and_message_id_are_accepted() -> None:
    parsed = parse_ui_body(
        body(ui("user", text("again")), trigger="regenerate-message", messageId="a1")
    )
    assert parsed.trigger == "regenerate-message"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ([], "invalid_request"),
        ("hello", "invalid_request"),
        ({"messages": [ui("user", text("x"))], "webSearch": True}, "unknown_field"),
        ({"id": "c"}, "invalid_request"),
        ({"messages": []}, "invalid_request"),
        ({"messages": {"role": "user"}}, "invalid_request"),
        ({"messages": ["hi"]}, "invalid_request"),
        ({"messages": [ui("tool", text("x"))]}, "invalid_role"),
        ({"messages": [{"role": "user", "content": "AI SDK 4"}]}, "invalid_request"),
        ({"messages": [ui("user", {"text": "no type"})]}, "invalid_request"),
        ({"messages": [ui("user", "not an object")]}, "invalid_request"),
        ({"messages": [ui("user", {"type": "text", "text": 42})]}, "invalid_request"),
        ({"messages": [ui("user", {"type": "file", "url": "x"})]}, "invalid_request"),
        ({"messages": [ui("user", text("x"))], "trigger": "resume"}, "invalid_parameter"),
        ({"messages": [ui("user", text("x"))], "model": ""}, "invalid_parameter"),
        ({"messages": [ui("user", text("x"))], "model": 4}, "invalid_parameter"),
        ({"messages": [ui("user", text("x"))], "temperature": 9}, "invalid_parameter"),
        ({"messages": [ui("user", text("x"))], "id": 7}, "invalid_request"),
        ({"messages": [ui("user", text("x"))], "messageId": 7}, "invalid_request"),
        (
            {"messages": [ui("assistant", {"type": "tool-f", "state": "output-available"})]},
            "invalid_request",
        ),
        (
            {
                "messages": [
                    ui(
                        "assistant",
                        {
                            "type": "tool-f",
                            "toolCallId": "c",
                            "state": "output-available",
                            "input": {"x": float("nan")},
                        },
                    )
                ]
            },
            "invalid_request",
        ),
    ],
)
def test_malformed_bodies_are_request_errors_with_stable_codes(raw: Any, code: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_ui_body(raw)
    assert info.value.code == code
    assert info.value.status == 400


def test_the_message_id_is_never_the_stream_id() -> None:
    # The stream id is the capability to read the stream; the AI SDK shows messageId to apps.
    first = AISDKEncoder("stream-id", "m").encode([(0, Start("stream-id", "m"))])
    second = AISDKEncoder("stream-id", "m").encode([(0, Start("stream-id", "m"))])
    ids = [json.loads(raw.split(b"\n")[0][6:])["messageId"] for raw in (first, second)]
    assert "stream-id" not in ids[0] and ids[0] != ids[1]
