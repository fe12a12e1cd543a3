"""The upstream edge of issue #14, over real sockets: absurd ``Retry-After`` values, a Zhipu
JWT echoed back by the upstream, and credentials cut by the truncation of plain-text errors."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import CompletionRecord, LLMMount
from llm_sse_mount.providers.http import MAX_RETRY_AFTER, parse_retry_after
from llm_sse_mount.providers.openai import OpenAICompatible
from llm_sse_mount.providers.zhipu import Zhipu

from .support.fake_upstream import Body, FakeUpstream, Step, openai_stream
from .support.servers import ServerThread

ServeApp = Callable[..., ServerThread]
KEY = "sk-edge-0123456789abcdefghijklmnopqrstuv"
ZHIPU_KEY = "0123456789abcdef0123456789abcdef.ZyXwVuTsRqPoNmLk"
BODY = json.dumps({"messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("inf", MAX_RETRY_AFTER),
        ("Infinity", MAX_RETRY_AFTER),
        ("1e400", MAX_RETRY_AFTER),
        ("-inf", 0.0),
        ("nan", None),
        ("NaN", None),
        ("86400000", MAX_RETRY_AFTER),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_is_clamped_to_a_finite_bound(value: str, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize(
    ("status", "retry_after", "header"),
    [
        (429, "inf", "3600"),
        (429, "1e400", "3600"),
        (503, "Infinity", "3600"),
        (503, "NaN", None),
    ],
)
def test_an_absurd_retry_after_is_a_json_error_and_the_connection_stays_usable(
    fake_upstream: FakeUpstream,
    serve_app: ServeApp,
    status: int,
    retry_after: str,
    header: str | None,
) -> None:
    records: list[CompletionRecord] = []

    async def on_complete(record: CompletionRecord) -> None:
        records.append(record)

    fake_upstream.push(
        [Body(status, b'{"error": {"message": "slow down"}}', {"retry-after": retry_after})],
        openai_stream(["fine"]),
    )
    mount = LLMMount(
        provider=OpenAICompatible(fake_upstream.url, KEY),
        model="m",
        retries=0,
        on_complete=on_complete,
    )
    url = urlsplit(serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request("POST", "/llm/chat", BODY, {"content-type": "application/json"})
        first = conn.getresponse()
        payload = json.loads(first.read())
        assert first.status == status
        assert payload["error"]["code"] in ("upstream_rate_limited", "upstream_overloaded")
        assert first.getheader("retry-after") == header
        sock = conn.sock
        # The same TCP connection serves the next request (no reset, no "Connection: close").
        conn.request("POST", "/llm/chat", BODY, {"content-type": "application/json"})
        second = conn.getresponse()
        assert conn.sock is sock
        assert second.status == 200
        assert b'"text":"fine"' in second.read()
    finally:
        conn.close()
    assert [r.error_code for r in records][:1] == [payload["error"]["code"]]


# --- credentials echoed by the upstream ------------------------------------------------------


def echo_authorization(up: FakeUpstream, status: int, content_type: str) -> Iterator[Step]:
    """An upstream that answers with the request's own Authorization header in its error body
    (a misconfigured gateway, a debug proxy). A generator: it runs once the request is in."""
    auth = up.requests[-1].headers.get("authorization", "")
    if "json" in content_type:
        body = json.dumps({"error": {"message": f"invalid token: {auth}", "code": "1000"}})
    else:
        body = f"bad credentials, you sent {auth}"
    yield Body(status, body.encode(), {"content-type": content_type})


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_zhipu_jwt_echoed_by_the_upstream_reaches_neither_the_client_nor_the_log(
    fake_upstream: FakeUpstream,
    serve_app: ServeApp,
    caplog: pytest.LogCaptureFixture,
    content_type: str,
) -> None:
    class Echo:
        def __iter__(self) -> Iterator[Step]:
            return echo_authorization(fake_upstream, 401, content_type)

    fake_upstream.default = Echo()  # type: ignore[assignment]
    provider = Zhipu(ZHIPU_KEY, base_url=fake_upstream.url)
    mount = LLMMount(provider=provider, retries=0)
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    with caplog.at_level(logging.DEBUG):
        r = httpx.post(
            server.url + "/llm/chat", content=BODY, headers={"content-type": "application/json"}
        )
    token = fake_upstream.requests[-1].headers["authorization"].removeprefix("Bearer ")
    assert token.count(".") == 2  # it really was a JWT that went out
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_auth"
    assert "***" in r.text  # the echo arrived, redacted
    assert token not in r.text
    for part in token.split("."):
        assert part not in r.text
    assert token not in caplog.text
    assert token.split(".")[2] not in caplog.text


@pytest.mark.parametrize("offset", [280, 290, 295, 299, 300])
def test_a_key_straddling_the_truncation_point_is_redacted_whole(
    fake_upstream: FakeUpstream, serve_app: ServeApp, caplog: pytest.LogCaptureFixture, offset: int
) -> None:
    text = "x" * offset + KEY + " and more text after the key " * 5
    fake_upstream.default = [Body(500, text.encode(), {"content-type": "text/plain"})]
    mount = LLMMount(provider=OpenAICompatible(fake_upstream.url, KEY), model="m", retries=0)
    server = serve_app(Starlette(routes=[Mount("/llm", app=mount)]))
    with caplog.at_level(logging.DEBUG):
        r = httpx.post(
            server.url + "/llm/chat", content=BODY, headers={"content-type": "application/json"}
        )
    assert r.status_code == 502
    message: Any = r.json()["error"]["message"]
    for n in (3, 6, 10, 20):  # before the fix, every character left of the cut leaked
        assert KEY[:n] not in message
        assert KEY[:n] not in caplog.text
    assert message.count("x") >= 250  # the error text itself still arrives


def test_zhipu_secrets_name_the_current_and_the_previous_token() -> None:
    from llm_sse_mount.providers.zhipu_auth import ZhipuAuth

    now = [1_700_000_000.0]
    auth = ZhipuAuth(ZHIPU_KEY, ttl=600, renew_margin=60, clock=lambda: now[0])
    first = auth.authorization().removeprefix("Bearer ")
    assert first in auth.secrets()
    now[0] += 550  # inside the renew margin: a new token, while the old one is still valid
    second = auth.authorization().removeprefix("Bearer ")
    assert second != first
    assert {first, second, ZHIPU_KEY, ZHIPU_KEY.split(".")[1]} <= set(auth.secrets())
