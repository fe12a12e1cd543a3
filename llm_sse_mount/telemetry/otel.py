"""OpenTelemetry traces and metrics, through ``opentelemetry-api`` only (extra ``otel``).

The host configures the SDK, exporters and the global propagator, as for any instrumented
library; this module only calls the API. Without a configured SDK (the API's proxy or no-op
providers) every stream gets the shared no-op observation: nothing is built or recorded.

Names follow the GenAI semantic conventions of semantic-conventions **v1.41.1**, the last
release that carried them before they moved to ``open-telemetry/semantic-conventions-genai``
(which has no release yet; its unreleased changes replace ``gen_ai.client.token.usage``).
See ``docs/observability.md`` for the tables.

One span per stream, ``chat {gen_ai.request.model}``, kind ``CLIENT``: the relay is the client
of the model. Its parent is the current span when the host's own HTTP instrumentation made
one, else the incoming ``traceparent``. The upstream request carries the span's context on
(W3C trace context through the global propagator). Prompt and answer text are recorded only
when the host opts in (``capture_content=True`` or the conventional environment variable
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..core.observe import NOOP, Observation, StreamStart
from ..errors import LLMSSEError
from ..events import StreamEvent, TextDelta
from ..redaction import log_id

if TYPE_CHECKING:
    from ..core.records import CompletionRecord

__all__ = ["SEMCONV_VERSION", "OpenTelemetryObserver"]

#: The semantic-conventions release whose GenAI names this module emits.
SEMCONV_VERSION = "1.41.1"
#: The newest published schema at or before that release (patch releases publish none).
SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"
#: The conventions' advisory buckets for durations (seconds) and token counts.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_NAME = "llm_sse_mount"


def _version() -> str:
    try:
        return metadata.version(_NAME)
    except metadata.PackageNotFoundError:
        return "0"


def _sdk_configured(tracer_provider: object, meter_provider: object) -> tuple[bool, bool]:
    """Whether a real SDK sits behind each provider (the API's defaults are proxies that
    stay no-ops until the host sets one)."""
    tracing = not isinstance(tracer_provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
    meter_kind = type(meter_provider).__name__
    metering = not isinstance(meter_provider, metrics.NoOpMeterProvider) and meter_kind not in (
        "_ProxyMeterProvider",
    )
    return tracing, metering


class _Instruments:
    """The meter's instruments, made once per observer."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of the response stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.per_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_per_output_chunk",
            unit="s",
            description="Time between two output chunks, for each chunk after the first.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        # Not in the conventions: the relay's own gauge of streams in flight.
        self.open = meter.create_up_down_counter(
            "llm_sse.streams.open", unit="{stream}", description="Streams being relayed now."
        )


class OpenTelemetryObserver:
    """Spans and metrics per stream, via the global (or the given) OpenTelemetry providers.

    ``capture_content``: put the conversation and the answer on the span
    (``gen_ai.input.messages``, ``gen_ai.system_instructions``, ``gen_ai.output.messages``);
    ``None`` reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``. ``chunk_timing=True``:
    record ``gen_ai.client.operation.time_per_output_chunk``, one histogram point per chunk.
    It is off by default: the SDK spends about 20 µs of CPU on each point, some 10 % of the
    relay's own CPU per token (``python -m bench.telemetry_cost``).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        capture_content: bool | None = None,
        chunk_timing: bool = False,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        if capture_content is None:
            capture_content = os.environ.get(CAPTURE_ENV, "").strip().lower() == "true"
        self.capture_content = capture_content
        self.chunk_timing = chunk_timing
        self._tracer: trace.Tracer | None = None
        self._instruments: _Instruments | None = None
        self._enabled: tuple[bool, bool] | None = None

    def _setup(self) -> tuple[bool, bool]:
        """Look the providers up on the first stream: a host may configure the SDK after
        building the mount, but before serving."""
        tp = self._tracer_provider or trace.get_tracer_provider()
        mp = self._meter_provider or metrics.get_meter_provider()
        tracing, metering = _sdk_configured(tp, mp)
        if tracing:
            self._tracer = trace.get_tracer(
                _NAME, _version(), tracer_provider=tp, schema_url=SCHEMA_URL
            )
        if metering:
            meter = mp.get_meter(_NAME, _version(), schema_url=SCHEMA_URL)
            self._instruments = _Instruments(meter)
        return tracing, metering

    def start(self, info: StreamStart) -> Observation:
        if self._enabled is None:
            self._enabled = self._setup()
        if self._enabled == (False, False):
            return NOOP.start(info)
        return _Stream(self, info)


def _request_attributes(info: StreamStart) -> dict[str, Any]:
    req = info.request
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": info.provider,
        "gen_ai.request.model": req.model,
        "gen_ai.request.stream": True,  # the relay always streams from the upstream
        "llm_sse.protocol": info.protocol,
    }
    if req.temperature is not None:
        attrs["gen_ai.request.temperature"] = req.temperature
    if req.top_p is not None:
        attrs["gen_ai.request.top_p"] = req.top_p
    if req.max_tokens is not None:
        attrs["gen_ai.request.max_tokens"] = req.max_tokens
    if req.stop:
        attrs["gen_ai.request.stop_sequences"] = list(req.stop)
    return attrs


def _content_attributes(info: StreamStart) -> dict[str, str]:
    """The opt-in conversation, in the conventions' JSON message shape."""
    system = [
        {"type": "text", "content": m.content} for m in info.request.messages if m.role == "system"
    ]
    messages = [
        {"role": m.role, "parts": [{"type": "text", "content": m.content}]}
        for m in info.request.messages
        if m.role != "system"
    ]
    attrs = {"gen_ai.input.messages": json.dumps(messages, ensure_ascii=False)}
    if system:
        attrs["gen_ai.system_instructions"] = json.dumps(system, ensure_ascii=False)
    return attrs


