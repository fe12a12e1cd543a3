"""The edge findings of issue #14, over real sockets: slow bodies, cross-site simple requests,
the Origin check, deep nesting, tools in ``max_chars`` and the token estimate, the budget of a
request refused for concurrency, and ``GET /v1/models`` behind ``authorize``."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from llm_sse_mount import LLMMount, OpenAICompatible, Scripted
from llm_sse_mount.core.access import BearerTokens, Principal
from llm_sse_mount.core.limits import Limits, MemoryLimitStore, RedisLimitStore
from llm_sse_mount.errors import ConfigError
from llm_sse_mount.providers.scripted import Hang, Text

from .support.access_apps import CHAT, host_app, quick_mount
from .support.fake_upstream import FakeUpstream, openai_stream
from .support.servers import ServerThread

Serve = Callable[..., ServerThread]

#: The smallest valid AI SDK (UI message) chat body.
AI_SDK_CHAT = {
    "id": "c1",
    "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
}


def _raw_request(port: int, head: bytes, body: bytes, wait: float) -> tuple[bytes, bool, float]:
    """Send ``head`` + ``body`` and then nothing; return (what came back, whether the server
    closed the connection, seconds until it answered)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    began = time.monotonic()
    try:
        sock.sendall(head + body)
        received = b""
        closed = False
        took = wait
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                if not received:
                    took = time.monotonic() - began
                received += chunk
        except TimeoutError:
            pass
        return received, closed, took
    finally:
        sock.close()


# --- 1. slow bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/llm/chat", "/llm/v1/chat/completions", "/llm/ai-sdk/chat"])
def test_a_body_that_never_finishes_is_a_408_and_the_connection_closes(
    serve_app: Serve, path: str
) -> None:
    server = serve_app(host_app(quick_mount(body_timeout=0.5)))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    received, closed, took = _raw_request(server.port, head, b'{"messages": [', wait=5.0)
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b'"body_timeout"' in received
    assert closed, "the connection stayed open after the 408"
    assert took < 3.0, took


