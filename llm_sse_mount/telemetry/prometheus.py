"""Prometheus metrics through ``prometheus_client`` (extra ``prometheus``).

Switched on by ``metrics=True`` or ``LLM_SSE_METRICS=prometheus``; the mount then serves
``GET /metrics`` (text exposition format, or OpenMetrics when the scraper asks for it) from
a :class:`~prometheus_client.CollectorRegistry` of its own, unless the host passes one.

Every label value is bounded: models outside the allow-list, providers not configured and
codes outside the catalogue all read ``"other"``. A principal appears only when the host opts
in, and then only as a salted hash. No prompt, answer, token or key is ever a label.

============================================  =========  ===================================
metric                                        type       labels
============================================  =========  ===================================
``llm_sse_streams_total``                     counter    protocol, provider, model,
                                                         finish_reason (+ principal)
``llm_sse_errors_total``                      counter    protocol, stage, code
``llm_sse_time_to_first_token_seconds``       histogram  protocol, provider, model
``llm_sse_stream_duration_seconds``           histogram  protocol, provider, model
``llm_sse_tokens_total``                      counter    provider, model, type (+ principal)
``llm_sse_streams_open``                      gauge      protocol
``llm_sse_upstream_retries_total``            counter    provider
``llm_sse_upstream_fallbacks_total``          counter    provider
============================================  =========  ===================================

``stage`` is ``admission`` (refused at the door: 401, 403, 429, ...), ``upstream`` (the
upstream failed before the first frame) or ``stream`` (an ``error`` frame after it).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.asgi import make_asgi_app
from starlette.types import Receive, Scope, Send

from ..core.observe import Observation, StreamStart
from ..errors import LLMSSEError
from ..events import FINISH_REASONS, StreamEvent

if TYPE_CHECKING:
    from ..core.records import CompletionRecord

__all__ = ["MetricsApp", "PrometheusObserver"]

OTHER = "other"
#: Seconds; the same doubling ladder as the OpenTelemetry GenAI conventions advise.
SECOND_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                  40.96, 81.92, 163.84, 327.68)  # fmt: skip
# What an error code of ours looks like; anything else is not from the catalogue.
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")


class PrometheusObserver:
    """Counts streams into ``registry`` (a new one unless given).

    ``models`` and ``providers`` are the label values allowed (the mount passes its
    allow-list and its providers); ``codes`` the error catalogue (``None``: any code shaped
    like ours). ``principal_label=True`` adds a ``principal`` label to the stream and token
    counters: the first 16 hex digits of SHA-256 over ``principal_salt`` and the id (a random
    salt per process unless given; pass one to keep the hashes stable across restarts and
    workers).
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        models: Iterable[str] = (),
        providers: Iterable[str] = (),
        codes: Collection[str] | None = None,
        principal_label: bool = False,
        principal_salt: bytes | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.models = frozenset(models)
        self.providers = frozenset(providers)
        self.codes = None if codes is None else frozenset(codes)
        self.principal_label = principal_label
        self._salt = principal_salt if principal_salt is not None else secrets.token_bytes(16)
        who = ("principal",) if principal_label else ()
        r = self.registry
        self.streams = Counter(
            "llm_sse_streams",
            "Streams that ended, by how they ended.",
            ("protocol", "provider", "model", "finish_reason", *who),
            registry=r,
        )
        self.errors = Counter(
            "llm_sse_errors",
            "Failures by stable error code and where they happened.",
            ("protocol", "stage", "code"),
            registry=r,
        )
        self.ttft = Histogram(
            "llm_sse_time_to_first_token_seconds",
            "Seconds from the request to the first answer chunk.",
            ("protocol", "provider", "model"),
            buckets=SECOND_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "llm_sse_stream_duration_seconds",
            "Seconds from the request to the end of the stream.",
            ("protocol", "provider", "model"),
            buckets=SECOND_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "llm_sse_tokens",
            "Tokens used, as the upstream reported them (or estimated).",
            ("provider", "model", "type", *who),
            registry=r,
        )
        self.open = Gauge(
            "llm_sse_streams_open", "Streams being relayed now.", ("protocol",), registry=r
        )
        self.retries = Counter(
            "llm_sse_upstream_retries",
            "Upstream attempts that failed and were retried.",
            ("provider",),
            registry=r,
        )
        self.fallbacks = Counter(
            "llm_sse_upstream_fallbacks",
            "Streams served by a fallback provider (labelled with the one that served).",
            ("provider",),
            registry=r,
        )

    def bounded(
        self, *, models: Iterable[str], providers: Iterable[str], codes: Collection[str] | None
    ) -> PrometheusObserver:
        """Fill in the label bounds this observer was built without (the mount passes its
        allow-list, providers and catalogue when a host hands it a ready observer)."""
        if not self.models:
            self.models = frozenset(models)
        if not self.providers:
            self.providers = frozenset(providers)
        if self.codes is None and codes is not None:
            self.codes = frozenset(codes)
        return self

    # --- bounded label values ----------------------------------------------------------------

    def model_label(self, model: str) -> str:
        return model if model in self.models else OTHER

    def provider_label(self, provider: str) -> str:
        return provider if provider in self.providers else OTHER

    def code_label(self, code: str) -> str:
        if self.codes is not None:
            return code if code in self.codes else OTHER
        return code if _CODE.fullmatch(code) else OTHER

    def principal_hash(self, principal: str | None) -> str:
        if principal is None:
            return ""
        return hashlib.sha256(self._salt + principal.encode()).hexdigest()[:16]

    def start(self, info: StreamStart) -> Observation:
        return _Stream(self, info)


