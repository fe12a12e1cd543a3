"""The Gemini provider against a real-socket fake upstream speaking ``streamGenerateContent``."""

from __future__ import annotations

import dataclasses
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
from llm_sse_mount.providers.gemini import Gemini
from llm_sse_mount.providers.registry import provider_from_env
from llm_sse_mount.request import ChatRequest, Message, Tool, ToolCall

from .support.fake_upstream import Drop, FakeUpstream, Hang, Step
from .support.gemini_stream import Call, Thought, gemini_error_body, gemini_stream
from .support.native import assert_contract, parse_frames, post_chat
from .support.servers import ServerThread

pytestmark = pytest.mark.anyio

KEY = "AIzaSy-test-gemini-key-0123456789"
ITEMS: list[Any] = [
    Thought("The user greets me; 想一想."),
    "Hello, 世界",
    " 🙂!\nHow are you?",
    Call("get_weather", {"city": "巴黎", "days": [1, 2]}),
    Call("get_time", {}, id="fc_2"),
]
EXPECTED: list[ProviderEvent] = [
    ReasoningDelta("The user greets me; 想一想."),
    TextDelta("Hello, 世界"),
    TextDelta(" 🙂!\nHow are you?"),
    ToolCallDelta(0, "<made>", "get_weather", '{"city":"巴黎","days":[1,2]}'),
    ToolCallDelta(1, "fc_2", "get_time", "{}"),
    Usage(9, 26, 35),
    Finish("tool_calls"),
]


def chat(**kw: Any) -> ChatRequest:
    fields: dict[str, Any] = {"messages": (Message("user", "hi"),), "model": "gemini-test"}
    return ChatRequest(**{**fields, **kw})


def made_ids_normalized(events: list[ProviderEvent]) -> list[ProviderEvent]:
    out: list[ProviderEvent] = []
    for e in events:
        if isinstance(e, ToolCallDelta) and e.id and e.id.startswith("call_"):
            e = dataclasses.replace(e, id="<made>")
        out.append(e)
    return out


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
    stream = await Gemini(KEY, base_url=up.url).open(request or chat(), http)
    try:
        return made_ids_normalized([event async for event in stream.events()])
    finally:
        await stream.aclose()


async def test_thoughts_text_function_calls_and_usage_become_provider_events(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    assert await collect(fake_upstream, http, gemini_stream(ITEMS)) == EXPECTED


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, 64, 333])
async def test_byte_splits_anywhere_give_identical_events(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient, split: int
) -> None:
    assert await collect(fake_upstream, http, gemini_stream(ITEMS, split=split)) == EXPECTED


async def test_cuts_inside_multibyte_characters_give_identical_events(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    raw = b"".join(s.data for s in gemini_stream(ITEMS) if hasattr(s, "data"))
    inside = []
    for char in ("世", "🙂", "想", "巴"):
        at = raw.index(char.encode())
        inside += [at + 1, at + 2]
    assert await collect(fake_upstream, http, gemini_stream(ITEMS, split=inside)) == EXPECTED


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("OTHER", "stop"),
        ("SOMETHING_NEW", "stop"),
    ],
)
async def test_finish_reasons_are_mapped(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient, reason: str, finish: str
) -> None:
    events = await collect(fake_upstream, http, gemini_stream(["x"], finish_reason=reason))
    assert events[-1] == Finish(finish)  # type: ignore[arg-type]


