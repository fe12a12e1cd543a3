"""Zhipu GLM over a real socket: its stream differences and its two auth modes."""

from __future__ import annotations

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import ConfigError, LLMMount, Zhipu

from .support.fake_upstream import Body, Hang, Respond, Send, zhipu_stream
from .support.native import assert_contract, parse_frames, post_chat, text_of

KEY = "myid.mysecret0123456789"
CHAT = {"messages": [{"role": "user", "content": "你好"}]}
USAGE = {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def serve(serve_app, up, auth="jwt"):  # type: ignore[no-untyped-def]
    provider = Zhipu(api_key=KEY, auth=auth, base_url=up.url + "/api/paas/v4")
    return serve_app(Starlette(routes=[Mount("/llm", app=LLMMount(provider=provider, retries=0))]))


@pytest.mark.parametrize("split", [None, 1, 4])
def test_glm_stream_with_repeated_finish_and_usage_on_a_choice_chunk(
    serve_app, fake_upstream, split
):
    fake_upstream.push(zhipu_stream(["你", "好！", "\n欢迎"], usage=USAGE, split=split))
    server = serve(serve_app, fake_upstream)
    _, raw = post_chat(server.url + "/llm/chat", CHAT)
    frames = parse_frames(raw)
    assert_contract(frames)
    assert text_of(frames) == "你好！\n欢迎"
    assert [f.data for f in frames if f.event == "usage"][-1] == USAGE
    assert frames[-1].data == {"finish_reason": "stop"}
    assert frames[0].data["model"] == "glm-4-flash"
    sent = fake_upstream.requests[0]
    assert sent.path == "/api/paas/v4/chat/completions"
    assert "stream_options" not in sent.json  # GLM does not know it


# Zhipu secrets are shorter than pyjwt's recommended HMAC key length; decoding one here warns.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_jwt_mode_signs_a_token_zhipu_accepts(serve_app, fake_upstream):
    fake_upstream.push(zhipu_stream(["ok"]))
    server = serve(serve_app, fake_upstream)
    post_chat(server.url + "/llm/chat", CHAT)
    scheme, token = fake_upstream.requests[0].headers["authorization"].split(" ", 1)
    assert scheme == "Bearer"
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["sign_type"] == "SIGN"
    claims = jwt.decode(
        token, "mysecret0123456789", algorithms=["HS256"], options={"verify_exp": False}
    )
    assert claims["api_key"] == "myid"
    assert claims["exp"] > claims["timestamp"] > 10**12  # milliseconds


def test_key_mode_sends_the_key_itself(serve_app, fake_upstream):
    fake_upstream.push(zhipu_stream(["ok"]))
    server = serve(serve_app, fake_upstream, auth="key")
    post_chat(server.url + "/llm/chat", CHAT)
    assert fake_upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_sensitive_finish_reason_is_content_filter(serve_app, fake_upstream):
    fake_upstream.push(zhipu_stream(["部分"], finish_reason="sensitive"))
    server = serve(serve_app, fake_upstream)
    _, raw = post_chat(server.url + "/llm/chat", CHAT)
    assert parse_frames(raw)[-1].data == {"finish_reason": "content_filter"}


def test_network_error_finish_reason_is_an_error_frame(serve_app, fake_upstream):
    fake_upstream.push(zhipu_stream(["部分"], finish_reason="network_error"))
    server = serve(serve_app, fake_upstream)
    _, raw = post_chat(server.url + "/llm/chat", CHAT)
    frames = parse_frames(raw)
    assert_contract(frames)
    assert frames[-2].event == "error"
    assert frames[-2].data["code"] == "upstream_network_error"
    assert frames[-1].data == {"finish_reason": "error"}


def test_error_body_with_a_zhipu_code(serve_app, fake_upstream):
    body = '{"error":{"code":"1113","message":"您的账户已欠费"}}'.encode()
    fake_upstream.push([Body(429, body, {"content-type": "application/json; charset=UTF-8"})])
    server = serve(serve_app, fake_upstream)
    response = httpx.post(server.url + "/llm/chat", json=CHAT)
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "upstream_rate_limited"
    assert "1113" in error["message"] and "欠费" in error["message"]


def test_error_frame_mid_stream(serve_app, fake_upstream):
    raw = (
        'data: {"id":"1","choices":[{"index":0,"delta":{"content":"半"}}]}\n\n'
        'data: {"error":{"code":"1301","message":"系统检测到输入或生成内容可能包含不安全"}}\n\n'
    ).encode()
    fake_upstream.push([Respond(), Send(raw), Hang()])
    server = serve(serve_app, fake_upstream)
    frames = parse_frames(post_chat(server.url + "/llm/chat", CHAT)[1])
    assert frames[-2].event == "error" and "1301" in frames[-2].data["message"]


@pytest.mark.parametrize("key", ["nodot", ".secret", "id.", ""])
def test_malformed_key_fails_at_construction_without_echoing_it(key):
    with pytest.raises(ConfigError) as info:
        Zhipu(api_key=key)
    if key:
        assert key not in str(info.value)
