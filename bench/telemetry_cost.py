"""What telemetry costs, per stream and per token, on and off.

``python -m bench.telemetry_cost`` drives each observer through the steps the core calls
(start, admitted, opened, first_chunk, a chunk per token, ended) in one process and prints the
CPU time per stream (without the tokens) and per token. The OpenTelemetry SDK is configured as
a host would (a real ``TracerProvider`` and ``MeterProvider``), exporting to nowhere so that
only the instrumentation is measured, not an exporter.

The relay's own cost when telemetry is off is the no-op row: one call per step, and per token
a single ``is None`` test the producer makes (it reads ``wants_chunks`` once per stream).
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from llm_sse_mount import ChatRequest, CompletionRecord, Message, TextDelta, Usage
from llm_sse_mount.core.observe import NOOP, StreamObserver, StreamStart, combine
from llm_sse_mount.telemetry.logs import LogObserver
from llm_sse_mount.telemetry.otel import OpenTelemetryObserver
from llm_sse_mount.telemetry.prometheus import PrometheusObserver

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _otel(chunk_timing: bool = False) -> OpenTelemetryObserver:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(_Drop()))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return OpenTelemetryObserver(tracer_provider=tp, meter_provider=mp, chunk_timing=chunk_timing)


def _logs() -> LogObserver:
    logger = logging.getLogger("bench.telemetry")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers[:] = [logging.StreamHandler(io.StringIO())]
    return LogObserver("json", logger)


def _prometheus() -> PrometheusObserver:
    return PrometheusObserver(models=["m"], providers=["openai"])


OBSERVERS: dict[str, Callable[[], StreamObserver]] = {
    "off (no-op)": lambda: NOOP,
    "opentelemetry": _otel,
    "opentelemetry, chunk_timing=True": lambda: _otel(chunk_timing=True),
    "prometheus": _prometheus,
    "json log line": _logs,
    "all three": lambda: combine([_otel(), _prometheus(), _logs()]),
}

INFO = StreamStart(
    ChatRequest((Message("user", "hello"),), "m", temperature=0.2),
    "native",
    "openai",
    {"traceparent": TRACEPARENT},
)
RECORD = CompletionRecord("s", "m", "openai", "stop", Usage(5, 64, 69), 0.1, 1.3, None, False, 67)
TOKEN = TextDelta("tok ")


def _stream(observer: StreamObserver, tokens: int) -> None:
    o = observer.start(INFO)
    o.admitted("alice")
    o.opened("openai", "m")
    o.first_chunk()
    chunk = o.chunk if o.wants_chunks else None  # as the producer does
    for _ in range(tokens):
        if chunk is not None:
            chunk(TOKEN)
    o.ended(RECORD)


def measure(observer: StreamObserver, streams: int, tokens: int) -> tuple[float, float]:
    """(µs of CPU per stream without tokens, µs per token)."""
    _stream(observer, tokens)  # warm up (first-stream setup)
    t0 = time.process_time()
    for _ in range(streams):
        _stream(observer, 0)
    per_stream = (time.process_time() - t0) / streams
    t0 = time.process_time()
    for _ in range(streams):
        _stream(observer, tokens)
    per_token = ((time.process_time() - t0) / streams - per_stream) / tokens
    return per_stream * 1e6, max(per_token, 0.0) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    print(f"{args.streams} streams of {args.tokens} tokens, CPU time (process_time)\n")
    print("| observer | µs per stream | µs per token |")
    print("|---|---:|---:|")
    for name, make in OBSERVERS.items():
        per_stream, per_token = measure(make(), args.streams, args.tokens)
        print(f"| {name} | {per_stream:.1f} | {per_token:.2f} |")


if __name__ == "__main__":
    main()
