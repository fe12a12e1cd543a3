"""Failures before the first frame are plain HTTP errors with a JSON body and a stable code;
the server keeps serving other streams."""

from __future__ import annotations

import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount, OpenAICompatible

from .support.fake_upstream import Body, openai_stream
from .support.native import parse_frames, post_chat, text_of

CHAT = {"messages": [{"role": "user", "content": "hi"}]}

#: Bodies are declared JSON (anything else is a 415, tested in test_edge_hardening.py).
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def server(serve_app, fake_upstream):
    mount = LLMMount(
        provider=OpenAICompatible(base_url=fake_upstream.url + "/v1", api_key="sk-secret-key"),
        model="m",
        models=["m", "m2"],
        max_body_bytes=2048,
        retries=0,
    )
    return serve_app(Starlette(routes=[Mount("/llm", app=mount)]))


def error_of(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_request"),
        (b'{"messages": []}', 400, "invalid_request"),
        (b'{"messages": [{"role": "user", "content": "x"}], "nope": 1}', 400, "unknown_field"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', 400, "invalid_role"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "model": "gpt-9"}',
            400,
            "unknown_model",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "temperature": 9}',
            400,
            "invalid_parameter",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "temperature": true}',
            400,
            "invalid_parameter",
        ),
        (
            b'{"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}',
            400,
            "unsupported_content",
        ),
        (
            b'{"messages": [{"role": "user", "content": "' + b"x" * 4000 + b'"}]}',
            413,
            "body_too_large",
        ),
        (b"\xff\xfe\x00", 400, "invalid_json"),
    ],
)
def test_bad_requests_get_a_json_error_with_a_stable_code(
    server, fake_upstream, content, status, code
):
    response = httpx.post(server.url + "/llm/chat", content=content, headers=JSON)
    assert response.status_code == status
    assert error_of(response)["code"] == code
    assert fake_upstream.requests == []  # nothing was sent upstream


def test_a_body_that_lies_about_its_length_is_cut_at_the_limit(server):
    def body():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}]}'

    response = httpx.post(
        server.url + "/llm/chat", content=body(), headers=JSON
    )  # chunked, no length
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("upstream", "status", "code"),
    [
        (
            Body(
                429,
                b'{"error": {"message": "slow down", "code": "rate_limit"}}',
                {"Retry-After": "7", "content-type": "application/json"},
            ),
            429,
            "upstream_rate_limited",
        ),
        (
            Body(500, b"<html><body>Internal</body></html>", {"content-type": "text/html"}),
            502,
            "upstream_error",
        ),
        (Body(502, b"", {}), 502, "upstream_error"),
        (Body(503, b"", {}), 503, "upstream_overloaded"),
        (Body(504, b"", {}), 504, "upstream_timeout"),
        (
            Body(
                401,
                b'{"error": {"message": "Incorrect API key provided: sk-secret-key"}}',
                {"content-type": "application/json"},
            ),
            502,
            "upstream_auth",
        ),
        (
            Body(
                400,
                b'{"error": {"message": "context too long"}}',
                {"content-type": "application/json"},
            ),
            400,
            "upstream_rejected",
        ),
        (Body(404, b"not found", {"content-type": "text/plain"}), 502, "upstream_not_found"),
        (
            Body(200, b'{"id": "x", "choices": []}', {"content-type": "application/json"}),
            502,
            "upstream_bad_response",
        ),
        (
            Body(200, b"<html>captive portal</html>", {"content-type": "text/html"}),
            502,
            "upstream_bad_response",
        ),
    ],
)
def test_upstream_refusals_are_read_before_committing_to_200(
    server, fake_upstream, upstream, status, code
):
    fake_upstream.push([upstream])
    response = httpx.post(server.url + "/llm/chat", json=CHAT)
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    assert "sk-secret-key" not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "7"
    # ...and the server still serves a normal stream right after.
    fake_upstream.push(openai_stream(["still ", "fine"]))
    ok, raw = post_chat(server.url + "/llm/chat", CHAT)
    assert ok.status_code == 200
    assert text_of(parse_frames(raw)) == "still fine"


def test_unreachable_upstream_is_502(serve_app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    mount = LLMMount(
        provider=OpenAICompatible(base_url=f"http://127.0.0.1:{port}/v1", api_key="k"),
        model="m",
        retries=0,
    )
    server = serve_app(mount)
    response = httpx.post(server.url + "/chat", json=CHAT)
    assert response.status_code == 502
    assert error_of(response)["code"] == "upstream_unreachable"


def test_unknown_route_and_method(server):
    assert httpx.get(server.url + "/llm/nope").status_code == 404
    assert httpx.put(server.url + "/llm/chat", json=CHAT).status_code == 405


def test_get_chat_without_prompt(server):
    response = httpx.get(server.url + "/llm/chat")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"
