"""Telemetry options of a mount, from its arguments or the environment, turned into the one
observer the core calls (and the registry ``GET /metrics`` serves).

The optional dependencies are imported here only when an option asks for them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.observe import NOOP, StreamObserver, combine
from ..errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .prometheus import PrometheusObserver

__all__ = ["Telemetry", "build_telemetry", "telemetry_env_overrides"]

_OFF = ("", "0", "false", "off", "no", "none")


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What a mount needs: the observer for the core, and the Prometheus side when on."""

    observer: StreamObserver = NOOP
    prometheus: PrometheusObserver | None = None


def _otel_available() -> bool:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


def build_telemetry(
    *,
    otel: bool | None = None,
    metrics: bool | CollectorRegistry | PrometheusObserver = False,
    log_format: str | None = None,
    models: Iterable[str] = (),
    providers: Iterable[str] = (),
    codes: Iterable[str] | None = None,
    principal_label: bool = False,
    principal_salt: bytes | None = None,
    observers: Sequence[StreamObserver] = (),
) -> Telemetry:
    """The mount's telemetry.

    ``otel``: ``None`` (default) uses OpenTelemetry when ``opentelemetry-api`` is installed
    (still nothing per stream until the host configures an SDK); ``True`` requires it.
    ``metrics``: ``True``, a ``CollectorRegistry`` of the host's, or a ready
    ``PrometheusObserver`` (e.g. with ``principal_label=True``) serves Prometheus metrics.
    ``log_format``: ``"text"`` or ``"json"`` writes one line per stream end (``None``: off).
    ``observers``: the host's own, called after these (an ``OpenTelemetryObserver`` among them
    replaces the default one, and goes first).
    """
    if otel is not False and not _otel_available():
        if otel:
            raise ConfigError(
                "otel=True needs opentelemetry-api (pip install 'llm_sse_mount[otel]')"
            )
        otel = False
    # Tracing goes first, so the others learn its trace id. The host's own observer (its
    # options, its providers) replaces the default one. A host that built one has imported
    # the module; otherwise it stays unimported unless OpenTelemetry is wanted.
    otel_module = sys.modules.get(f"{__package__}.otel")
    given = [
        o for o in observers if otel_module and isinstance(o, otel_module.OpenTelemetryObserver)
    ]
    own = [o for o in observers if o not in given]
    tracing: list[StreamObserver] = list(given)
    if otel is not False and not tracing:
        from .otel import OpenTelemetryObserver

        tracing = [OpenTelemetryObserver()]
    chosen: list[StreamObserver] = [*tracing]
    prometheus = None
    if metrics is not False:
        try:
            from .prometheus import PrometheusObserver
        except ImportError:
            raise ConfigError(
                "metrics=True needs prometheus_client (pip install 'llm_sse_mount[prometheus]')"
            ) from None
    if metrics is not False and isinstance(metrics, PrometheusObserver):  # the host's own
        prometheus = metrics.bounded(
            models=models, providers=providers, codes=None if codes is None else frozenset(codes)
        )
        chosen.append(prometheus)
    elif metrics is not False:
        prometheus = PrometheusObserver(
            registry=None if metrics is True else metrics,
            models=models,
            providers=providers,
            codes=None if codes is None else frozenset(codes),
            principal_label=principal_label,
            principal_salt=principal_salt,
        )
        chosen.append(prometheus)
    if log_format is not None:
        from .logs import LogObserver

        chosen.append(LogObserver(log_format))
    chosen.extend(own)
    return Telemetry(combine(chosen), prometheus)


def telemetry_env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments from ``LLM_SSE_METRICS`` (``prometheus`` or off),
    ``LLM_SSE_LOG_FORMAT`` (``text``/``json``) and ``LLM_SSE_OTEL`` (``on``/``off``)."""
    out: dict[str, Any] = {}
    metrics = environ.get("LLM_SSE_METRICS")
    if metrics is not None:
        value = metrics.strip().lower()
        if value == "prometheus":
            out["metrics"] = True
        elif value in _OFF:
            out["metrics"] = False
        else:
            raise ConfigError(f"LLM_SSE_METRICS must be 'prometheus' or 'off', got {metrics!r}")
    log_format = environ.get("LLM_SSE_LOG_FORMAT")
    if log_format:
        value = log_format.strip().lower()
        if value not in ("text", "json"):
            raise ConfigError(f"LLM_SSE_LOG_FORMAT must be 'text' or 'json', got {log_format!r}")
        out["log_format"] = value
    otel = environ.get("LLM_SSE_OTEL")
    if otel:
        value = otel.strip().lower()
        if value in ("on", "1", "true", "yes"):
            out["otel"] = True
        elif value in _OFF:
            out["otel"] = False
        elif value != "auto":
            raise ConfigError(f"LLM_SSE_OTEL must be 'on', 'off' or 'auto', got {otel!r}")
    return out