def test_a_trickled_body_is_cut_at_the_deadline_not_per_chunk(serve_app: Serve) -> None:
    server = serve_app(host_app(quick_mount(body_timeout=1.0)))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=6)
    began = time.monotonic()
    try:
        sock.sendall(
            b"POST /llm/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        sock.settimeout(0.2)
        received = b""
        while not received and time.monotonic() - began < 6:
            try:
                sock.sendall(b" ")  # a byte every 0.2 s: each chunk is quick, the body is not
            except OSError:
                break
            try:
                received = sock.recv(65536)
            except TimeoutError:
                continue
        took = time.monotonic() - began
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert took < 3.0, took


def test_a_body_in_time_still_streams_and_get_requests_have_no_deadline(serve_app: Serve) -> None:
    url = serve_app(host_app(quick_mount(body_timeout=0.5))).url + "/llm/chat"
    assert httpx.post(url, json=CHAT).status_code == 200
    # A stream that lasts longer than the body deadline is not cut by it.
    slow = quick_mount(provider=Scripted(answer="slow answer", pace=0.1), body_timeout=0.3)
    url = serve_app(host_app(slow)).url + "/llm/chat"
    response = httpx.post(url, json=CHAT, timeout=10)
    assert response.status_code == 200 and "event: done" in response.text
    assert httpx.get(url, params={"prompt": "hi"}, timeout=10).status_code == 200


def test_body_timeout_from_the_environment() -> None:
    assert LLMMount.from_env({"LLM_SSE_BODY_TIMEOUT": "2.5"}).settings.requests.body_timeout == 2.5
    assert LLMMount.from_env({}).settings.requests.body_timeout == 10.0
    with pytest.raises(ConfigError):
        LLMMount(body_timeout=0)


# --- 2. cross-site simple requests and the Origin check ----------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
@pytest.mark.parametrize("path", ["/llm/chat", "/llm/v1/chat/completions", "/llm/ai-sdk/chat"])
def test_a_body_that_is_not_declared_json_is_a_415(
    serve_app: Serve, content_type: str | None, path: str
) -> None:
    provider = Scripted(pace=0, answer="Hi", reasoning="")
    url = serve_app(host_app(quick_mount(provider=provider))).url + path
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps(AI_SDK_CHAT if "ai-sdk" in path else CHAT).encode()
    response = httpx.post(url, content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_json_with_a_charset_and_vendor_json_types_are_accepted(serve_app: Serve) -> None:
    url = serve_app(host_app(quick_mount())).url + "/llm/chat"
    for media in ("application/json; charset=utf-8", "Application/JSON", "application/vnd.x+json"):
        response = httpx.post(url, content=json.dumps(CHAT), headers={"Content-Type": media})
        assert response.status_code == 200, (media, response.text)


def test_the_shipped_client_sends_json() -> None:
    # client.js is what browsers use: it must keep sending a content type the mount takes.
    from pathlib import Path

    import llm_sse_mount

    source = (Path(llm_sse_mount.__file__).parent / "static" / "client.js").read_text()
    assert (
        '"Content-Type": "application/json"' in source
        or "'Content-Type': 'application/json'" in source
    )


def _cookie_authorize() -> Any:
    async def authorize(request: Any) -> Principal | None:
        if request.cookies.get("session") != "alice-session":
            from llm_sse_mount.errors import Unauthorized

            raise Unauthorized("log in first")
        return Principal("alice")

    return authorize


def test_allowed_origins_refuse_a_foreign_page_with_the_victims_cookie(serve_app: Serve) -> None:
    mount = quick_mount(authorize=_cookie_authorize(), allowed_origins=["https://app.example/"])
    base = serve_app(host_app(mount)).url + "/llm"
    cookie = {"Cookie": "session=alice-session"}
    evil = {**cookie, "Origin": "https://evil.example"}
    for method, path, kwargs in (
        ("POST", "/chat", {"json": CHAT}),
        ("GET", "/chat", {"params": {"prompt": "hi"}}),
        ("POST", "/v1/chat/completions", {"json": {**CHAT, "stream": True}}),
        ("GET", "/models", {}),
    ):
        refused = httpx.request(method, base + path, headers=evil, **kwargs)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "origin_forbidden"
    null_origin = httpx.post(base + "/chat", json=CHAT, headers={**cookie, "Origin": "null"})
    assert null_origin.status_code == 403
    # The listed origin (any case, no trailing slash) and non-browser clients (no Origin) pass.
    mine = httpx.post(
        base + "/chat", json=CHAT, headers={**cookie, "Origin": "https://APP.example"}
    )
    assert mine.status_code == 200 and "event: done" in mine.text
    assert httpx.post(base + "/chat", json=CHAT, headers=cookie).status_code == 200


def test_allowed_origins_from_the_environment_and_validated() -> None:
    mount = LLMMount.from_env({"LLM_SSE_ALLOWED_ORIGINS": "https://a.example, http://b:8080"})
    assert mount.settings.requests.allowed_origins == frozenset(
        {"https://a.example", "http://b:8080"}
    )
    assert LLMMount.from_env({}).settings.requests.allowed_origins is None
    for bad in ("a.example", "https://a.example/path", "ftp://a.example"):
        with pytest.raises(ConfigError):
            LLMMount(allowed_origins=[bad])


# --- 3. deep nesting ---------------------------------------------------------------------------


def _nested(depth: int) -> str:
    # Built as text: json.dumps itself would hit the recursion limit in the test.
    return '{"a":' * depth + "{}" + "}" * depth


_WITH_TOOL_CHOICE = '{"messages":[{"role":"user","content":"hi"}],"tool_choice":%s}'
_WITH_PARAMETERS = (
    '{"messages":[{"role":"user","content":"hi"}],'
    '"tools":[{"type":"function","function":{"name":"f","parameters":%s}}]}'
)


@pytest.mark.parametrize(
    "template", [_WITH_TOOL_CHOICE, _WITH_PARAMETERS], ids=["tool_choice", "parameters"]
)
@pytest.mark.parametrize("path", ["/chat", "/v1/chat/completions"])
def test_deep_nesting_is_invalid_json_not_a_500(
    serve_app: Serve, fake_upstream: FakeUpstream, template: str, path: str
) -> None:
    fake_upstream.default = openai_stream(["ok"])
    mount = LLMMount(provider=OpenAICompatible(fake_upstream.url, "sk-host", default_model="m"))
    url = serve_app(host_app(mount)).url + "/llm" + path
    json_headers = {"Content-Type": "application/json"}
    # Where parsing stops and the encoder starts failing depends on the stack depth the host
    # runs the mount at: sweep the band around the interpreter's recursion limit.
    with httpx.Client(timeout=10) as client:
        outcomes = {
            depth: client.post(url, content=template % _nested(depth), headers=json_headers)
            for depth in range(900, 1000, 5)
        }
        wrong = {d: r.status_code for d, r in outcomes.items() if r.status_code != 400}
        assert not wrong, wrong
        assert {r.json()["error"]["code"] for r in outcomes.values()} == {"invalid_json"}
        assert fake_upstream.requests == []
        # A realistic schema (a dozen levels) still goes through.
        fine = client.post(url, content=template % _nested(12), headers=json_headers)
        assert fine.status_code == 200, fine.text[:300]


# --- 4. tools count towards max_chars and the token estimate ---------------------------------


def _tool(description: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": description,
            "parameters": {"type": "object"},
        },
    }


@pytest.mark.parametrize(
    "body",
    [
        {**CHAT, "tools": [_tool("x" * 200_000)]},
        {
            **CHAT,
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"enum": ["y" * 200_000]}},
                }
            ],
        },
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "z" * 200_000},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
            ]
        },
    ],
    ids=["description", "parameters", "tool_call_arguments"],
)
def test_tool_text_counts_towards_max_chars(serve_app: Serve, body: dict[str, Any]) -> None:
    url = serve_app(host_app(quick_mount(max_chars=1_000))).url
    for path in ("/llm/chat", "/llm/v1/chat/completions"):
        response = httpx.post(url + path, json=body)
        assert response.status_code == 400, (path, response.text[:300])
        assert response.json()["error"]["code"] == "conversation_too_long"


