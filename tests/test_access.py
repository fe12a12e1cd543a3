"""Who may use the mount: the authorize hook, bearer tokens, host middleware and dependencies,
the request caps a client cannot get around, and CORS with the host's middleware."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from llm_sse_mount import ConfigError, LLMMount, OpenAICompatible, Scripted, Unauthorized
from llm_sse_mount.core.access import (
    AuthenticatedUser,
    BearerTokens,
    Principal,
    access_env_overrides,
    from_dependency,
    token_id,
)
from llm_sse_mount.core.limits import Limits, RedisLimitStore

from .support.access_apps import CHAT, events_of, host_app, quick_mount
from .support.browser import launch_chromium
from .support.fake_upstream import FakeUpstream, openai_stream
from .support.servers import ServerThread

Serve = Callable[..., ServerThread]

TOKENS = BearerTokens(
    {
        "tok-alice": "alice",
        "tok-bob": Principal("bob", models={"scripted-1"}),
        "tok-carol": Principal("carol", models={"other-model"}),
    }
)


def serve_mount(serve_app: Serve, mount: LLMMount, **kw: Any) -> str:
    return serve_app(host_app(mount, **kw)).url


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    return body


# --- bearer tokens -----------------------------------------------------------------------------


def test_missing_token_is_401_with_a_bearer_challenge(serve_app: Serve) -> None:
    url = serve_mount(serve_app, quick_mount(authorize=TOKENS))
    r = httpx.post(url + "/llm/chat", json=CHAT)
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == 'Bearer realm="llm"'


@pytest.mark.parametrize(
    "authorization", ["Bearer nope", "Bearer tok-alic", "Basic dG9rLWFsaWNlOg==", "Bearer"]
)
def test_wrong_token_is_401_invalid_token(serve_app: Serve, authorization: str) -> None:
    url = serve_mount(serve_app, quick_mount(authorize=TOKENS))
    r = httpx.post(url + "/llm/chat", json=CHAT, headers={"Authorization": authorization})
    assert_error(r, 401, "unauthorized")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_valid_bearer_header_streams(serve_app: Serve) -> None:
    url = serve_mount(serve_app, quick_mount(authorize=TOKENS))
    r = httpx.post(url + "/llm/chat", json=CHAT, headers={"Authorization": "bearer tok-alice"})
    assert r.status_code == 200
    assert events_of(r)[-1] == ("done", {"finish_reason": "stop"})


def test_eventsource_can_pass_the_token_as_access_token(serve_app: Serve) -> None:
    url = serve_mount(serve_app, quick_mount(authorize=TOKENS))
    r = httpx.get(url + "/llm/chat", params={"prompt": "hi", "access_token": "tok-alice"})
    assert r.status_code == 200
    assert "".join(d["text"] for e, d in events_of(r) if e == "delta") == "Hello there"
    assert httpx.get(url + "/llm/chat", params={"prompt": "hi"}).status_code == 401


def test_query_token_can_be_switched_off(serve_app: Serve) -> None:
    url = serve_mount(serve_app, quick_mount(authorize=BearerTokens(["t"], query_param=None)))
    r = httpx.get(url + "/llm/chat", params={"prompt": "hi", "access_token": "t"})
    assert_error(r, 401, "unauthorized")


def test_principal_model_list_gives_403(serve_app: Serve) -> None:
    mount = quick_mount(authorize=TOKENS, models=["other-model"])
    url = serve_mount(serve_app, mount)

    def ask(token: str, model: str) -> httpx.Response:
        body = {**CHAT, "model": model}
        return httpx.post(
            url + "/llm/chat", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    assert ask("tok-bob", "scripted-1").status_code == 200
    assert_error(ask("tok-bob", "other-model"), 403, "model_forbidden")
    assert_error(ask("tok-carol", "scripted-1"), 403, "model_forbidden")
    assert ask("tok-alice", "other-model").status_code == 200


def test_models_route_requires_auth_and_lists_only_allowed_models(serve_app: Serve) -> None:
    url = serve_mount(serve_app, quick_mount(authorize=TOKENS, models=["other-model"]))
    assert_error(httpx.get(url + "/llm/models"), 401, "unauthorized")
    bob = httpx.get(url + "/llm/models", headers={"Authorization": "Bearer tok-bob"}).json()
    assert bob == {"default": "scripted-1", "models": ["scripted-1"]}
    carol = httpx.get(url + "/llm/models", params={"access_token": "tok-carol"}).json()
    assert carol == {"default": None, "models": ["other-model"]}


def test_resume_requires_auth(serve_app: Serve) -> None:
    url = serve_mount(serve_app, quick_mount(authorize=TOKENS))
    r = httpx.post(url + "/llm/chat", json=CHAT, headers={"Authorization": "Bearer tok-alice"})
    stream_id = events_of(r)[0][1]["stream_id"]
    assert_error(httpx.get(f"{url}/llm/chat/{stream_id}?after=0"), 401, "unauthorized")
    again = httpx.get(f"{url}/llm/chat/{stream_id}?after=0&access_token=tok-alice")
    assert again.status_code == 200
    assert events_of(again)[-1][0] == "done"


def test_bearer_tokens_repr_and_config_errors() -> None:
    assert "tok-alice" not in repr(TOKENS)
    assert "3 tokens" in repr(TOKENS)
    with pytest.raises(ConfigError):
        BearerTokens([])
    with pytest.raises(ConfigError):
        BearerTokens(["ok", " "])
    assert token_id("abc") == token_id("abc") != token_id("abd")
    assert token_id("abc").startswith("token:")
    assert "abc" not in token_id("abc")


# --- the hook -----------------------------------------------------------------------------------


def test_hook_returning_none_is_anonymous_and_streams(serve_app: Serve) -> None:
    seen: list[str] = []

    async def anyone(request: Request) -> Principal | None:
        seen.append(request.url.path)
        return None

    url = serve_mount(serve_app, quick_mount(authorize=anyone))
    assert httpx.post(url + "/llm/chat", json=CHAT).status_code == 200
    assert seen == ["/llm/chat"]


def test_hook_that_crashes_fails_closed(serve_app: Serve, caplog: Any) -> None:
    async def broken(request: Request) -> Principal:
        raise KeyError("bug in the host's hook")

    url = serve_mount(serve_app, quick_mount(authorize=broken))
    with caplog.at_level(logging.ERROR, "llm_sse_mount"):
        assert_error(httpx.post(url + "/llm/chat", json=CHAT), 500, "access_check_failed")
    assert "authorize hook failed" in caplog.text


def test_hook_returning_a_non_principal_fails_closed(serve_app: Serve) -> None:
    async def wrong(request: Request) -> Any:
        return "alice"

    url = serve_mount(serve_app, quick_mount(authorize=wrong))
    assert_error(httpx.post(url + "/llm/chat", json=CHAT), 500, "access_check_failed")


def test_invalid_request_is_rejected_before_any_upstream_call(serve_app: Serve) -> None:
    provider = Scripted(pace=0)
    url = serve_mount(serve_app, quick_mount(provider, authorize=TOKENS))
    assert httpx.post(url + "/llm/chat", json={"messages": []}).status_code == 400
    assert httpx.post(url + "/llm/chat", json=CHAT).status_code == 401
    assert provider.opened == 0


# --- host middleware and dependencies ------------------------------------------------------------


class HeaderAuth(AuthenticationBackend):
    """The host's own authentication: ``X-User: name[:scope,scope]``."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        raw = conn.headers.get("x-user")
        if not raw:
            return None
        name, _, scopes = raw.partition(":")
        return AuthCredentials([s for s in scopes.split(",") if s]), SimpleUser(name)


