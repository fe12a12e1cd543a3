"""The native event stream over real sockets: the mount under uvicorn, relaying a fake
OpenAI-style upstream that cuts its output at awkward bytes."""

from __future__ import annotations

import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount, OpenAICompatible

from .support.fake_upstream import Drop, End, FakeUpstream, Hang, Respond, Send, openai_stream
from .support.native import Frame, assert_contract, parse_frames, post_chat, text_of

ANSWER = ["Hello", ", 世界", "! 🎉\r\n", "line two\n", "naïve café", " 你好吗？"]
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def make_host(up: FakeUpstream, **kwargs: object) -> Starlette:
    mount = LLMMount(
        provider=OpenAICompatible(base_url=up.url + "/v1", api_key="sk-test"),
        model="m",
        **kwargs,  # type: ignore[arg-type]
    )
    return Starlette(routes=[Mount("/llm", app=mount)])


def chat(serve_app, up: FakeUpstream, body: dict = CHAT, **kwargs: object) -> list[Frame]:  # type: ignore[no-untyped-def]
    server = serve_app(make_host(up, **kwargs))
    response, raw = post_chat(server.url + "/llm/chat", body)
    assert response.status_code == 200, raw
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse_frames(raw)
    assert_contract(frames)
    return frames


@pytest.mark.parametrize("split", [None, 1, 2, 3, 5, 7, 64])
def test_text_is_byte_identical_whatever_the_network_splits(serve_app, fake_upstream, split):
    fake_upstream.push(
        openai_stream(
            ANSWER,
            split=split,
            usage={"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9},
        )
    )
    frames = chat(serve_app, fake_upstream)
    assert text_of(frames) == "".join(ANSWER)
    assert frames[0].data == {"stream_id": frames[0].data["stream_id"], "model": "m"}
    assert [f.event for f in frames][-2:] == ["usage", "done"]
    assert frames[-2].data == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
    assert frames[-1].data == {"finish_reason": "stop"}


@pytest.mark.parametrize("line_ending", ["\r\n", "\r"])
def test_crlf_and_cr_upstreams_split_between_cr_and_lf(serve_app, fake_upstream, line_ending):
    fake_upstream.push(openai_stream(ANSWER, split=1, line_ending=line_ending))
    assert text_of(chat(serve_app, fake_upstream)) == "".join(ANSWER)


def test_request_sent_upstream_asks_for_a_stream_with_usage(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(["ok"]))
    body = {**CHAT, "temperature": 0.5, "max_tokens": 20, "stop": ["\n\n"]}
    chat(serve_app, fake_upstream, body)
    sent = fake_upstream.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["model"] == "m"
    assert sent.json["temperature"] == 0.5 and sent.json["max_tokens"] == 20
    assert sent.json["stop"] == ["\n\n"]


def test_reasoning_then_answer(serve_app, fake_upstream):
    fake_upstream.push(
        openai_stream(
            [{"reasoning_content": "想一想"}, {"reasoning_content": " more"}, "答案", " here"]
        )
    )
    frames = chat(serve_app, fake_upstream)
    assert text_of(frames, "reasoning") == "想一想 more"
    assert text_of(frames) == "答案 here"
    kinds = [f.event for f in frames if f.event in ("reasoning", "delta")]
    assert kinds == ["reasoning", "reasoning", "delta", "delta"]


def test_tool_call_fragments_keep_index_id_and_name_from_the_first(serve_app, fake_upstream):
    fragments = [
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"北京"}'}}]},
    ]
    fake_upstream.push(openai_stream(fragments, finish_reason="tool_calls"))
    frames = chat(serve_app, fake_upstream)
    calls = [f.data for f in frames if f.event == "tool_call"]
    assert calls[0] == {"index": 0, "id": "call_1", "name": "get_weather", "arguments": ""}
    assert all(c["id"] is None and c["name"] is None for c in calls[1:])
    assert "".join(c["arguments"] for c in calls) == '{"city":"北京"}'
    assert frames[-1].data == {"finish_reason": "tool_calls"}


def test_usage_inside_the_choice_as_moonshot_sends_it(serve_app, fake_upstream):
    chunk = {
        "choices": [
            {
                "index": 0,
                "delta": {},
                "finish_reason": "stop",
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
        ]
    }
    fake_upstream.push(openai_stream(["a", chunk], finish_reason=None))
    frames = chat(serve_app, fake_upstream)
    assert [f.data for f in frames if f.event == "usage"] == [
        {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    ]


def test_keep_alive_comments_from_upstream_are_ignored(serve_app, fake_upstream):
    raw = (
        b": keep-alive\n\n"
        b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
        b": keep-alive\n\n"
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    fake_upstream.push([Respond(), Send(raw), End()])
    assert text_of(chat(serve_app, fake_upstream)) == "x"


def test_error_frame_mid_stream_becomes_error_then_done(serve_app, fake_upstream):
    raw = (
        b'data: {"choices":[{"index":0,"delta":{"content":"partial"}}]}\n\n'
        b'data: {"error":{"message":"model overloaded","code":"overloaded"}}\n\n'
    )
    fake_upstream.push([Respond(), Send(raw), Hang()])
    frames = chat(serve_app, fake_upstream)
    assert text_of(frames) == "partial"
    assert frames[-2].event == "error"
    assert frames[-2].data["code"] == "upstream_error"
    assert "model overloaded" in frames[-2].data["message"]
    assert frames[-1].data == {"finish_reason": "error"}
    # The mount stopped reading at the error and closed the upstream (it was left hanging).
    fake_upstream.wait_closed(timeout=2.0)


def test_stream_that_ends_without_done_after_a_finish_reason_is_complete(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(["fine"], done=False))
    frames = chat(serve_app, fake_upstream)
    assert frames[-1].data == {"finish_reason": "stop"}


def test_stream_cut_before_finishing_is_an_incomplete_error(serve_app, fake_upstream):
    raw = b'data: {"choices":[{"index":0,"delta":{"content":"half"}}]}\n\n'
    fake_upstream.push([Respond(), Send(raw), Drop()])
    frames = chat(serve_app, fake_upstream)
    assert text_of(frames) == "half"
    assert frames[-2].event == "error"
    assert frames[-2].data["code"] in ("upstream_incomplete", "upstream_unreachable")
    assert frames[-2].data["retryable"] is True


def test_upstream_kept_open_after_done_does_not_hold_the_stream(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(["a", "b"], ending=Hang()))
    frames = chat(serve_app, fake_upstream)
    assert text_of(frames) == "ab"


def test_get_chat_streams_for_eventsource(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(["hi ", "there"]))
    server = serve_app(make_host(fake_upstream))
    with httpx.Client() as client:
        raw = client.get(
            server.url + "/llm/chat", params={"prompt": "hello", "system": "be brief"}
        ).content
    frames = parse_frames(raw)
    assert_contract(frames)
    assert text_of(frames) == "hi there"
    sent = fake_upstream.requests[0].json["messages"]
    assert sent == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


def test_content_as_a_list_of_text_parts(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(["ok"]))
    body = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ]
    }
    chat(serve_app, fake_upstream, body)
    assert fake_upstream.requests[0].json["messages"] == [{"role": "user", "content": "ab"}]


def test_frames_are_compact_json_with_cjk_kept(serve_app, fake_upstream):
    fake_upstream.push(openai_stream(["你好"]))
    server = serve_app(make_host(fake_upstream))
    _, raw = post_chat(server.url + "/llm/chat", CHAT)
    assert 'data: {"text":"你好"}\n' in raw.decode()
    for line in raw.decode().splitlines():
        if line.startswith("data: "):
            json.loads(line[6:])
