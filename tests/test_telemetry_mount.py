"""Telemetry over a real running mount (uvicorn on port 0) and the fake upstream: spans from the
real OpenTelemetry SDK (in-memory exporter and reader), ``/metrics`` read with
prometheus_client's own parser, the JSON log line; good, failed, refused and cancelled
streams; trace context in and out."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import BearerTokens, Limits, LLMMount, OpenAICompatible
from llm_sse_mount.core.serving import log_id
from llm_sse_mount.telemetry.otel import OpenTelemetryObserver

from .support.fake_upstream import Body, openai_stream
from .support.native import parse_frames, text_of
from .support.otel import OTelSDK
from .support.sse_client import read_stream

API_KEY = "sk-upstream-secret-4711"
TOKEN = "tok-alice-secret"
PROMPT = "the launch code is 0000"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHAT = {"messages": [{"role": "user", "content": PROMPT}], "temperature": 0.5}


@pytest.fixture
def sdk() -> Iterator[OTelSDK]:
    sdk = OTelSDK()
    yield sdk
    sdk.shutdown()


@pytest.fixture
def start_mount(serve_app, fake_upstream, sdk) -> Callable[..., str]:
    def start(**kwargs: Any) -> str:
        options: dict[str, Any] = {
            "provider": OpenAICompatible(base_url=fake_upstream.url + "/v1", api_key=API_KEY),
            "model": "m",
            "models": ["m"],
            "retries": 0,
            "authorize": BearerTokens({TOKEN: "alice"}),
            # The host's SDK, given as providers to its own observer (the default one would
            # use the global providers, which a test process can set only once).
            "observers": [
                OpenTelemetryObserver(
                    tracer_provider=sdk.tracer_provider,
                    meter_provider=sdk.meter_provider,
                    chunk_timing=True,
                )
            ],
            "metrics": True,
            "log_format": "json",
        }
        options.update(kwargs)
        mount = LLMMount(**options)
        return serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"

    return start


def post_chat(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[httpx.Response, bytes]:
    """POST and read the whole (finite) stream."""
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", url, json=body, headers=headers) as r,
    ):
        return r, r.read()


def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def only(samples: dict, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_a_good_stream_is_one_span_with_the_conventions_attributes_and_a_metric_point(
    start_mount, fake_upstream, sdk, caplog
) -> None:
    url = start_mount()
    fake_upstream.push(
        openai_stream(
            ["Hel", "lo"], usage={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
        )
    )
    with caplog.at_level(logging.INFO, "llm_sse_mount.streams"):
        response, raw = post_chat(url + "/chat", CHAT, headers={**AUTH, "traceparent": TRACEPARENT})
        frames = parse_frames(raw)
        assert response.status_code == 200 and text_of(frames) == "Hello"
        stream_id = frames[0].data["stream_id"]
        [span] = wait_for(sdk.spans)

    assert span.name == "chat m"
    a = dict(span.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "m" and a["gen_ai.response.model"] == "m"
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 7 and a["gen_ai.usage.output_tokens"] == 2
    assert a["gen_ai.response.time_to_first_chunk"] > 0
    assert a["llm_sse.protocol"] == "native"
    assert stream_id not in json.dumps(a, default=str)  # only its digest
    assert "error.type" not in a

    # Trace context in (the span continues the caller's trace) and out (the upstream saw it).
    assert format(span.context.trace_id, "032x") == TRACE
    seen = fake_upstream.requests[0].headers["traceparent"]
    assert seen.split("-")[1] == TRACE
    assert seen.split("-")[2] == format(span.context.span_id, "016x")

    m = sdk.metrics()
    [(attrs, duration)] = m["gen_ai.client.operation.duration"]
    assert attrs["gen_ai.provider.name"] == "openai" and duration.count == 1
    assert {a["gen_ai.token.type"]: p.sum for a, p in m["gen_ai.client.token.usage"]} == {
        "input": 7,
        "output": 2,
    }
    assert m["gen_ai.client.operation.time_to_first_chunk"][0][1].count == 1
    assert m["gen_ai.client.operation.time_per_output_chunk"][0][1].count == 1  # two chunks

    s = scrape(url)
    labels = (
        ("finish_reason", "stop"),
        ("model", "m"),
        ("protocol", "native"),
        ("provider", "openai"),
    )
    assert only(s, "llm_sse_streams_total") == {labels: 1}
    assert only(s, "llm_sse_streams_open") == {(("protocol", "native"),): 0}
    ttft = (("model", "m"), ("protocol", "native"), ("provider", "openai"))
    assert s[("llm_sse_time_to_first_token_seconds_count", ttft)] == 1
    assert {dict(k)["type"]: v for k, v in only(s, "llm_sse_tokens_total").items()} == {
        "input": 7,
        "output": 2,
    }

    [line] = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "llm_sse_mount.streams"
    ]
    assert line["event"] == "stream_end" and line["finish_reason"] == "stop"
    assert line["trace_id"] == TRACE and line["usage_total_tokens"] == 9
    assert line["stream"] == a["llm_sse.stream"] == log_id(stream_id)


def test_an_upstream_500_is_an_error_span_with_our_code(
    start_mount, fake_upstream, sdk, caplog
) -> None:
    url = start_mount()
    fake_upstream.push(
        [Body(500, b'{"error": {"message": "boom"}}', {"content-type": "application/json"})]
    )
    with caplog.at_level(logging.INFO, "llm_sse_mount.streams"):
        response = httpx.post(url + "/chat", json=CHAT, headers=AUTH)
        assert response.status_code == 502
        [span] = wait_for(sdk.spans)
    # No incoming trace: the span starts one, and the log line carries its id.
    lines = [r.getMessage() for r in caplog.records if r.name == "llm_sse_mount.streams"]
    [line] = [json.loads(text) for text in lines]
    assert line["trace_id"] == format(span.context.trace_id, "032x")
    assert line["error_code"] == "upstream_error" and line["frames"] == 0
    assert span.attributes is not None
    assert span.attributes["error.type"] == "upstream_error"
    assert span.status.status_code.name == "ERROR"
    [(attrs, _)] = sdk.points("gen_ai.client.operation.duration")
    assert attrs["error.type"] == "upstream_error"
    s = scrape(url)
    assert only(s, "llm_sse_errors_total") == {
        (("code", "upstream_error"), ("protocol", "native"), ("stage", "upstream")): 1
    }
    # It did reach the upstream, carrying the trace context onward.
    assert "traceparent" in fake_upstream.requests[0].headers


def test_a_request_without_a_token_is_refused_with_a_span_and_a_count(
    start_mount, fake_upstream, sdk
) -> None:
    url = start_mount()
    response = httpx.post(url + "/chat", json=CHAT)
    assert response.status_code == 401
    [span] = wait_for(sdk.spans)
    assert span.attributes is not None and span.attributes["error.type"] == "unauthorized"
    assert only(scrape(url), "llm_sse_errors_total") == {
        (("code", "unauthorized"), ("protocol", "native"), ("stage", "admission")): 1
    }
    assert fake_upstream.requests == []


def test_a_rate_limited_request_is_refused_with_429_in_the_span_and_metrics(
    start_mount, fake_upstream, sdk
) -> None:
    url = start_mount(limits=Limits(requests="1/minute"))
    fake_upstream.push(openai_stream(["ok"]))
    assert post_chat(url + "/chat", CHAT, headers=AUTH)[0].status_code == 200
    assert httpx.post(url + "/chat", json=CHAT, headers=AUTH).status_code == 429
    spans = wait_for(lambda: sdk.spans() if len(sdk.spans()) == 2 else None)
    codes = sorted(str((s.attributes or {}).get("error.type")) for s in spans)
    assert codes == ["None", "rate_limited"]
    errors = only(scrape(url), "llm_sse_errors_total")
    assert errors == {(("code", "rate_limited"), ("protocol", "native"), ("stage", "admission")): 1}


def test_a_client_that_leaves_mid_stream_ends_a_cancelled_span(
    start_mount, fake_upstream, sdk
) -> None:
    url = start_mount()
    fake_upstream.push(openai_stream(["tick "] * 200, pace=0.02))
    run = read_stream(url + "/chat", params={"prompt": PROMPT}, headers=AUTH, stop_after=3)
    assert [f.event for f in run.frames][:2] == ["start", "delta"]
    [span] = wait_for(sdk.spans)
    assert span.attributes is not None
    assert span.attributes["gen_ai.response.finish_reasons"] == ("cancelled",)
    assert span.attributes["llm_sse.client_disconnected"] is True
    assert span.status.status_code.name == "UNSET"
    s = scrape(url)
    assert only(s, "llm_sse_streams_open") == {(("protocol", "native"),): 0}
    [(labels, count)] = only(s, "llm_sse_streams_total").items()
    assert dict(labels)["finish_reason"] == "cancelled" and count == 1


def test_no_prompt_token_or_key_appears_in_metrics_or_spans(
    start_mount, fake_upstream, sdk, caplog
) -> None:
    url = start_mount()
    fake_upstream.push(openai_stream(["secret answer"]))
    fake_upstream.push([Body(401, b'{"error": {"message": "bad key ' + API_KEY.encode() + b'"}}')])
    with caplog.at_level(logging.INFO, "llm_sse_mount.streams"):
        post_chat(url + "/chat", CHAT, headers=AUTH)
        httpx.post(url + "/chat", json=CHAT, headers=AUTH)
        httpx.post(url + "/chat", json=CHAT, headers={"Authorization": "Bearer wrong-" + TOKEN})
        spans = wait_for(lambda: sdk.spans() if len(sdk.spans()) == 3 else None)
    exposed = [httpx.get(url + "/metrics").text]
    for span in spans:
        exposed.append(json.dumps(dict(span.attributes or {}), default=str))
        exposed.append(str(span.status.description))
        exposed.extend(json.dumps(dict(e.attributes or {}), default=str) for e in span.events)
    exposed.append(json.dumps(sdk.metrics(), default=str))
    exposed.extend(r.getMessage() for r in caplog.records if r.name == "llm_sse_mount.streams")
    text = "\n".join(exposed)
    for secret in (PROMPT, "secret answer", TOKEN, API_KEY, "alice"):
        assert secret not in text, secret


def test_metrics_are_off_unless_switched_on(start_mount) -> None:
    url = start_mount(metrics=False)
    assert httpx.get(url + "/metrics").status_code == 404


def test_the_metrics_route_answers_a_wrong_method_in_the_mount_s_shape(start_mount) -> None:
    response = httpx.post(start_mount() + "/metrics")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_openmetrics_is_served_when_the_scraper_asks_for_it(start_mount) -> None:
    accept = "application/openmetrics-text; version=1.0.0"
    response = httpx.get(start_mount() + "/metrics", headers={"accept": accept})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_the_environment_switches_prometheus_on(fake_upstream, serve_app) -> None:
    mount = LLMMount.from_env(
        {
            "LLM_SSE_PROVIDER": "openai",
            "LLM_SSE_BASE_URL": fake_upstream.url + "/v1",
            "LLM_SSE_API_KEY": API_KEY,
            "LLM_SSE_MODEL": "m",
            "LLM_SSE_METRICS": "prometheus",
            "LLM_SSE_OTEL": "off",
        }
    )
    url = serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"
    fake_upstream.push(openai_stream(["hi"]))
    assert post_chat(url + "/chat", CHAT)[0].status_code == 200
    s = wait_for(lambda: (got := scrape(url)) and only(got, "llm_sse_streams_total") and got)
    [(labels, count)] = only(s, "llm_sse_streams_total").items()
    assert dict(labels)["model"] == "m" and count == 1


def test_retries_and_a_fallback_are_counted_and_on_the_span(
    start_mount, fake_upstream, sdk
) -> None:
    fallback = OpenAICompatible(
        base_url=fake_upstream.url + "/v1", api_key=API_KEY, default_model="m"
    )
    url = start_mount(retries=1, fallbacks=[fallback])
    busy = Body(503, b'{"error": {"message": "busy"}}', {"content-type": "application/json"})
    fake_upstream.push([busy])
    fake_upstream.push([busy])  # the main provider's retry
    fake_upstream.push(openai_stream(["ok"]))  # the fallback
    response, _ = post_chat(url + "/v1/chat/completions", {**CHAT, "stream": True}, AUTH)
    assert response.status_code == 200
    [span] = wait_for(sdk.spans)
    a = dict(span.attributes or {})
    assert a["llm_sse.upstream.retries"] == 2 and a["llm_sse.upstream.fallbacks"] == 1
    assert a["llm_sse.protocol"] == "openai"
    s = scrape(url)
    assert only(s, "llm_sse_upstream_retries_total") == {(("provider", "openai"),): 2}
    assert only(s, "llm_sse_upstream_fallbacks_total") == {(("provider", "openai"),): 1}
    [(labels, count)] = only(s, "llm_sse_streams_total").items()
    assert dict(labels)["protocol"] == "openai" and count == 1
    # Every attempt carried the same trace onward.
    traces = {r.headers["traceparent"].split("-")[1] for r in fake_upstream.requests}
    assert traces == {format(span.context.trace_id, "032x")}
