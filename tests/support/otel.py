"""The OpenTelemetry SDK configured as a host would, with in-memory exporters for tests::

sdk = OTelSDK()                      # a TracerProvider and a MeterProvider of their own
observer = OpenTelemetryObserver(tracer_provider=sdk.tracer_provider,
                                 meter_provider=sdk.meter_provider)
...
sdk.spans()                          # finished spans
sdk.points("gen_ai.client.operation.duration")   # [(attributes, data point)]
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["OTelSDK"]


class OTelSDK:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Every metric the reader holds now: name → [(attributes, data point)]."""
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        out.setdefault(metric.name, []).append((dict(point.attributes), point))
        return out

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        return self.metrics().get(name, [])

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