class _Stream:
    """One stream's span and metric points."""

    __slots__ = (
        "_attrs",
        "_chunk_timing",
        "_inst",
        "_last_chunk",
        "_open",
        "_output",
        "_span",
        "_started",
        "capture",
        "trace_id",
        "upstream_headers",
        "wants_chunks",
    )

    def __init__(self, owner: OpenTelemetryObserver, info: StreamStart) -> None:
        self._started = time.perf_counter()
        self._inst = owner._instruments
        self.capture = owner.capture_content
        self._attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": info.provider,
            "gen_ai.request.model": info.request.model,
        }
        self._last_chunk: float | None = None
        self._open = False
        self._output: list[str] | None = [] if self.capture else None
        # Per-chunk timing is opt-in (a histogram point per token): capturing the answer's
        # text must not switch it on too.
        self._chunk_timing = owner.chunk_timing and self._inst is not None
        self.wants_chunks = self.capture or self._chunk_timing
        self.upstream_headers: Mapping[str, str] = {}
        self.trace_id: str | None = None
        self._span: trace.Span | None = None
        if owner._tracer is None:
            return
        # The host's HTTP instrumentation may already have made a server span for this
        # request; otherwise continue the caller's trace from its headers.
        parent = None if trace.get_current_span().get_span_context().is_valid else (
            propagate.extract(info.headers)
        )  # fmt: skip
        attrs = _request_attributes(info)
        if self.capture:
            attrs.update(_content_attributes(info))
        span = owner._tracer.start_span(
            f"chat {info.request.model}", context=parent, kind=SpanKind.CLIENT, attributes=attrs
        )
        self._span = span
        ctx = span.get_span_context()
        if ctx.is_valid:
            self.trace_id = trace.format_trace_id(ctx.trace_id)
            headers: dict[str, str] = {}
            propagate.inject(headers, context=trace.set_span_in_context(span))
            self.upstream_headers = headers

    # --- the steps ---------------------------------------------------------------------------

    def refused(self, error: LLMSSEError) -> None:
        self._finish(error.code, None, ())

    def admitted(self, principal: str | None) -> None:
        pass  # principals stay out of traces: an id is personal data the host did not ask for

    def opened(self, provider: str, model: str, *, retries: int = 0, fallbacks: int = 0) -> None:
        self._attrs["gen_ai.provider.name"] = provider
        self._attrs["gen_ai.response.model"] = model
        if self._span is not None:
            self._span.set_attributes(
                {
                    "gen_ai.provider.name": provider,
                    "gen_ai.response.model": model,
                    "llm_sse.upstream.retries": retries,
                    "llm_sse.upstream.fallbacks": fallbacks,
                }
            )
        if self._inst is not None:
            self._open = True
            self._inst.open.add(1, self._attrs)

    def first_chunk(self) -> None:
        ttfc = time.perf_counter() - self._started
        if self._span is not None:
            self._span.set_attribute("gen_ai.response.time_to_first_chunk", ttfc)
        if self._inst is not None:
            self._inst.first_chunk.record(ttfc, self._attrs)

    def chunk(self, event: StreamEvent) -> None:
        if self._output is not None and type(event) is TextDelta:
            self._output.append(event.text)
        if not self._chunk_timing or self._inst is None:
            return
        now = time.perf_counter()
        if self._last_chunk is not None:
            self._inst.per_chunk.record(now - self._last_chunk, self._attrs)
        self._last_chunk = now

    def ended(self, record: CompletionRecord) -> None:
        self._finish(record.error_code, record, (record.finish_reason,))

    def _finish(
        self, error: str | None, record: CompletionRecord | None, reasons: tuple[str, ...]
    ) -> None:
        duration = time.perf_counter() - self._started
        attrs = dict(self._attrs)
        if error:
            attrs["error.type"] = error
        usage = record.usage if record is not None else None
        # Estimated counts are not the upstream's figure: the conventions want billable
        # tokens or nothing.
        counted = usage is not None and not usage.estimated
        span = self._span
        if span is not None:
            span_attrs: dict[str, Any] = {}
            if reasons:
                span_attrs["gen_ai.response.finish_reasons"] = list(reasons)
            if error:
                span_attrs["error.type"] = error
            if record is not None:
                # The digest the logs use: the id itself grants reading the stream.
                span_attrs["llm_sse.stream"] = log_id(record.stream_id)
                span_attrs["llm_sse.client_disconnected"] = record.client_disconnected
                span_attrs["llm_sse.frames"] = record.frames
            if usage is not None and counted:
                span_attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
                span_attrs["gen_ai.usage.output_tokens"] = usage.completion_tokens
            if self._output is not None and record is not None:
                span_attrs["gen_ai.output.messages"] = json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "".join(self._output)}],
                            "finish_reason": record.finish_reason,
                        }
                    ],
                    ensure_ascii=False,
                )
            span.set_attributes(span_attrs)
            if error:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end()
        inst = self._inst
        if inst is None:
            return
        if self._open:
            inst.open.add(-1, self._attrs)
        inst.duration.record(duration, attrs)
        if usage is not None and counted:
            inst.tokens.record(usage.prompt_tokens, {**self._attrs, "gen_ai.token.type": "input"})
            inst.tokens.record(
                usage.completion_tokens, {**self._attrs, "gen_ai.token.type": "output"}
            )
