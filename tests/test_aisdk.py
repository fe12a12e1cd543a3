"""``POST /ai-sdk/chat`` end to end: a real server, read by the Vercel AI SDK's own transport,
parser and chunk schema (tests/js/aisdk/validate.mjs), in two SDK versions:

- ``ai`` 6.0.325, the newest release that runs on Node 20 (7.x needs Node 22);
- ``ai-v5-strict`` = ``ai`` 5.0.0, whose chunk schema is ``strictObject``: one key it does not
  know and the SDK rejects the whole response.

The first run installs the pinned packages (``npm install``, about 3 s with a warm cache); later
runs reuse ``node_modules`` while ``package-lock.json`` is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount, Route

from llm_sse_mount import LLMMount
from llm_sse_mount.errors import RateLimited, UpstreamError
from llm_sse_mount.events import Finish, ToolCallDelta, Usage
from llm_sse_mount.providers.scripted import Emit, Fail, Pause, Scripted, ScriptStep, Text
from llm_sse_mount.request import ChatRequest, Message, ToolCall

from .conftest import unavailable
from .support.servers import ServerThread

JS_DIR = Path(__file__).parent / "js" / "aisdk"
SDKS = ["ai", "ai-v5-strict"]
ROUTE = "/llm/ai-sdk/chat"

# Chinese, CRLF and LF, a line separator JSON leaves raw, quotes and an emoji: all must arrive
# exactly as scripted.
TEXT = 'Hello, 世界！\n第二行\r\nline\u2028sep "quoted" \\ ✨'
REASONING = "先想一想：\nthe user wants a greeting."

ServeApp = Callable[..., ServerThread]


@pytest.fixture(scope="session")
def aisdk_js(node_bin: str) -> Path:
    """``tests/js/aisdk`` with its pinned packages installed (once per lockfile)."""
    npm = shutil.which("npm")
    assert npm is not None  # node_bin has checked
    lock = (JS_DIR / "package-lock.json").read_bytes() + (JS_DIR / "package.json").read_bytes()
    digest = hashlib.sha256(lock).hexdigest()
    stamp = JS_DIR / "node_modules" / ".llm-sse-mount-lock"
    installed = (JS_DIR / "node_modules" / "ai" / "package.json").exists()
    if installed and stamp.exists() and stamp.read_text() == digest:
        return JS_DIR
    try:
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"npm install in {JS_DIR} failed: {exc}")
    if done.returncode != 0:
        unavailable(f"npm install in {JS_DIR} failed:\n{done.stderr[-2000:]}")
    stamp.write_text(digest)
    return JS_DIR


def run_validator(
    js: Path, node: str, url: str, body: Any, *, sdk: str = "ai", flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    args = [node, "validate.mjs", "--sdk", sdk, *flags]
    return subprocess.run(
        [*args, url, json.dumps(body)], cwd=js, capture_output=True, text=True, timeout=30
    )


def validate(js: Path, node: str, url: str, body: Any, **kwargs: Any) -> dict[str, Any]:
    """What the SDK made of the response; fails the test if the SDK rejected any of it."""
    done = run_validator(js, node, url, body, **kwargs)
    assert done.returncode == 0, f"validate.mjs exited {done.returncode}:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def serve_mount(serve_app: ServeApp, provider: Scripted, **options: Any) -> str:
    mount = LLMMount(provider=provider, retries=0, **options)
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    return server.url + ROUTE


def scripted(*steps: ScriptStep) -> Scripted:
    return Scripted(script=list(steps))


def ui_body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "chat-1", "messages": list(messages), "trigger": "submit-message", **extra}


def user(text: str, id: str = "u1") -> dict[str, Any]:
    return {"id": id, "role": "user", "parts": [{"type": "text", "text": text}]}


def parts_of(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in result["message"]["parts"] if p["type"] == kind]


@pytest.mark.parametrize("sdk", SDKS)
def test_text_arrives_exactly_and_the_response_is_a_v1_ui_message_stream(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp, sdk: str
) -> None:
    url = serve_mount(serve_app, scripted(Text(TEXT), Emit(Usage(4, 9, 13)), Emit(Finish("stop"))))
    result = validate(aisdk_js, node_bin, url, ui_body(user("hi"), model="scripted-1"), sdk=sdk)
    assert result["status"] == 200
    assert result["headers"]["x-vercel-ai-ui-message-stream"] == "v1"
    assert result["headers"]["content-type"].startswith("text/event-stream")
    assert result["errors"] == []
    message = result["message"]
    assert message["role"] == "assistant"
    assert [p["type"] for p in message["parts"]] == ["step-start", "text"]
    assert message["parts"][1]["text"] == TEXT
    assert message["parts"][1]["state"] == "done"
    assert message["metadata"] == {
        "usage": {"inputTokens": 4, "outputTokens": 9, "totalTokens": 13}
    }
    # The scripted text came in many pieces: the SDK saw a real stream of deltas.
    assert sum(c["type"] == "text-delta" for c in result["chunks"]) > 5


@pytest.mark.parametrize("sdk", SDKS)
def test_keep_alive_pings_between_chunks_do_not_disturb_the_sdk(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp, sdk: str
) -> None:
    script = scripted(Text("before "), Pause(0.25), Text("after"), Emit(Finish("stop")))
    url = serve_mount(serve_app, script, ping_interval=0.05)
    result = validate(aisdk_js, node_bin, url, ui_body(user("hi")), sdk=sdk)
    assert result["errors"] == []
    assert [p.get("text") for p in parts_of(result, "text")] == ["before after"]


@pytest.mark.parametrize("sdk", SDKS)
def test_reasoning_then_text_become_two_finished_parts(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp, sdk: str
) -> None:
    script = scripted(Text(REASONING, reasoning=True), Text(TEXT), Emit(Finish("stop")))
    result = validate(
        aisdk_js, node_bin, serve_mount(serve_app, script), ui_body(user("hi")), sdk=sdk
    )
    assert result["errors"] == []
    parts = result["message"]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "reasoning", "text"]
    assert parts[1]["text"] == REASONING
    assert parts[1]["state"] == "done"
    assert parts[2]["text"] == TEXT
    assert parts[2]["state"] == "done"


@pytest.mark.parametrize("sdk", SDKS)
def test_tool_call_fragments_become_a_tool_part_with_parsed_input(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp, sdk: str
) -> None:
    script = scripted(
        Text("Let me check."),
        Emit(ToolCallDelta(0, "call_1", "get_weather", "")),
        Emit(ToolCallDelta(0, None, None, '{"city": "北')),
        Emit(ToolCallDelta(0, None, None, '京", "days": [1, 2]}')),
        Emit(ToolCallDelta(1, "call_2", "get_time", "")),
        Emit(Finish("tool_calls")),
    )
    result = validate(
        aisdk_js, node_bin, serve_mount(serve_app, script), ui_body(user("w?")), sdk=sdk
    )
    assert result["errors"] == []
    parts = result["message"]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "text", "tool-get_weather", "tool-get_time"]
    assert parts[1]["text"] == "Let me check."
    weather, clock = parts[2], parts[3]
    assert weather["toolCallId"] == "call_1"
    assert weather["state"] == "input-available"
    assert weather["input"] == {"city": "北京", "days": [1, 2]}
    assert clock["toolCallId"] == "call_2"
    assert clock["input"] == {}


@pytest.mark.parametrize("sdk", SDKS)
def test_upstream_error_mid_stream_keeps_the_text_and_reports_an_error_chunk(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp, sdk: str
) -> None:
    script = scripted(Text("部分回答 partial"), Fail(UpstreamError("the upstream went away")))
    result = validate(
        aisdk_js, node_bin, serve_mount(serve_app, script), ui_body(user("x")), sdk=sdk
    )
    assert result["status"] == 200
    assert result["errors"] == ["upstream_error: the upstream went away"]
    assert [c["type"] for c in result["chunks"]][-4:] == [
        "text-end",
        "error",
        "finish-step",
        "finish",
    ]
    [text] = parts_of(result, "text")
    assert text == {"type": "text", "text": "部分回答 partial", "state": "done"}


@pytest.mark.parametrize("sdk", SDKS)
def test_errors_before_the_stream_are_http_json_errors(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp, sdk: str
) -> None:
    url = serve_mount(
        serve_app, Scripted(fail_open=RateLimited("slow down", retry_after=2)), models=["a"]
    )
    limited = validate(aisdk_js, node_bin, url, ui_body(user("x")), sdk=sdk)
    assert limited["status"] == 429
    assert limited["httpError"] == {"error": {"code": "rate_limited", "message": "slow down"}}
    unknown = validate(aisdk_js, node_bin, url, ui_body(user("x"), model="gpt-9"), sdk=sdk)
    assert unknown["status"] == 400
    assert unknown["httpError"]["error"]["code"] == "unknown_model"
    malformed = validate(
        aisdk_js, node_bin, url, {"id": "c", "messages": []}, sdk=sdk, flags=("--exact",)
    )
    assert malformed["status"] == 400
    assert malformed["httpError"]["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("sdk", SDKS)
def test_multi_turn_ui_messages_reach_the_provider_and_a_continued_message_keeps_its_id(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp, sdk: str
) -> None:
    provider = scripted(Text("明天也是晴天。"), Emit(Finish("stop")))
    url = serve_mount(serve_app, provider, system_prompt="Be brief.")
    assistant = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": "call the tool", "state": "done"},
            {"type": "text", "text": "Checking.", "state": "done"},
            {
                "type": "tool-get_weather",
                "toolCallId": "call_1",
                "state": "output-available",
                "input": {"city": "北京"},
                "output": {"tempC": 21, "sky": "晴"},
            },
            {"type": "step-start"},
            {"type": "text", "text": "It is 21°C and sunny.", "state": "done"},
        ],
    }
    body = ui_body(
        user("Weather in 北京?"),
        assistant,
        {
            "id": "u2",
            "role": "user",
            "metadata": {"sentAt": 1},
            "parts": [
                {"type": "text", "text": "And tomorrow?"},
                {
                    "type": "file",
                    "mediaType": "application/pdf",
                    "url": "data:application/pdf;base64,AA==",
                },
                {"type": "data-client-state", "data": {"tab": 2}},
            ],
        },
        {"id": "a2", "role": "assistant", "parts": [{"type": "step-start"}]},
        model="scripted-1",
    )
    result = validate(aisdk_js, node_bin, url, body, sdk=sdk)
    assert result["errors"] == []
    assert provider.last_request is not None
    assert provider.last_request.messages == (
        Message("system", "Be brief."),
        Message("user", "Weather in 北京?"),
        Message(
            "assistant",
            "Checking.",
            tool_calls=(ToolCall("call_1", "get_weather", '{"city":"北京"}'),),
        ),
        Message("tool", '{"tempC":21,"sky":"晴"}', tool_call_id="call_1"),
        Message("assistant", "It is 21°C and sunny."),
        Message("user", "And tomorrow?"),
    )
    # The last message was the assistant's: the SDK continues it, as with its own server.
    assert result["chunks"][0] == {"type": "start", "messageId": "a2"}
    assert result["message"]["id"] == "a2"
    assert [p.get("text") for p in parts_of(result, "text")] == ["明天也是晴天。"]


@pytest.mark.parametrize("sdk", SDKS)
def test_use_chat_engine_shows_the_answer_and_keeps_partial_text_on_error(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp, sdk: str
) -> None:
    # The SDK's Chat class (what useChat wraps) sees what a user of the React hook would.
    good = serve_mount(serve_app, scripted(Text(TEXT), Emit(Finish("stop"))))
    result = validate(aisdk_js, node_bin, good, ui_body(user("hi")), sdk=sdk, flags=("--chat",))
    assert (result["chatStatus"], result["chatError"]) == ("ready", None)
    assert [m["role"] for m in result["messages"]] == ["user", "assistant"]
    assert result["messages"][1]["parts"][1]["text"] == TEXT

    failing = serve_mount(serve_app, scripted(Text("一半"), Fail(UpstreamError("gone"))))
    result = validate(aisdk_js, node_bin, failing, ui_body(user("hi")), sdk=sdk, flags=("--chat",))
    assert (result["chatStatus"], result["chatError"]) == ("error", "upstream_error: gone")
    assert result["messages"][1]["parts"][1] == {"type": "text", "text": "一半", "state": "done"}

    refused = serve_mount(serve_app, Scripted(fail_open=RateLimited("slow down")))
    result = validate(aisdk_js, node_bin, refused, ui_body(user("hi")), sdk=sdk, flags=("--chat",))
    assert result["chatStatus"] == "error"
    assert json.loads(result["chatError"])["error"]["code"] == "rate_limited"
    assert len(result["messages"]) == 1


@pytest.mark.parametrize("sdk", SDKS)
def test_client_side_tool_round_trip_continues_the_same_assistant_message(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp, sdk: str
) -> None:
    def answer(request: ChatRequest) -> list[ScriptStep]:
        last = request.messages[-1]
        if last.role == "tool":
            return [Text(f"Result: {last.content}"), Emit(Finish("stop"))]
        call = ToolCallDelta(0, "call_1", "get_weather", '{"city": "北京"}')
        return [Emit(call), Emit(Finish("tool_calls"))]

    provider = Scripted(script=answer)
    url = serve_mount(serve_app, provider)
    result = validate(
        aisdk_js, node_bin, url, ui_body(user("w?")), sdk=sdk, flags=("--chat", "--echo-tools")
    )
    assert (result["chatStatus"], result["chatError"]) == ("ready", None)
    assert result["requests"] == 2
    [question, reply] = result["messages"]
    assert question["id"] == "u1"
    assert [p["type"] for p in reply["parts"]] == [
        "step-start",
        "tool-get_weather",
        "step-start",
        "text",
    ]
    tool = reply["parts"][1]
    assert tool["state"] == "output-available"
    assert tool["input"] == {"city": "北京"}
    assert tool["output"] == {"echo": {"city": "北京"}}
    assert reply["parts"][3]["text"] == 'Result: {"echo":{"city":"北京"}}'
    assert provider.last_request is not None
    assert provider.last_request.messages == (
        Message("user", "w?"),
        Message(
            "assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city":"北京"}'),)
        ),
        Message("tool", '{"echo":{"city":"北京"}}', tool_call_id="call_1"),
    )


def test_the_strict_sdk_rejects_an_unknown_key_so_the_validator_can_fail(
    aisdk_js: Path, node_bin: str, serve_app: ServeApp
) -> None:
    # A hand-made stream that differs from a good one by one key the schema lacks.
    bad = (
        b'data: {"type":"start","messageId":"m"}\n\n'
        b'data: {"type":"text-start","id":"t","extra":1}\n\n'
        b'data: {"type":"text-delta","id":"t","delta":"x"}\n\n'
        b'data: {"type":"text-end","id":"t"}\n\n'
        b'data: {"type":"finish"}\n\ndata: [DONE]\n\n'
    )

    async def endpoint(request: Any) -> Response:
        return Response(bad, media_type="text/event-stream")

    server = serve_app(Starlette(routes=[Route("/bad", endpoint, methods=["POST"])]))
    done = run_validator(
        aisdk_js, node_bin, server.url + "/bad", ui_body(user("x")), sdk="ai-v5-strict"
    )
    assert done.returncode == 1, done.stdout
    assert "rejected the stream" in done.stderr


def test_raw_wire_format_has_data_lines_only_and_ends_with_done(serve_app: ServeApp) -> None:
    script = scripted(Text("a\nb"), Pause(0.2), Emit(Finish("stop")))
    url = serve_mount(serve_app, script, ping_interval=0.05)
    with httpx.stream("POST", url, json=ui_body(user("x")), timeout=10) as response:
        raw = response.read().decode()
    assert response.status_code == 200
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["cache-control"].startswith("no-cache")
    assert raw.endswith("\n\n")
    blocks = [e for e in raw.split("\n\n") if e]
    # The last event is [DONE]; a keep-alive comment may still slip in before the response
    # closes (sse-starlette's ping task races its closing send), which SSE parsers ignore.
    assert [e for e in blocks if not e.startswith(":")][-1] == "data: [DONE]"
    assert any(e.startswith(":") for e in blocks), "the pings this test relies on were not sent"
    events = [e for e in blocks if not e.startswith(":")]
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events


def test_invalid_json_body_is_a_400_with_a_stable_code(serve_app: ServeApp) -> None:
    url = serve_mount(serve_app, scripted())
    response = httpx.post(
        url, content=b"{not json", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid_json", "message": "the request body is not valid JSON"}
    }
