"""The mount works wherever a host mounts it: Starlette, FastAPI, nested mounts, root_path."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from llm_sse_mount import LLMMount, Scripted

from .support.native import assert_contract, parse_frames, post_chat, text_of

ANSWER = "Mounted 答案\nline 2"


def mount() -> LLMMount:
    return LLMMount(provider=Scripted(answer=ANSWER, reasoning="", pace=0))


def check(base: str) -> None:
    response, raw = post_chat(base + "/chat", {"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    frames = parse_frames(raw)
    assert_contract(frames)
    assert text_of(frames) == ANSWER
    assert httpx.get(base + "/models").json() == {"default": "scripted-1", "models": ["scripted-1"]}
    assert httpx.get(base + "/health").json()["status"] == "ok"


def test_starlette_host(serve_app):
    llm = mount()
    host = Starlette(
        routes=[Route("/", lambda r: PlainTextResponse("home")), Mount("/llm", app=llm)],
        lifespan=llm.lifespan,
    )
    server = serve_app(host)
    assert httpx.get(server.url + "/").text == "home"
    check(server.url + "/llm")


def test_fastapi_host(serve_app):
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app.mount("/llm", mount())
    server = serve_app(app)
    assert httpx.get(server.url + "/ping").json() == {"pong": "yes"}
    check(server.url + "/llm")


def test_nested_mount(serve_app):
    inner = Starlette(routes=[Mount("/v2/llm", app=mount())])
    host = Starlette(routes=[Mount("/api", app=inner)])
    server = serve_app(host)
    check(server.url + "/api/v2/llm")


def test_behind_a_root_path(serve_app):
    # A proxy strips /prefix before forwarding, and uvicorn is told so with --root-path: the
    # request arrives as /llm/chat while scope["root_path"] says /prefix.
    host = Starlette(routes=[Mount("/llm", app=mount())])
    server = serve_app(host, root_path="/prefix")
    check(server.url + "/llm")


def test_served_directly_as_the_app(serve_app):
    server = serve_app(mount())  # uvicorn sends it lifespan events itself
    check(server.url)


@pytest.mark.parametrize("path", ["/chat", "/models", "/health"])
def test_wrong_methods_get_405(serve_app, path):
    server = serve_app(mount())
    assert httpx.delete(server.url + path, timeout=5).status_code == 405


def test_head_on_the_stream_answers_headers_without_calling_the_upstream(serve_app):
    provider = Scripted(answer=ANSWER, reasoning="", pace=0)
    server = serve_app(LLMMount(provider=provider))
    response = httpx.head(server.url + "/chat", params={"prompt": "x"}, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert provider.opened == 0
