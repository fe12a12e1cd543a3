"""Google's Gemini API (``generativelanguage.googleapis.com``), its native streaming endpoint.

``POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`` with the key in the
``x-goog-api-key`` header (never in the URL, where proxies and access logs would keep it).
The request body is built by :mod:`.gemini_request` (its docstring has that table). Each SSE
``data:`` line is one ``GenerateContentResponse``; the body simply ends (there is no end
marker), so the finish reason and usage are emitted when it does.

The answer, chunk by chunk (shapes from google-genai's ``types.py``):

=======================================  ===============================================
Gemini                                   normalized event
=======================================  ===============================================
``candidates[0].content.parts[].text``   ``TextDelta``
the same with ``thought: true``          ``ReasoningDelta`` (needs ``includeThoughts``)
``parts[].functionCall {id?, name,       ``ToolCallDelta`` with the whole ``args`` as
args}``                                  compact JSON; an id is made up when absent
``usageMetadata`` (cumulative)           one ``Usage`` at the end: ``promptTokenCount``,
                                         ``candidatesTokenCount + thoughtsTokenCount``,
                                         ``totalTokenCount``
``promptFeedback.blockReason``           ``Finish("content_filter")``
``{"error": {...}}`` as a data line      an ``UpstreamError`` (mapping below)
=======================================  ===============================================

``finishReason``: ``STOP`` → ``stop`` (``tool_calls`` when the answer called a function),
``MAX_TOKENS`` → ``length``; ``SAFETY``, ``RECITATION``, ``LANGUAGE``, ``BLOCKLIST``,
``PROHIBITED_CONTENT``, ``SPII``, ``IMAGE_SAFETY``, ``IMAGE_PROHIBITED_CONTENT``,
``IMAGE_RECITATION`` → ``content_filter``; ``MALFORMED_FUNCTION_CALL``,
``UNEXPECTED_TOOL_CALL``, ``TOO_MANY_TOOL_CALLS`` → an ``upstream_bad_response`` error (the
model's call cannot be run); anything else (``OTHER``, ``FINISH_REASON_UNSPECIFIED``, new
values) → ``stop``.

Google's error bodies ``{"error": {"code", "message", "status", "details"}}`` are read by their
``status``, which is more precise than the HTTP code:

========================================================  ======  ===========================
``error.status``                                          as      code
========================================================  ======  ===========================
``INVALID_ARGUMENT``, ``FAILED_PRECONDITION``,            400     ``upstream_rejected``
``OUT_OF_RANGE``
``UNAUTHENTICATED``, ``PERMISSION_DENIED``                502     ``upstream_auth``
``NOT_FOUND``                                             502     ``upstream_not_found``
``RESOURCE_EXHAUSTED``                                    429     ``upstream_rate_limited``
``UNAVAILABLE``, ``ABORTED``                              503     ``upstream_overloaded``
``DEADLINE_EXCEEDED``                                     504     ``upstream_timeout``
``INTERNAL``, ``UNKNOWN``, others                         502     ``upstream_error``
========================================================  ======  ===========================

A ``google.rpc.RetryInfo`` detail (``"retryDelay": "36s"``) becomes the ``Retry-After``.
Not supported: Vertex AI's streamed ``partialArgs`` (the Gemini API does not send them),
candidates beyond the first, non-text parts (images, code execution results are dropped).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import UpstreamError
from ..events import Finish, FinishReason, ProviderEvent, ReasoningDelta, TextDelta, Usage
from ..request import ChatRequest
from ..sse_decoder import ServerSentEvent
from .gemini_request import build_gemini_body, gemini_capabilities
from .http import (
    SSEUpstream,
    incomplete_unless,
    json_object,
    open_event_stream,
    parse_retry_after,
    status_error,
)
from .tool_calls import ToolCallAssembler

__all__ = ["GEMINI_BASE_URL", "Gemini", "GeminiStreamParser", "google_error"]

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"

_FILTERED = frozenset(
    (
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    )
)
_BAD_CALL = frozenset(("MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"))
#: google.rpc status → the HTTP status whose mapping it gets (see ``http.status_error``).
_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "ABORTED": 503,
    "DEADLINE_EXCEEDED": 504,
}


def _retry_delay(err: Mapping[str, Any]) -> float | None:
    details = err.get("details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                return parse_retry_after(delay[:-1])
    return None


def google_error(
    payload: Any, http_status: int | None = None, retry_after: float | None = None
) -> UpstreamError | None:
    """A Google error body as the client-facing error; ``None`` if it is not one."""
    if isinstance(payload, list) and payload:  # the non-SSE stream wraps it in an array
        payload = payload[0]
    err = payload.get("error") if isinstance(payload, Mapping) else None
    if not isinstance(err, Mapping):
        return None
    name = str(err.get("status") or "")
    status = _STATUS.get(name) or http_status or 500
    if status < 400:
        status = 500
    message = str(err.get("message") or "") or None
    return status_error(status, message, name or None, _retry_delay(err) or retry_after)


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, Mapping):
        return None
    prompt = meta.get("promptTokenCount")
    if not isinstance(prompt, int):
        return None

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) else 0

    # Thinking tokens are billed as output: OpenAI counts them in completion_tokens too.
    completion = count("candidatesTokenCount") + count("thoughtsTokenCount")
    total = meta.get("totalTokenCount")
    return Usage(prompt, completion, total if isinstance(total, int) else prompt + completion)


class GeminiStreamParser:
    """``GenerateContentResponse`` chunks → provider events. One instance per stream."""

    def __init__(self) -> None:
        self.finished = False  # Gemini has no end marker: the body's end is the end
        self._reason: str | None = None
        self._blocked = False
        self._usage_meta: Any = None  # cumulative and repeated per chunk: read at the end
        self._tools = ToolCallAssembler()

    def feed(self, event: ServerSentEvent) -> Iterable[ProviderEvent]:
        chunk = json_object(event, "a response chunk")
        if "error" in chunk:
            raise google_error(chunk) or UpstreamError("upstream error", code="upstream_error")
        out: list[ProviderEvent] = []
        meta = chunk.get("usageMetadata")
        if isinstance(meta, Mapping):
            self._usage_meta = meta
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, Mapping) and feedback.get("blockReason"):
            self._blocked = True
        candidates = chunk.get("candidates")
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], Mapping):
            self._candidate(candidates[0], out)
        return out

    def _candidate(self, candidate: Mapping[str, Any], out: list[ProviderEvent]) -> None:
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, Mapping):
                continue
            text = part.get("text")
            if isinstance(text, str) and text:
                out.append(ReasoningDelta(text) if part.get("thought") else TextDelta(text))
            call = part.get("functionCall")
            if isinstance(call, Mapping):
                if not isinstance(call.get("name"), str) or not call["name"]:
                    raise UpstreamError(
                        "the upstream sent a function call without a name",
                        code="upstream_bad_response",
                    )
                args = call.get("args")
                out.extend(
                    self._tools.feed(
                        id=call.get("id"), name=call["name"], arguments={} if args is None else args
                    )
                )
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            if reason in _BAD_CALL:
                raise UpstreamError(
                    f"the model ended with {reason}: its function call cannot be run",
                    code="upstream_bad_response",
                )
            self._reason = reason

    def end_of_body(self) -> Iterable[ProviderEvent]:
        incomplete_unless(self._blocked or self._reason is not None)
        finish: FinishReason
        if self._blocked or self._reason in _FILTERED:
            finish = "content_filter"
        elif self._reason == "MAX_TOKENS":
            finish = "length"
        else:
            finish = "tool_calls" if self._tools.count else "stop"
        out: list[ProviderEvent] = [*self._tools.flush()]
        usage = _usage(self._usage_meta)
        if usage is not None:
            out.append(usage)
        out.append(Finish(finish))
        return out


class Gemini:
    """Google's Gemini models through the Gemini API.

    Example::

        provider = Gemini(api_key=os.environ["GEMINI_API_KEY"], default_model="gemini-2.5-flash")

    ``base_url`` is the API root (``https://generativelanguage.googleapis.com``, or a proxy of
    it). ``include_thoughts`` asks for thought summaries, which stream as reasoning (switch it
    off for models that refuse ``thinkingConfig``). ``client`` is an optional
    ``httpx.AsyncClient`` of the host's.
    """

    name = "gemini"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = GEMINI_BASE_URL,
        default_model: str | None = "gemini-2.5-flash",
        client: httpx.AsyncClient | None = None,
        include_thoughts: bool = True,
        headers: Mapping[str, str] | None = None,
        max_line_bytes: int = 1 << 20,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.default_model = default_model
        self.client = client
        self.include_thoughts = include_thoughts
        self._extra_headers = dict(headers or {})
        self.max_line_bytes = max_line_bytes

    def __repr__(self) -> str:
        return f"Gemini(base_url={self.base_url!r}, api_key='***')"

    def secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def url(self, model: str) -> str:
        """The streaming URL. The model is quoted whole: it comes from the client's request,
        and ``../`` or ``?`` in it must not reach another path of the API."""
        model = model.removeprefix("models/")
        return (
            f"{self.base_url}/v1beta/models/{quote(model, safe='')}:streamGenerateContent?alt=sse"
        )

    def build_headers(self) -> dict[str, str]:
        return {
            "accept": "text/event-stream",
            **self._extra_headers,
            "x-goog-api-key": self._api_key,
        }

    capabilities = gemini_capabilities

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        return build_gemini_body(request, include_thoughts=self.include_thoughts)

    async def open(self, request: ChatRequest, http: httpx.AsyncClient) -> SSEUpstream:
        response = await open_event_stream(
            http,
            self.url(request.model),
            headers=self.build_headers(),
            body=self.build_body(request),
            on_json_body=_json_instead_of_stream,
            secrets=self.secrets(),
            on_error_body=_error_body,
        )
        return SSEUpstream(response, GeminiStreamParser(), max_line_bytes=self.max_line_bytes)


def _error_body(status: int, body: bytes, retry_after: float | None) -> UpstreamError | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return google_error(payload, status, retry_after)


def _json_instead_of_stream(payload: Any) -> UpstreamError:
    return google_error(payload) or UpstreamError(
        "the upstream answered with a complete JSON body instead of an event stream",
        code="upstream_bad_response",
    )