def test_starlette_authentication_middleware_user_reaches_the_mount(serve_app: Serve) -> None:
    mount = quick_mount(authorize=AuthenticatedUser("llm"))
    app = host_app(mount, middleware=[Middleware(AuthenticationMiddleware, backend=HeaderAuth())])
    url = serve_app(app).url
    assert_error(httpx.post(url + "/llm/chat", json=CHAT), 401, "unauthorized")
    no_scope = httpx.post(url + "/llm/chat", json=CHAT, headers={"X-User": "dora"})
    assert_error(no_scope, 403, "forbidden")
    ok = httpx.post(url + "/llm/chat", json=CHAT, headers={"X-User": "dora:read,llm"})
    assert ok.status_code == 200
    assert events_of(ok)[-1][0] == "done"


def test_authenticated_user_principal_is_the_user(serve_app: Serve) -> None:
    seen: list[Principal] = []
    inner = AuthenticatedUser()

    async def hook(request: Request) -> Principal:
        principal = await inner(request)
        seen.append(principal)
        return principal

    mw = [Middleware(AuthenticationMiddleware, backend=HeaderAuth())]
    url = serve_app(host_app(quick_mount(authorize=hook), middleware=mw)).url
    assert httpx.post(url + "/llm/chat", json=CHAT, headers={"X-User": "erin"}).status_code == 200
    assert seen == [Principal("erin")]


