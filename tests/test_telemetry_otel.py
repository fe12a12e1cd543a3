"""The OpenTelemetry observer against the real SDK (in-memory exporter and reader), one module
under test: the steps are called the way the core calls them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from llm_sse_mount import ChatRequest, CompletionRecord, Message, RateLimited, TextDelta, Usage
from llm_sse_mount.core.observe import NOOP, StreamStart
from llm_sse_mount.core.serving import log_id
from llm_sse_mount.telemetry.otel import SEMCONV_VERSION, OpenTelemetryObserver

from .support.otel import OTelSDK

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{PARENT_TRACE}-00f067aa0ba902b7-01"
SECRET_PROMPT = "my password is hunter2"


@pytest.fixture
def sdk() -> Iterator[OTelSDK]:
    sdk = OTelSDK()
    yield sdk
    sdk.shutdown()


def observer(sdk: OTelSDK, **kwargs: object) -> OpenTelemetryObserver:
    return OpenTelemetryObserver(
        tracer_provider=sdk.tracer_provider,
        meter_provider=sdk.meter_provider,
        **kwargs,  # type: ignore[arg-type]
    )


def start(headers: dict[str, str] | None = None) -> StreamStart:
    chat = ChatRequest(
        messages=(Message("system", "be brief"), Message("user", SECRET_PROMPT)),
        model="glm-4-flash",
        temperature=0.3,
        top_p=0.9,
        max_tokens=64,
        stop=("END",),
    )
    return StreamStart(chat, "native", provider="zhipu", headers=headers or {})


def record(**overrides: object) -> CompletionRecord:
    fields: dict[str, object] = {
        "stream_id": "s1",
        "model": "glm-4-flash",
        "provider": "zhipu",
        "finish_reason": "stop",
        "usage": Usage(12, 30, 42),
        "time_to_first_token": 0.05,
        "duration": 0.2,
        "error_code": None,
        "client_disconnected": False,
        "frames": 6,
    }
    fields.update(overrides)
    return CompletionRecord(**fields)  # type: ignore[arg-type]


def run_good_stream(obs: OpenTelemetryObserver, headers: dict[str, str] | None = None) -> object:
    o = obs.start(start(headers))
    o.admitted("alice")
    o.opened("zhipu", "glm-4-flash", retries=1, fallbacks=0)
    o.first_chunk()
    for text in ("Hel", "lo", "!"):
        if o.wants_chunks:
            o.chunk(TextDelta(text))
    o.ended(record())
    return o


def test_a_good_stream_is_one_client_span_named_after_the_conventions(sdk: OTelSDK) -> None:
    run_good_stream(observer(sdk))
    [span] = sdk.spans()
    assert span.name == "chat glm-4-flash"
    assert span.kind is SpanKind.CLIENT
    a = dict(span.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "zhipu"
    assert a["gen_ai.request.model"] == "glm-4-flash"
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.stop_sequences"] == ("END",)
    assert a["gen_ai.response.model"] == "glm-4-flash"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 30
    assert a["gen_ai.response.time_to_first_chunk"] >= 0
    assert a["llm_sse.upstream.retries"] == 1
    assert a["llm_sse.stream"] == log_id("s1")  # the digest, never the id itself
    assert "error.type" not in a
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.schema_url.endswith("/1.41.0")


def test_no_prompt_or_answer_text_unless_the_host_opts_in(sdk: OTelSDK) -> None:
    run_good_stream(observer(sdk))
    [span] = sdk.spans()
    dumped = json.dumps(dict(span.attributes or {}), default=str)
    assert SECRET_PROMPT not in dumped and "Hello" not in dumped and "alice" not in dumped


def test_opted_in_content_follows_the_message_shape(sdk: OTelSDK) -> None:
    run_good_stream(observer(sdk, capture_content=True))
    [span] = sdk.spans()
    a = dict(span.attributes or {})
    assert json.loads(str(a["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": SECRET_PROMPT}]}
    ]
    assert json.loads(str(a["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "be brief"}
    ]
    assert json.loads(str(a["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello!"}],
            "finish_reason": "stop",
        }
    ]


def test_the_span_continues_the_incoming_traceparent_and_hands_it_upstream(sdk: OTelSDK) -> None:
    o = run_good_stream(observer(sdk), {"traceparent": TRACEPARENT})
    [span] = sdk.spans()
    assert format(span.context.trace_id, "032x") == PARENT_TRACE
    assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    outgoing = o.upstream_headers["traceparent"]  # type: ignore[attr-defined]
    assert outgoing.split("-")[1] == PARENT_TRACE
    assert outgoing.split("-")[2] == format(span.context.span_id, "016x")
    assert o.trace_id == PARENT_TRACE  # type: ignore[attr-defined]


def test_an_upstream_failure_sets_error_type_to_our_code(sdk: OTelSDK) -> None:
    o = observer(sdk).start(start())
    o.admitted(None)
    o.ended(record(finish_reason="error", usage=None, error_code="upstream_error", frames=0))
    [span] = sdk.spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "upstream_error"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("error",)
    assert span.status.status_code is StatusCode.ERROR
    [(attrs, point)] = sdk.points("gen_ai.client.operation.duration")
    assert attrs["error.type"] == "upstream_error" and point.count == 1
    assert sdk.points("gen_ai.client.token.usage") == []


def test_a_refused_request_ends_its_span_with_the_refusal_code(sdk: OTelSDK) -> None:
    o = observer(sdk).start(start())
    o.refused(RateLimited("slow down"))
    [span] = sdk.spans()
    assert span.attributes is not None and span.attributes["error.type"] == "rate_limited"
    assert span.status.status_code is StatusCode.ERROR
    assert "slow down" not in (span.status.description or "")


def test_a_client_that_left_is_cancelled_not_an_error(sdk: OTelSDK) -> None:
    o = observer(sdk).start(start())
    o.opened("zhipu", "glm-4-flash")
    o.first_chunk()
    o.ended(record(finish_reason="cancelled", usage=None, client_disconnected=True))
    [span] = sdk.spans()
    assert span.attributes is not None
    assert span.attributes["gen_ai.response.finish_reasons"] == ("cancelled",)
    assert span.attributes["llm_sse.client_disconnected"] is True
    assert span.status.status_code is StatusCode.UNSET
    [(_, point)] = sdk.points("llm_sse.streams.open")
    assert point.value == 0  # up on opened, down on ended


def test_metrics_follow_the_conventions(sdk: OTelSDK) -> None:
    run_good_stream(observer(sdk, chunk_timing=True))
    m = sdk.metrics()
    [(attrs, duration)] = m["gen_ai.client.operation.duration"]
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "zhipu",
        "gen_ai.request.model": "glm-4-flash",
        "gen_ai.response.model": "glm-4-flash",
    }
    assert duration.count == 1
    assert list(duration.explicit_bounds)[:3] == [0.01, 0.02, 0.04]
    tokens = {a["gen_ai.token.type"]: p.sum for a, p in m["gen_ai.client.token.usage"]}
    assert tokens == {"input": 12, "output": 30}
    [(_, ttfc)] = m["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc.count == 1
    [(_, per_chunk)] = m["gen_ai.client.operation.time_per_output_chunk"]
    assert per_chunk.count == 2  # three chunks: one gap after each chunk but the first


def test_estimated_usage_is_not_reported_as_billable(sdk: OTelSDK) -> None:
    o = observer(sdk).start(start())
    o.opened("zhipu", "glm-4-flash")
    o.ended(record(usage=Usage(1, 2, 3, estimated=True)))
    [span] = sdk.spans()
    assert span.attributes is not None and "gen_ai.usage.input_tokens" not in span.attributes
    assert sdk.points("gen_ai.client.token.usage") == []


def test_without_chunk_timing_no_per_chunk_work_is_asked_for(sdk: OTelSDK) -> None:
    o = observer(sdk).start(start())  # the default: the per-chunk histogram costs per token
    assert o.wants_chunks is False
    assert observer(sdk, chunk_timing=True).start(start()).wants_chunks is True
    assert observer(sdk, capture_content=True).start(start()).wants_chunks is True


def test_without_an_sdk_every_stream_gets_the_shared_noop() -> None:
    # The API's own default providers (proxies): the process has configured no SDK.
    o = OpenTelemetryObserver().start(start())
    assert o is NOOP.start(start())


def test_an_sdk_the_host_sets_globally_is_used() -> None:
    # The global providers can be set once per process: prove it in a child process.
    code = f"""
from opentelemetry import trace, metrics
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from llm_sse_mount import ChatRequest, Message, Unauthorized
from llm_sse_mount.core.observe import StreamStart
from llm_sse_mount.telemetry.otel import OpenTelemetryObserver
observer = OpenTelemetryObserver()   # built before the host configures the SDK
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
o = observer.start(StreamStart(ChatRequest((Message("user", "hi"),), "m"), "native", "p",
                               {{"traceparent": "{TRACEPARENT}"}}))
o.refused(Unauthorized("no"))
print(exporter.get_finished_spans()[0].name, o.upstream_headers["traceparent"][3:35])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["chat", "m", PARENT_TRACE]


def test_the_docs_name_the_version_followed() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "observability.md").read_text()
    assert f"v{SEMCONV_VERSION}" in doc
