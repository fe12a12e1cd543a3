"""One structured log line per stream end, to join logs with traces and metrics.

The line carries every field of the :class:`~llm_sse_mount.core.records.CompletionRecord`
(usage flattened to ``usage_*``; the stream id as ``stream``, the same digest the core's log
lines use, since the id itself grants reading the stream), the client protocol and the trace
id: the OpenTelemetry span's when there is one, else the incoming ``traceparent``'s, so the
line still joins the caller's trace when this process exports no spans. A refused request gets
a line too (``event`` is ``stream_refused``). Never a prompt, an answer or a key: the record
holds none.

``log_format="json"`` (or ``LLM_SSE_LOG_FORMAT=json``) writes one JSON object per line; the
default writes ``key=value`` pairs. Lines go to the ``llm_sse_mount.streams`` logger at INFO,
with the fields also under ``extra={"llm_sse": {...}}`` for handlers that format their own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ..core.observe import Observation, StreamStart
from ..errors import ConfigError, LLMSSEError
from ..events import StreamEvent
from ..redaction import log_id

if TYPE_CHECKING:
    from ..core.records import CompletionRecord

__all__ = ["LOG_FORMATS", "LogFormat", "LogObserver", "trace_id_from_headers"]

LogFormat = Literal["text", "json"]
LOG_FORMATS: frozenset[str] = frozenset(("text", "json"))

# W3C trace context: version "00", 32 hex trace id, 16 hex parent id, 2 hex flags.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id_from_headers(headers: Mapping[str, str]) -> str | None:
    """The trace id of a valid incoming ``traceparent``, else ``None``."""
    match = _TRACEPARENT.fullmatch(headers.get("traceparent", "").strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def _record_fields(record: CompletionRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name == "stream_id":
            # On an open mount the id is the capability to read the stream: logs carry the
            # digest the core's own log lines use.
            out["stream"] = log_id(value)
        elif f.name == "usage":
            for u in ("prompt_tokens", "completion_tokens", "total_tokens", "estimated"):
                out[f"usage_{u}"] = getattr(value, u, None) if value is not None else None
        elif isinstance(value, float):
            out[f.name] = round(value, 6)
        else:
            out[f.name] = value
    return out


class LogObserver:
    """Writes the stream-end line (see the module docstring)."""

    def __init__(self, log_format: str = "text", logger: logging.Logger | None = None) -> None:
        if log_format not in LOG_FORMATS:
            raise ConfigError(
                f"log_format must be one of {sorted(LOG_FORMATS)}, not {log_format!r}"
            )
        self.log_format: LogFormat = "json" if log_format == "json" else "text"
        self.logger = logger or logging.getLogger("llm_sse_mount.streams")

    def start(self, info: StreamStart) -> Observation:
        return _Stream(self, info)

    def write(self, fields: dict[str, Any]) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        if self.log_format == "json":
            line = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        else:
            line = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        self.logger.info(line, extra={"llm_sse": fields})


def _text_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # Quote what a key=value reader would split on.
    return (
        json.dumps(text, ensure_ascii=False) if (not text or re.search(r'[\s="]', text)) else text
    )


class _Stream:
    __slots__ = ("_owner", "_principal", "_protocol", "trace_id")

    upstream_headers: Mapping[str, str] = MappingProxyType({})
    wants_chunks = False

    def __init__(self, owner: LogObserver, info: StreamStart) -> None:
        self._owner = owner
        self._protocol = info.protocol
        self._principal: str | None = None
        self.trace_id = info.trace_id or trace_id_from_headers(info.headers)

    def refused(self, error: LLMSSEError) -> None:
        self._owner.write(
            {
                "event": "stream_refused",
                "protocol": self._protocol,
                "error_code": error.code,
                "status": error.status,
                "trace_id": self.trace_id,
            }
        )

    def admitted(self, principal: str | None) -> None:
        pass  # principal ids stay out of logs unless the host's on_complete writes them

    def opened(self, provider: str, model: str, *, retries: int = 0, fallbacks: int = 0) -> None:
        pass

    def first_chunk(self) -> None:
        pass

    def chunk(self, event: StreamEvent) -> None:
        pass

    def ended(self, record: CompletionRecord) -> None:
        fields: dict[str, Any] = {"event": "stream_end", "protocol": self._protocol}
        fields.update(_record_fields(record))
        fields["trace_id"] = self.trace_id
        self._owner.write(fields)
