"""Images and structured output, through a real mount to a fake upstream: each upstream gets
them in its own form, and what one cannot honour is a 400 before any upstream call."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pydantic
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount, Zhipu
from llm_sse_mount.providers.anthropic import Anthropic
from llm_sse_mount.providers.gemini import Gemini
from llm_sse_mount.providers.openai import OpenAICompatible
from llm_sse_mount.providers.openai_responses import OpenAIResponses
from llm_sse_mount.providers.scripted import Scripted
from llm_sse_mount.settings import env_overrides

from .support.anthropic_stream import TextBlock, Thinking, anthropic_stream
from .support.anthropic_stream import Tool as ToolBlock
from .support.fake_upstream import Body, FakeUpstream, openai_stream
from .support.gemini_stream import gemini_stream
from .support.responses_stream import Text as ResponsesText
from .support.responses_stream import responses_stream
from .support.servers import ServerThread

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
PNG_B64 = base64.b64encode(PNG_BYTES).decode()
PNG = f"data:image/png;base64,{PNG_B64}"
HTTPS_IMAGE = "https://images.example/cat.jpg"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}


def image_message(*urls: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "what is it?"}]
    parts += [{"type": "image_url", "image_url": {"url": u, "detail": "high"}} for u in urls]
    return {"role": "user", "content": parts}


def start(serve_app: Callable[..., ServerThread], provider: Any, **kw: Any) -> str:
    mount = LLMMount(provider=provider, model=kw.pop("model", "m"), retries=0, **kw)
    return serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


# --- OpenAI-compatible: as is -----------------------------------------------------------------


def test_openai_compatible_upstream_gets_images_and_schema_as_sent(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(openai_stream(['{"city": "Oslo", ', '"days": 3}']))
    url = start(serve_app, OpenAICompatible(fake_upstream.url))

    class Trip(pydantic.BaseModel):
        city: str
        days: int

    completion = sdk(url).chat.completions.parse(
        model="m", messages=[image_message(PNG, HTTPS_IMAGE)], response_format=Trip
    )
    assert completion.choices[0].message.parsed == Trip(city="Oslo", days=3)
    sent = fake_upstream.requests[0].json
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": HTTPS_IMAGE, "detail": "high"}},
    ]
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Trip"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["required"] == ["city", "days"]


def test_native_chat_takes_response_format_and_reasoning_effort(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(openai_stream(["{}"]))
    url = start(serve_app, OpenAICompatible(fake_upstream.url))
    r = httpx.post(
        url + "/chat",
        json={
            "messages": [image_message(HTTPS_IMAGE)],
            "response_format": {"type": "json_object"},
            "reasoning_effort": "low",
        },
    )
    assert r.status_code == 200
    assert "event: done" in r.text
    sent = fake_upstream.requests[0].json
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["reasoning_effort"] == "low"
    assert sent["messages"][0]["content"][1]["image_url"]["url"] == HTTPS_IMAGE


def test_text_only_part_lists_still_go_up_as_plain_strings(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(openai_stream(["ok"]))
    url = start(serve_app, OpenAICompatible(fake_upstream.url))
    sdk(url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    )
    assert fake_upstream.requests[0].json["messages"][0]["content"] == "hi"


@pytest.mark.parametrize(
    ("kwargs", "images", "code"),
    [
        ({"max_images": 1}, [HTTPS_IMAGE, HTTPS_IMAGE], "too_many_images"),
        ({"max_image_bytes": 100}, [PNG], "image_too_large"),
    ],
)
def test_image_bounds_are_400s_before_any_upstream_call(
    fake_upstream: FakeUpstream,
    serve_app: Callable[..., ServerThread],
    kwargs: dict[str, int],
    images: list[str],
    code: str,
) -> None:
    url = start(serve_app, OpenAICompatible(fake_upstream.url), **kwargs)
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(url).chat.completions.create(model="m", messages=[image_message(*images)])
    assert exc.value.code == code
    assert fake_upstream.requests == []


# --- Zhipu: JSON mode; images for vision models only --------------------------------------------


def zhipu(up: FakeUpstream) -> Zhipu:
    return Zhipu(api_key="id.secret", base_url=up.url + "/api/paas/v4")


def test_zhipu_json_mode(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(openai_stream(['{"a": 1}']))
    url = start(serve_app, zhipu(fake_upstream), model="glm-4-flash")
    completion = sdk(url).chat.completions.create(
        model="glm-4-flash",
        messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_object"},
        reasoning_effort="high",
    )
    assert json.loads(completion.choices[0].message.content or "") == {"a": 1}
    sent = fake_upstream.requests[0].json
    assert sent["response_format"] == {"type": "json_object"}
    assert "reasoning_effort" not in sent  # GLM has no such knob


def test_zhipu_refuses_a_json_schema_and_images_on_a_text_model(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    url = start(serve_app, zhipu(fake_upstream), model="glm-4-flash")
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(url).chat.completions.create(
            model="glm-4-flash",
            messages=[{"role": "user", "content": "x"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "T", "schema": SCHEMA},
            },
        )
    assert exc.value.code == "unsupported_parameter"
    assert "zhipu" in str(exc.value.message)
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(url).chat.completions.create(model="glm-4-flash", messages=[image_message(PNG)])
    assert exc.value.code == "unsupported_content"
    assert "glm-4-flash" in str(exc.value.message)
    assert fake_upstream.requests == []


def test_zhipu_vision_model_gets_bare_base64_and_urls(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(openai_stream(["a cat"]))
    url = start(serve_app, zhipu(fake_upstream), model="glm-4v-flash")
    sdk(url).chat.completions.create(
        model="glm-4v-flash", messages=[image_message(PNG, HTTPS_IMAGE)]
    )
    parts = fake_upstream.requests[0].json["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": PNG_B64}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": HTTPS_IMAGE}}


# --- Anthropic: image blocks, structured outputs or a forced tool, thinking ---------------------


def anthropic(up: FakeUpstream, **kw: Any) -> Anthropic:
    return Anthropic("sk-ant-test", base_url=up.url, default_model="claude-test", **kw)


def test_anthropic_gets_image_blocks_and_output_config(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(anthropic_stream([TextBlock('{"city": "Oslo",', ' "days": 3}')]))
    url = start(serve_app, anthropic(fake_upstream), model="claude-test")
    completion = sdk(url).chat.completions.create(
        model="claude-test",
        messages=[image_message(PNG, HTTPS_IMAGE)],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "Trip", "schema": SCHEMA, "strict": True},
        },
    )
    assert json.loads(completion.choices[0].message.content or "") == {"city": "Oslo", "days": 3}
    sent = fake_upstream.requests[0].json
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "what is it?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": HTTPS_IMAGE}},
    ]
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "tools" not in sent


def test_anthropic_json_object_is_a_forced_tool_whose_input_is_the_answer(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(
        anthropic_stream(
            [ToolBlock("toolu_1", "json_answer", '{"a": ', "1}")], stop_reason="tool_use"
        )
    )
    url = start(serve_app, anthropic(fake_upstream), model="claude-test")
    completion = sdk(url).chat.completions.create(
        model="claude-test",
        messages=[{"role": "user", "content": "json"}],
        response_format={"type": "json_object"},
    )
    choice = completion.choices[0]
    assert choice.message.content == '{"a": 1}'
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    sent = fake_upstream.requests[0].json
    assert sent["tools"][0]["name"] == "json_answer"
    assert sent["tools"][0]["input_schema"] == {"type": "object"}
    assert sent["tool_choice"] == {"type": "tool", "name": "json_answer"}


def test_anthropic_tool_mode_sends_the_schema_as_the_tool_input_schema(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(
        anthropic_stream(
            [ToolBlock("toolu_1", "Trip", '{"city":"Rome","days":2}')], stop_reason="tool_use"
        )
    )
    url = start(serve_app, anthropic(fake_upstream, structured_output="tool"), model="claude-test")
    r = httpx.post(
        url + "/chat",
        json={
            "messages": [{"role": "user", "content": "plan"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "Trip", "schema": SCHEMA},
            },
        },
    )
    assert '"text":"{\\"city\\":\\"Rome\\",\\"days\\":2}"' in r.text
    assert '"finish_reason":"stop"' in r.text
    sent = fake_upstream.requests[0].json
    assert sent["tools"] == [
        {"name": "Trip", "description": "Give the answer as this JSON.", "input_schema": SCHEMA}
    ]


def test_anthropic_thinking_budget_from_the_request(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(anthropic_stream([Thinking("hmm"), TextBlock("ok")]))
    url = start(serve_app, anthropic(fake_upstream), model="claude-test")
    sdk(url).chat.completions.create(
        model="claude-test", messages=[{"role": "user", "content": "x"}], reasoning_effort="medium"
    )
    sent = fake_upstream.requests[0].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert sent["max_tokens"] > 4096


def test_anthropic_refusals_before_the_upstream(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    url = start(serve_app, anthropic(fake_upstream), model="claude-test")
    bmp = "data:image/bmp;base64," + PNG_B64
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(url).chat.completions.create(model="claude-test", messages=[image_message(bmp)])
    assert exc.value.code == "unsupported_content"
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(url).chat.completions.create(
            model="claude-test",
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_object"},
            tools=[{"type": "function", "function": {"name": "f"}}],
        )
    assert exc.value.code == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(url).chat.completions.create(
            model="claude-test",
            messages=[{"role": "user", "content": "x"}],
            reasoning_effort="high",
            max_tokens=1000,
        )
    assert exc.value.code == "invalid_parameter"
    assert fake_upstream.requests == []


def test_a_provider_without_capabilities_refuses_images(
    serve_app: Callable[..., ServerThread],
) -> None:
    url = start(serve_app, None, model="scripted")  # the embedded provider declares none
    r = httpx.post(url + "/chat", json={"messages": [image_message(HTTPS_IMAGE)]})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unsupported_content"


def test_a_fallback_that_cannot_take_the_image_is_skipped_not_used(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    overloaded = Body(503, b'{"error": {"message": "busy"}}', {"content-type": "application/json"})
    fake_upstream.default = [overloaded]
    mount = LLMMount(
        provider=OpenAICompatible(fake_upstream.url),
        fallbacks=[Scripted()],  # answers anything, but takes no images
        model="m",
        retries=0,
    )
    url = serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"
    with pytest.raises(openai.InternalServerError):
        sdk(url).chat.completions.create(model="m", messages=[image_message(HTTPS_IMAGE)])
    # Plain text may fall back.
    completion = sdk(url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content


def test_image_limits_from_the_environment() -> None:
    overrides = env_overrides({"LLM_SSE_MAX_IMAGES": "2", "LLM_SSE_MAX_IMAGE_BYTES": "1000"})
    assert overrides == {"max_images": 2, "max_image_bytes": 1000}
    mount = LLMMount(**overrides)
    assert (mount.settings.requests.max_images, mount.settings.requests.max_image_bytes) == (
        2,
        1000,
    )


def test_ai_sdk_image_file_parts_reach_the_upstream_as_images(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(openai_stream(["a cat"]))
    url = start(serve_app, OpenAICompatible(fake_upstream.url))
    ui_message = {
        "id": "u1",
        "role": "user",
        "parts": [
            {"type": "text", "text": "what is it?"},
            {"type": "file", "mediaType": "image/png", "url": PNG, "filename": "cat.png"},
            {"type": "file", "mediaType": "text/plain", "url": "data:,notes"},  # not an image
        ],
    }
    r = httpx.post(
        url + "/ai-sdk/chat",
        json={"id": "c", "messages": [ui_message], "trigger": "submit-message"},
    )
    assert r.status_code == 200
    assert '"type":"finish"' in r.text
    assert fake_upstream.requests[0].json["messages"][0]["content"] == [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]


# --- Gemini and an OpenAI Responses upstream -------------------------------------------------


def test_gemini_gets_inline_images_and_a_json_schema(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(gemini_stream(['{"city": "Oslo", "days": 3}']))
    url = start(serve_app, Gemini("g-key", base_url=fake_upstream.url), model="gemini-test")
    completion = sdk(url).chat.completions.create(
        model="gemini-test",
        messages=[image_message(PNG)],
        response_format={"type": "json_schema", "json_schema": {"name": "T", "schema": SCHEMA}},
    )
    assert json.loads(completion.choices[0].message.content or "") == {"city": "Oslo", "days": 3}
    sent = fake_upstream.requests[0].json
    assert sent["contents"][0]["parts"] == [
        {"text": "what is it?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
    ]
    config = sent["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == SCHEMA
    # Gemini fetches no arbitrary URL: refused before any upstream call.
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(url).chat.completions.create(model="gemini-test", messages=[image_message(HTTPS_IMAGE)])
    assert exc.value.code == "unsupported_content"
    assert len(fake_upstream.requests) == 1


def test_a_responses_upstream_gets_input_images_text_format_and_effort(
    fake_upstream: FakeUpstream, serve_app: Callable[..., ServerThread]
) -> None:
    fake_upstream.push(responses_stream([ResponsesText('{"a": 1}')]))
    provider = OpenAIResponses("sk-test", base_url=fake_upstream.url)
    url = start(serve_app, provider, model="gpt-test")
    completion = sdk(url).chat.completions.create(
        model="gpt-test",
        messages=[image_message(HTTPS_IMAGE)],
        response_format={"type": "json_schema", "json_schema": {"name": "T", "schema": SCHEMA}},
        reasoning_effort="low",
    )
    assert completion.choices[0].message.content == '{"a": 1}'
    sent = fake_upstream.requests[0].json
    assert sent["input"][0]["content"] == [
        {"type": "input_text", "text": "what is it?"},
        {"type": "input_image", "image_url": HTTPS_IMAGE, "detail": "high"},
    ]
    assert sent["text"] == {"format": {"type": "json_schema", "name": "T", "schema": SCHEMA}}
    assert sent["reasoning"]["effort"] == "low"