class TenantMiddleware:
    """Host middleware that puts the tenant in ``request.state`` (plain ASGI, stream-safe)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            if request.headers.get("x-tenant"):
                request.state.tenant = request.headers["x-tenant"]
        await self.app(scope, receive, send)


def test_request_state_set_by_host_middleware_is_visible(serve_app: Serve) -> None:
    async def hook(request: Request) -> Principal:
        tenant = getattr(request.state, "tenant", None)
        if tenant is None:
            raise Unauthorized("no tenant")
        return Principal(f"tenant:{tenant}")

    app = host_app(quick_mount(authorize=hook), middleware=[Middleware(TenantMiddleware)])
    url = serve_app(app).url
    assert httpx.post(url + "/llm/chat", json=CHAT).status_code == 401
    assert httpx.post(url + "/llm/chat", json=CHAT, headers={"X-Tenant": "acme"}).status_code == 200


def fastapi_host() -> FastAPI:
    """A FastAPI host whose API-key dependency guards its own routes and the mount."""
    keys = {"key-1": "frank"}

    def api_user(request: Request) -> str:
        key = request.headers.get("x-api-key")
        if key is None:
            raise HTTPException(401, "missing X-API-Key")
        if key not in keys:
            raise HTTPException(403, "unknown API key")
        return keys[key]

    app = FastAPI()

    @app.get("/me")
    def me(user: str = Depends(api_user)) -> dict[str, str]:
        return {"user": user}

    app.mount("/llm", quick_mount(authorize=from_dependency(api_user)))
    return app


def test_fastapi_dependency_guards_host_routes_and_mount_alike(serve_app: Serve) -> None:
    url = serve_app(fastapi_host()).url
    for path, body in (("/me", None), ("/llm/chat", CHAT)):
        method = "POST" if body else "GET"
        assert httpx.request(method, url + path, json=body).status_code == 401
        bad = httpx.request(method, url + path, json=body, headers={"X-API-Key": "nope"})
        assert bad.status_code == 403
    assert httpx.get(url + "/me", headers={"X-API-Key": "key-1"}).json() == {"user": "frank"}
    ok = httpx.post(url + "/llm/chat", json=CHAT, headers={"X-API-Key": "key-1"})
    assert ok.status_code == 200
    # The mount's own error shape, whatever the dependency raised.
    r = httpx.post(url + "/llm/chat", json=CHAT)
    assert r.json() == {"error": {"code": "unauthorized", "message": "missing X-API-Key"}}
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.anyio
async def test_from_dependency_turns_results_into_principals() -> None:
    class User:
        identity = "u-7"

    request = Request({"type": "http", "headers": [], "query_string": b"", "client": None})

    async def async_dep(request: Request) -> User:
        return User()

    assert await from_dependency(async_dep)(request) == Principal("u-7")
    assert await from_dependency(lambda r: "x")(request) == Principal("x")
    assert await from_dependency(lambda r: None)(request) is None
    assert await from_dependency(lambda r: Principal("p"))(request) == Principal("p")


# --- request caps: what a client cannot choose ------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_url", "http://evil.example/v1"),
        ("api_key", "sk-mine"),
        ("headers", {"Authorization": "Bearer x"}),
        ("url", "http://evil.example"),
        ("provider", "openai"),
        ("stream_options", {"include_usage": False}),
    ],
)
def test_client_cannot_choose_upstream_url_headers_or_key(
    serve_app: Serve, fake_upstream: FakeUpstream, field: str, value: Any
) -> None:
    provider = OpenAICompatible(fake_upstream.url, "sk-host", default_model="m")
    url = serve_mount(serve_app, LLMMount(provider=provider))
    r = httpx.post(url + "/llm/chat", json={**CHAT, field: value})
    assert_error(r, 400, "unknown_field")
    assert fake_upstream.requests == []


def test_query_parameters_cannot_redirect_the_upstream(
    serve_app: Serve, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.push(openai_stream(["ok"]))
    provider = OpenAICompatible(fake_upstream.url, "sk-host", default_model="m")
    url = serve_mount(serve_app, LLMMount(provider=provider))
    r = httpx.get(
        url + "/llm/chat",
        params={"prompt": "hi", "base_url": "http://evil", "api_key": "k", "headers": "x"},
    )
    assert r.status_code == 200
    (sent,) = fake_upstream.requests
    assert sent.path == "/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-host"
    assert set(sent.json) <= {"model", "messages", "stream", "stream_options"}


def test_model_allow_list_defaults_to_the_mount_model(serve_app: Serve) -> None:
    url = serve_mount(serve_app, quick_mount())
    assert_error(
        httpx.post(url + "/llm/chat", json={**CHAT, "model": "gpt-4-pricey"}), 400, "unknown_model"
    )
    assert httpx.post(url + "/llm/chat", json={**CHAT, "model": "scripted-1"}).status_code == 200
    listed = serve_mount(serve_app, quick_mount(models=["b"]))
    assert httpx.post(listed + "/llm/chat", json={**CHAT, "model": "b"}).status_code == 200
    assert httpx.post(listed + "/llm/chat", json={**CHAT, "model": "c"}).status_code == 400


@pytest.mark.parametrize(
    ("mount_kw", "body", "status", "code"),
    [
        (
            {"max_messages": 2},
            {"messages": [{"role": "user", "content": "x"}] * 3},
            400,
            "too_many_messages",
        ),
        (
            {"max_chars": 10},
            {"messages": [{"role": "user", "content": "x" * 11}]},
            400,
            "conversation_too_long",
        ),
        ({"max_tokens": 100}, {**CHAT, "max_tokens": 101}, 400, "invalid_parameter"),
        (
            {"client_params": ["max_tokens"]},
            {**CHAT, "temperature": 0.5},
            400,
            "parameter_not_allowed",
        ),
        (
            {"client_params": []},
            {**CHAT, "tools": [{"function": {"name": "f"}}]},
            400,
            "parameter_not_allowed",
        ),
        (
            {"max_body_bytes": 100},
            {"messages": [{"role": "user", "content": "x" * 200}]},
            413,
            "body_too_large",
        ),
        ({}, {**CHAT, "max_tokens": 0}, 400, "invalid_parameter"),
        ({}, {**CHAT, "temperature": 9}, 400, "invalid_parameter"),
        ({}, {"messages": [{"role": "root", "content": "x"}]}, 400, "invalid_role"),
    ],
)
def test_request_caps(
    serve_app: Serve, mount_kw: dict[str, Any], body: Any, status: int, code: str
) -> None:
    provider = Scripted(pace=0)
    url = serve_mount(serve_app, quick_mount(provider, **mount_kw))
    assert_error(httpx.post(url + "/llm/chat", json=body), status, code)
    assert provider.opened == 0


def test_max_tokens_ceiling_is_sent_when_the_client_names_none(serve_app: Serve) -> None:
    provider = Scripted(pace=0)
    url = serve_mount(serve_app, quick_mount(provider, max_tokens=5))
    r = httpx.post(url + "/llm/chat", json=CHAT)
    assert events_of(r)[-1] == ("done", {"finish_reason": "length"})
    assert provider.last_request is not None
    assert provider.last_request.max_tokens == 5


def test_system_prompt_counts_toward_max_chars(serve_app: Serve) -> None:
    url = serve_mount(serve_app, quick_mount(system_prompt="s" * 8, max_chars=10))
    assert httpx.post(url + "/llm/chat", json=CHAT).status_code == 200  # 8 + 2
    body = {"messages": [{"role": "user", "content": "abc"}]}
    assert_error(httpx.post(url + "/llm/chat", json=body), 400, "conversation_too_long")


# --- from_env ----------------------------------------------------------------------------------


def test_from_env_client_tokens_require_a_token_and_log_only_a_hash(
    serve_app: Serve, caplog: Any
) -> None:
    env = {"LLM_SSE_CLIENT_TOKENS": "raw-token-1, raw-token-2", "LLM_SSE_PROVIDER": "scripted"}
    with caplog.at_level(logging.DEBUG):
        mount = LLMMount.from_env(env, provider=Scripted(pace=0))
        url = serve_mount(serve_app, mount)
        assert httpx.post(url + "/llm/chat", json=CHAT).status_code == 401
        r = httpx.post(
            url + "/llm/chat", json=CHAT, headers={"Authorization": "Bearer raw-token-2"}
        )
        assert r.status_code == 200
    assert "raw-token" not in caplog.text
    assert token_id("raw-token-2") in caplog.text  # the stream's log line names its principal


def test_from_env_limits_and_store() -> None:
    out = access_env_overrides(
        {
            "LLM_SSE_RATE_LIMIT": "30/minute",
            "LLM_SSE_MAX_CONCURRENT": "2",
            "LLM_SSE_TOKENS_PER_MINUTE": "1000",
            "LLM_SSE_STORE": "redis://127.0.0.1:6379/3",
        }
    )
    assert out["limits"] == Limits("30/minute", 2, 1000)
    assert isinstance(out["limits_store"], RedisLimitStore)
    assert out["limits_store"].url == "redis://127.0.0.1:6379/3"
    separate = access_env_overrides(
        {
            "LLM_SSE_MAX_CONCURRENT": "1",
            "LLM_SSE_STORE": "redis://a",
            "LLM_SSE_LIMITS_STORE": "memory",
        }
    )
    assert "limits_store" not in separate
    assert access_env_overrides({}) == {}
    assert access_env_overrides({"LLM_SSE_RATE_LIMIT": "off"}) == {}
    for bad in (
        {"LLM_SSE_RATE_LIMIT": "lots"},
        {"LLM_SSE_MAX_CONCURRENT": "two"},
        {"LLM_SSE_TOKENS_PER_MINUTE": "0"},
        {"LLM_SSE_MAX_CONCURRENT": "1", "LLM_SSE_LIMITS_STORE": "memcached://x"},
    ):
        with pytest.raises(ConfigError):
            access_env_overrides(bad)


def test_from_env_keyword_overrides_win() -> None:
    hook = BearerTokens(["x"])
    mount = LLMMount.from_env({"LLM_SSE_CLIENT_TOKENS": "a"}, authorize=hook)
    assert mount.access.authorize is hook


# --- CORS ----------------------------------------------------------------------------------------

ORIGIN = "https://app.example"


def cors_app(mount: LLMMount, origin: str = ORIGIN) -> Any:
    return host_app(
        mount,
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=[origin],
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "last-event-id"],
                expose_headers=["retry-after"],
            )
        ],
    )


def test_cors_preflight_is_answered_by_the_host_without_a_token(serve_app: Serve) -> None:
    url = serve_app(cors_app(quick_mount(authorize=TOKENS))).url
    r = httpx.options(
        url + "/llm/chat",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = r.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed
    other = httpx.options(
        url + "/llm/chat",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


def test_cors_headers_on_a_live_stream_and_on_errors(serve_app: Serve) -> None:
    url = serve_app(cors_app(quick_mount(authorize=TOKENS))).url
    headers = {"Origin": ORIGIN, "Authorization": "Bearer tok-alice"}
    with httpx.stream("POST", url + "/llm/chat", json=CHAT, headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert "event: done" in r.read().decode()
    denied = httpx.post(url + "/llm/chat", json=CHAT, headers={"Origin": ORIGIN})
    assert denied.status_code == 401
    # A browser can only read the error (and Retry-After) if the error carries CORS headers too.
    assert denied.headers["access-control-allow-origin"] == ORIGIN
    assert denied.headers["access-control-expose-headers"].lower() == "retry-after"


PAGE_SCRIPT = """
async ([api, blocked]) => {
  const chat = JSON.stringify({messages: [{role: "user", content: "hi"}]});
  const json = {"Content-Type": "application/json"};
  // Authorization + JSON: not a simple request, so the browser sends a preflight first.
  const ok = await fetch(api + "/llm/chat", {method: "POST", body: chat,
                        headers: {...json, "Authorization": "Bearer tok-alice"}});
  const text = await ok.text();
  const denied = await fetch(api + "/llm/chat", {method: "POST", body: chat, headers: json});
  const deniedBody = await denied.json();
  const es = await new Promise((resolve) => {
    const source = new EventSource(api + "/llm/chat?prompt=hi&access_token=tok-alice");
    let out = "";
    source.addEventListener("delta", (e) => { out += JSON.parse(e.data).text; });
    source.addEventListener("done", () => { source.close(); resolve(out); });
    source.onerror = () => { source.close(); resolve("error"); };
  });
  let blockedResult = "read";
  try {
    await fetch(blocked + "/llm/chat", {method: "POST", body: chat,
                headers: {...json, "Authorization": "Bearer tok-alice"}});
  } catch (e) {
    blockedResult = e.name;
  }
  return {status: ok.status, text, deniedStatus: denied.status, deniedBody, es, blockedResult};
}
"""


@pytest.mark.browser
def test_page_on_another_origin_streams_through_cors_in_chromium(
    serve_app: Serve, chromium_path: str
) -> None:
    from playwright.sync_api import sync_playwright
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>other origin</title>")

    page_url = serve_app(Starlette(routes=[Route("/", page)])).url
    api = serve_app(cors_app(quick_mount(authorize=TOKENS), origin=page_url)).url
    blocked = serve_app(cors_app(quick_mount(authorize=TOKENS), origin=ORIGIN)).url
    with sync_playwright() as pw:
        browser = launch_chromium(pw, chromium_path)
        try:
            tab = browser.new_page()
            tab.goto(page_url + "/")
            result = tab.evaluate(PAGE_SCRIPT, [api, blocked])
        finally:
            browser.close()
    assert result["status"] == 200
    assert "event: done" in result["text"]
    assert result["deniedStatus"] == 401
    assert result["deniedBody"]["error"]["code"] == "unauthorized"
    assert result["es"] == "Hello there"
    assert result["blockedResult"] == "TypeError"  # the browser refused the response