async def test_a_blocked_prompt_is_a_content_filter_finish(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    events = await collect(fake_upstream, http, gemini_stream([], block_reason="SAFETY"))
    assert events == [Usage(9, 0, 9), Finish("content_filter")]


async def test_a_malformed_function_call_is_a_bad_response(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    with pytest.raises(UpstreamError) as info:
        await collect(
            fake_upstream, http, gemini_stream(["x"], finish_reason="MALFORMED_FUNCTION_CALL")
        )
    assert info.value.code == "upstream_bad_response"


async def test_an_error_mid_stream_is_mapped_by_its_google_status(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    error = {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    fake_upstream.push(gemini_stream(["Hel", "lo"], error=error, split=4))
    stream = await Gemini(KEY, base_url=fake_upstream.url).open(chat(), http)
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


@pytest.mark.parametrize("ending", [Drop(), Drop(reset=True)])
async def test_a_body_cut_before_the_finish_is_an_error(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient, ending: Step
) -> None:
    script = gemini_stream(["Hel", "lo"], finish_reason=None, ending=ending)
    with pytest.raises(UpstreamError) as info:
        await collect(fake_upstream, http, script)
    assert info.value.code in ("upstream_incomplete", "upstream_unreachable")


@pytest.mark.parametrize(
    ("body", "status", "code", "retry_after"),
    [
        (
            gemini_error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "36s"),
            429,
            "upstream_rate_limited",
            36.0,
        ),
        (gemini_error_body(503, "UNAVAILABLE", "overloaded"), 503, "upstream_overloaded", None),
        (gemini_error_body(400, "INVALID_ARGUMENT", "bad schema"), 400, "upstream_rejected", None),
        (gemini_error_body(400, "FAILED_PRECONDITION", "region"), 400, "upstream_rejected", None),
        (gemini_error_body(403, "PERMISSION_DENIED", "key"), 502, "upstream_auth", None),
        (gemini_error_body(404, "NOT_FOUND", "model"), 502, "upstream_not_found", None),
        (gemini_error_body(504, "DEADLINE_EXCEEDED", "slow"), 504, "upstream_timeout", None),
        (gemini_error_body(500, "INTERNAL", "oops"), 502, "upstream_error", None),
        # The HTTP code says 500, the status says overloaded: the status is the precise one.
        (
            dataclasses.replace(gemini_error_body(503, "UNAVAILABLE"), status=500),
            503,
            "upstream_overloaded",
            None,
        ),
    ],
)
async def test_google_error_bodies_before_the_stream(
    fake_upstream: FakeUpstream,
    http: httpx.AsyncClient,
    body: Step,
    status: int,
    code: str,
    retry_after: float | None,
) -> None:
    with pytest.raises(UpstreamError) as info:
        await collect(fake_upstream, http, [body])
    assert (info.value.status, info.value.code, info.value.retry_after) == (
        status,
        code,
        retry_after,
    )


async def test_request_goes_to_stream_generate_content_with_the_key_in_a_header(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    request = chat(
        messages=(
            Message("system", "Be brief."),
            Message("user", "Weather in Paris?"),
            Message(
                "assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Paris"}'),)
            ),
            Message("tool", '{"tempC": 21}', tool_call_id="call_1"),
            Message("tool", "sunny", tool_call_id="call_1"),
        ),
        model="gemini-2.5-flash",
        temperature=0.2,
        top_p=0.9,
        max_tokens=100,
        stop=("END",),
        tools=(
            Tool(
                "get_weather",
                "Weather for a city",
                {"type": "object", "additionalProperties": False},
            ),
        ),
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    await collect(fake_upstream, http, gemini_stream(["ok"]), request)
    sent = fake_upstream.requests[0]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert sent.headers["x-goog-api-key"] == KEY
    assert KEY not in sent.path
    assert sent.json == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "skip_thought_signature_validator",
                    }
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"tempC": 21}}},
                    {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parametersJsonSchema": {"type": "object", "additionalProperties": False},
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 100,
            "stopSequences": ["END"],
            "thinkingConfig": {"includeThoughts": True},
        },
    }


def test_a_model_name_cannot_escape_its_path_segment() -> None:
    url = Gemini(KEY).url("../../v1/files?x=1")
    assert url == (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        "..%2F..%2Fv1%2Ffiles%3Fx%3D1:streamGenerateContent?alt=sse"
    )
    assert (
        Gemini(KEY)
        .url("models/gemini-2.5-pro")
        .endswith("/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    )


def test_a_tool_result_for_an_unknown_call_is_a_request_error() -> None:
    with pytest.raises(RequestError):
        Gemini(KEY).build_body(chat(messages=(Message("tool", "x", tool_call_id="nope"),)))


def test_from_env_builds_the_gemini_provider() -> None:
    provider = provider_from_env({"LLM_SSE_PROVIDER": "gemini", "GEMINI_API_KEY": KEY})
    assert isinstance(provider, Gemini)
    assert provider.base_url == "https://generativelanguage.googleapis.com"
    assert provider.secrets() == (KEY,)
    assert KEY not in repr(provider)


# --- through the mount -------------------------------------------------------------------------

ServeApp = Callable[..., ServerThread]


def serve(serve_app: ServeApp, up: FakeUpstream, **options: Any) -> str:
    mount = LLMMount(
        provider=Gemini(KEY, base_url=up.url), model="gemini-test", retries=0, **options
    )
    return serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"


def test_gemini_through_the_openai_endpoint(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.push(gemini_stream([Thought("hmm"), "Hello, ", "世界"], split=5))
    client = openai.OpenAI(
        base_url=serve(serve_app, fake_upstream) + "/v1", api_key="x", max_retries=0
    )
    chunks = list(
        client.chat.completions.create(
            model="gemini-test",
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
    assert reasoning == "hmm"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 35


def test_rate_limit_reaches_the_client_as_a_429_with_retry_after(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.default = [
        gemini_error_body(429, "RESOURCE_EXHAUSTED", f"quota for {KEY}", "12s")
    ]
    r = httpx.post(
        serve(serve_app, fake_upstream) + "/chat",
        json={"messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 429
    assert r.headers["retry-after"] == "12"
    assert r.json()["error"]["code"] == "upstream_rate_limited"
    assert KEY not in r.text


def test_a_stall_mid_stream_ends_with_a_timeout_error_frame(
    fake_upstream: FakeUpstream, serve_app: ServeApp
) -> None:
    fake_upstream.push(gemini_stream(["Hel"], finish_reason=None, ending=Hang()))
    url = serve(serve_app, fake_upstream, idle_timeout=0.5)
    started = time.monotonic()
    _, raw = post_chat(url + "/chat", {"messages": [{"role": "user", "content": "x"}]})
    frames = parse_frames(raw)
    assert_contract(frames)
    # No usage from the upstream: the mount's estimate, marked, comes before the error.
    assert [f.event for f in frames] == ["start", "delta", "usage", "error", "done"]
    assert frames[2].data["estimated"] is True
    assert frames[3].data["code"] == "upstream_timeout"
    assert time.monotonic() - started < 5
    fake_upstream.wait_closed(timeout=1.0)  # raises if the upstream stayed open
