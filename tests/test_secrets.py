"""The upstream key never leaves: a whole session (successes, upstream errors that echo the key,
auth failures) with DEBUG logging on everywhere, then every response body and header and every
captured log line is searched for the key, the Zhipu secret and the signed upstream token."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from llm_sse_mount import LLMMount, OpenAICompatible, Zhipu
from llm_sse_mount.core.access import BearerTokens
from llm_sse_mount.core.limits import Limits
from llm_sse_mount.redaction import SecretRedactor, redact

from .support.access_apps import CHAT, host_app
from .support.fake_upstream import Body, FakeUpstream, Send, openai_stream
from .support.servers import ServerThread

Serve = Callable[..., ServerThread]

OPENAI_KEY = "sk-test-Q9vLmZ2xR7pT4wK8nB3cY6hJ"
ZHIPU_ID = "zp4f1e2d3c"
ZHIPU_SECRET = "ZhS3cr3tV4lu3xYq8Rw2"
ZHIPU_KEY = f"{ZHIPU_ID}.{ZHIPU_SECRET}"
CLIENT_TOKEN = "client-tok-7f3a9b"


def echoing(key: str) -> list[list[Any]]:
    """Upstream answers that each repeat the key somewhere a careless relay would pass on."""
    err = '{"error": {"message": "Incorrect API key provided: %s", "code": "invalid_api_key"}}'
    return [
        openai_stream(["Hello", " there"], usage={"prompt_tokens": 3, "completion_tokens": 2}),
        [Body(401, (err % key).encode())],
        [Body(400, f'{{"error": "bad request for key {key}"}}'.encode())],
        [Body(500, f"<html>proxy error, key={key}</html>".encode(), {"content-type": "text/html"})],
        [Body(429, (err % key).encode(), {"retry-after": "0"})],
        [Body(200, (err % key).encode())],  # a JSON body instead of a stream
        [Body(200, f"plain text {key}".encode(), {"content-type": "text/plain"})],
        openai_stream(["ok", {"error": {"message": f"key {key} was revoked"}}], done=False),
        [Send(f"data: not json {key}\n\n".encode())],
        # httpcore logs response headers at DEBUG: a proxy echoing the key must not leak it.
        [Body(403, b"{}", {"x-echo-authorization": key})],
    ]


def providers(upstream: FakeUpstream) -> list[tuple[str, Any, tuple[str, ...]]]:
    return [
        ("openai", OpenAICompatible(upstream.url, OPENAI_KEY, default_model="m"), (OPENAI_KEY,)),
        ("zhipu-jwt", Zhipu(ZHIPU_KEY, base_url=upstream.url), (ZHIPU_KEY, ZHIPU_SECRET)),
        ("zhipu-key", Zhipu(ZHIPU_KEY, auth="key", base_url=upstream.url), (ZHIPU_KEY,)),
    ]


@pytest.mark.parametrize("which", ["openai", "zhipu-jwt", "zhipu-key"])
def test_no_secret_in_any_response_header_log_or_repr(
    which: str, serve_app: Serve, fake_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    name, provider, secrets = next(p for p in providers(fake_upstream) if p[0] == which)
    mount = LLMMount(
        provider=provider,
        retries=0,
        authorize=BearerTokens([CLIENT_TOKEN]),
        limits=Limits(concurrent=4),
    )
    seen: list[str] = []
    caplog.set_level(logging.DEBUG)  # root: every logger, httpx and httpcore included
    with caplog.at_level(logging.DEBUG, "httpcore"), caplog.at_level(logging.DEBUG, "httpx"):
        url = serve_app(host_app(mount)).url
        auth = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
        with httpx.Client(timeout=10) as client:

            def keep(r: httpx.Response) -> httpx.Response:
                seen.append(f"{r.status_code} {dict(r.headers)!r} {r.text}")
                return r

            script = echoing(secrets[0])
            fake_upstream.push(*script)
            statuses = [
                keep(client.post(url + "/llm/chat", json=CHAT, headers=auth)).status_code
                for _ in script
            ]
            keep(client.post(url + "/llm/chat", json=CHAT))  # no token
            keep(client.post(url + "/llm/chat", json=CHAT, headers={"Authorization": "Bearer x"}))
            keep(client.get(url + "/llm/models", headers=auth))
            keep(client.get(url + "/llm/health"))
            keep(client.post(url + "/llm/chat", json={**CHAT, "api_key": secrets[0]}, headers=auth))
    # The session really went through the failure paths (else it would prove nothing).
    assert statuses[0] == 200
    assert {400, 429, 502} <= set(statuses), statuses
    assert "upstream_auth" in seen[1]
    assert "invalid_api_key" in seen[1]  # the message survives, redacted
    sent = [r.headers.get("authorization", "") for r in fake_upstream.requests]
    assert len(sent) == len(script)
    upstream_tokens = {h.removeprefix("Bearer ") for h in sent}
    log_text = caplog.text + "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    assert "HTTP Request: POST" in log_text  # httpx did log at DEBUG/INFO
    assert "upstream" in log_text  # and so did the relay
    everything = "\n".join(seen) + log_text
    everything += repr(provider) + repr(mount) + repr(mount.relay) + repr(mount.access)
    for secret in (*secrets, *upstream_tokens, CLIENT_TOKEN):
        assert secret not in everything, f"{name}: a secret leaked"
    # The error seen by the client still makes sense, with the key masked.
    assert "***" in "\n".join(seen)


def test_redactor_masks_log_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    mount = LLMMount(provider=Zhipu(ZHIPU_KEY, base_url="http://127.0.0.1:9"))
    log = logging.getLogger("llm_sse_mount")
    with caplog.at_level(logging.DEBUG, "llm_sse_mount"):
        log.warning("a careless line: %s", ZHIPU_KEY)
        log.info("secret alone: " + ZHIPU_SECRET)
        try:
            raise RuntimeError(f"boom with {ZHIPU_KEY}")
        except RuntimeError:
            log.exception("failed")
    assert ZHIPU_SECRET not in caplog.text
    assert ZHIPU_ID not in caplog.text  # the id part went with the whole key, longest first
    assert caplog.text.count("***") >= 3
    assert sum(isinstance(f, SecretRedactor) for f in log.filters) == 1
    del mount


def test_redact_replaces_longest_first() -> None:
    assert redact(f"k={ZHIPU_KEY} s={ZHIPU_SECRET}", [ZHIPU_SECRET, ZHIPU_KEY]) == "k=*** s=***"
    assert redact("nothing", ["", "x" * 0]) == "nothing"


def test_reprs_hide_keys() -> None:
    for obj in (
        OpenAICompatible("http://x", OPENAI_KEY),
        Zhipu(ZHIPU_KEY),
        Zhipu(ZHIPU_KEY, auth="key"),
        BearerTokens([CLIENT_TOKEN]),
        LLMMount(provider=OpenAICompatible("http://x", OPENAI_KEY)).access,
    ):
        text = repr(obj) + str(obj)
        for secret in (OPENAI_KEY, ZHIPU_KEY, ZHIPU_SECRET, ZHIPU_ID, CLIENT_TOKEN):
            assert secret not in text, text