class _Stream:
    """One stream's metric points."""

    __slots__ = ("_m", "_open", "_principal", "_protocol", "_started", "_ttft", "trace_id")

    upstream_headers: Mapping[str, str] = MappingProxyType({})
    wants_chunks = False

    def __init__(self, owner: PrometheusObserver, info: StreamStart) -> None:
        self._m = owner
        self._started = time.perf_counter()
        self._protocol = info.protocol
        self._principal = ""
        self._open = False
        self._ttft: float | None = None
        self.trace_id: str | None = None

    def refused(self, error: LLMSSEError) -> None:
        m = self._m
        m.errors.labels(self._protocol, "admission", m.code_label(error.code)).inc()

    def admitted(self, principal: str | None) -> None:
        if self._m.principal_label:
            self._principal = self._m.principal_hash(principal)

    def opened(self, provider: str, model: str, *, retries: int = 0, fallbacks: int = 0) -> None:
        m = self._m
        self._open = True
        m.open.labels(self._protocol).inc()
        label = m.provider_label(provider)
        if retries:
            m.retries.labels(label).inc(retries)
        if fallbacks:
            m.fallbacks.labels(label).inc()

    def first_chunk(self) -> None:
        # Observed at the end, when the record names the provider and model that served.
        self._ttft = time.perf_counter() - self._started

    def chunk(self, event: StreamEvent) -> None:
        pass

    def ended(self, record: CompletionRecord) -> None:
        m, protocol = self._m, self._protocol
        duration = time.perf_counter() - self._started
        provider, model = m.provider_label(record.provider), m.model_label(record.model)
        if self._open:
            m.open.labels(protocol).dec()
        reason = record.finish_reason if record.finish_reason in FINISH_REASONS else OTHER
        who = (self._principal,) if m.principal_label else ()
        m.streams.labels(protocol, provider, model, reason, *who).inc()
        if record.error_code:
            stage = "stream" if record.frames else "upstream"
            m.errors.labels(protocol, stage, m.code_label(record.error_code)).inc()
        if self._ttft is not None:
            m.ttft.labels(protocol, provider, model).observe(self._ttft)
        m.duration.labels(protocol, provider, model).observe(duration)
        usage = record.usage
        if usage is not None:
            m.tokens.labels(provider, model, "input", *who).inc(usage.prompt_tokens)
            m.tokens.labels(provider, model, "output", *who).inc(usage.completion_tokens)


class MetricsApp:
    """``GET /metrics``: ``prometheus_client``'s own ASGI exposition of one registry (content
    negotiation for OpenMetrics, gzip when asked)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._app = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