def test_a_large_tool_description_is_charged_as_prompt_tokens(serve_app: Serve) -> None:
    # 200,000 characters ≈ 50,000 tokens: far over a 10,000 per minute budget after one call.
    mount = quick_mount(limits=Limits(tokens_per_minute=10_000))
    url = serve_app(host_app(mount)).url + "/llm/chat"
    body = {**CHAT, "tools": [_tool("x" * 200_000)]}
    assert httpx.post(url, json=body).status_code == 200
    refused = httpx.post(url, json=CHAT)
    assert refused.status_code == 429, refused.text
    assert "token budget" in refused.json()["error"]["message"]


# --- 5. a request refused for concurrency spends no request budget ---------------------------


@pytest.fixture(params=["memory", "redis"])
def limit_store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryLimitStore()
    import uuid

    url: str = request.getfixturevalue("redis_url")
    return RedisLimitStore(url, prefix=f"test-edge-limits:{uuid.uuid4().hex}:")


def test_refused_for_concurrency_spends_no_request_budget(
    serve_app: Serve, limit_store: Any
) -> None:
    provider = Scripted(script=[Text("Hello"), Hang()])
    mount = LLMMount(
        provider=provider,
        limits=Limits(requests="2/minute", concurrent=1),
        limits_store=limit_store,
    )
    url = serve_app(host_app(mount)).url + "/llm/chat"
    with httpx.Client(timeout=5) as first, first.stream("POST", url, json=CHAT) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        for line in lines:
            if line == "event: delta":
                break
        for _ in range(3):
            busy = httpx.post(url, json=CHAT, timeout=5)
            assert busy.status_code == 429
            assert "at once" in busy.json()["error"]["message"]
    provider.script = [Text("again")]
    deadline = time.monotonic() + 2
    while True:  # the first stream's slot comes back as soon as its connection is gone
        second = httpx.post(url, json=CHAT, timeout=5)
        if second.status_code != 429 or "at once" not in second.text or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert second.status_code == 200, second.text
    # Two requests per minute: the hanging one and this one. The third is refused for the rate,
    # and that refusal hands back the slot it took (a fourth is refused for the rate too).
    for _ in range(2):
        third = httpx.post(url, json=CHAT, timeout=5)
        assert third.status_code == 429
        assert "too many requests" in third.json()["error"]["message"]


# --- 6. GET /v1/models is behind authorize and narrowed per principal -------------------------


def test_v1_models_needs_authorization_and_lists_only_the_principals_models(
    serve_app: Serve,
) -> None:
    async def authorize(request: Any) -> Principal | None:
        token = request.headers.get("authorization", "")
        if token == "Bearer full":
            return Principal("full")
        if token == "Bearer narrow":
            return Principal("narrow", models=frozenset({"small"}))
        from llm_sse_mount.errors import Unauthorized

        raise Unauthorized("a token is needed")

    mount = quick_mount(model="small", models=["small", "large"], authorize=authorize)
    url = serve_app(host_app(mount)).url + "/llm/v1/models"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"

    def listed(token: str) -> list[str]:
        headers = {"Authorization": f"Bearer {token}"}
        return [m["id"] for m in httpx.get(url, headers=headers).json()["data"]]

    assert listed("full") == ["small", "large"]
    assert listed("narrow") == ["small"]


def test_v1_models_with_bearer_tokens_matches_the_openai_sdk(serve_app: Serve) -> None:
    openai = pytest.importorskip("openai")
    mount = quick_mount(authorize=BearerTokens({"tok": "alice"}))
    base = serve_app(host_app(mount)).url + "/llm/v1"
    with (
        openai.OpenAI(base_url=base, api_key="wrong") as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()
    with openai.OpenAI(base_url=base, api_key="tok") as client:
        models = client.models.list()
    assert [m.id for m in models.data] == mount.settings.requests.allowed_models()
