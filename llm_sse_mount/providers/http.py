"""Upstream HTTP plumbing shared by the SSE-speaking providers.

``open_event_stream`` sends the request and reads the status before anything is committed to
the client; ``SSEUpstream`` feeds the body through :class:`~llm_sse_mount.sse_decoder.SSEDecoder`
and a per-vendor parser. Status mapping (what the client sees when the upstream refuses):

======================  ======  ==========================  =========
upstream                status  code                        retryable
======================  ======  ==========================  =========
connect error / reset   502     ``upstream_unreachable``    yes
connect/read timeout    504     ``upstream_timeout``        yes
400, 413, 422           400     ``upstream_rejected``       no
401, 403                502     ``upstream_auth``           no
404                     502     ``upstream_not_found``      no
408, 504                504     ``upstream_timeout``        yes
429                     429     ``upstream_rate_limited``   yes
503, 529                503     ``upstream_overloaded``     yes
other 5xx               502     ``upstream_error``          yes
======================  ======  ==========================  =========
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import anyio
import httpx

from ..errors import UpstreamError, UpstreamTimeout
from ..events import ProviderEvent
from ..redaction import redact
from ..sse_decoder import ServerSentEvent, SSEDecoder
from .trace_headers import outgoing_headers

#: How much of an error body we read to build a message (the rest is discarded).
MAX_ERROR_BODY = 64 * 1024
#: After the end marker: how long and how much we read to let the connection be reused.
DRAIN_SECONDS = 0.25
DRAIN_BYTES = 64 * 1024


#: The longest ``Retry-After`` we pass on: an hour. ``inf``, ``1e400`` or a date in the year
#: 9999 from a confused upstream would otherwise overflow ``math.ceil`` in the response header.
MAX_RETRY_AFTER = 3600.0
#: Error text taken from a non-JSON body, after redaction.
MAX_ERROR_TEXT = 300


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds in ``[0, MAX_RETRY_AFTER]``: delta-seconds or an HTTP date;
    ``None`` when absent or not a number (``NaN`` included)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def error_message_from_body(
    body: bytes, content_type: str, secrets: Sequence[str] = ()
) -> tuple[str | None, str | None]:
    """Best effort ``(message, vendor_code)`` from an upstream error body of any shape.

    Every one of ``secrets`` is redacted first, before anything is cut: a credential the
    upstream echoes and a cut at ``MAX_ERROR_TEXT`` would otherwise leave most of it readable.
    """
    text = redact(body.decode("utf-8", "replace"), secrets).strip()
    if not text:
        return None, None
    if "json" in content_type or text[:1] in "{[":
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            err = payload.get("error", payload)
            if isinstance(err, str):
                return err, None
            if isinstance(err, dict):
                msg = err.get("message") or err.get("msg") or err.get("detail")
                code = err.get("code") or err.get("type")
                return (str(msg) if msg else None), (str(code) if code is not None else None)
    if "html" in content_type or text[:1] == "<":
        return "the upstream answered with an HTML page", None
    return text[:MAX_ERROR_TEXT], None


def status_error(
    status: int, message: str | None, vendor_code: str | None, retry_after: float | None
) -> UpstreamError:
    """Map an upstream HTTP error status to the error the client sees (table above)."""
    detail = f"upstream answered HTTP {status}"
    if vendor_code:
        detail += f" ({vendor_code})"
    detail += f": {message}" if message else " with an empty body"
    if status in (408, 504):
        return UpstreamTimeout(detail, retry_after=retry_after)
    if status == 429:
        return UpstreamError(detail, code="upstream_rate_limited", retry_after=retry_after)
    if status in (503, 529):
        return UpstreamError(detail, code="upstream_overloaded", retry_after=retry_after)
    if status >= 500:
        return UpstreamError(detail, code="upstream_error", retry_after=retry_after)
    if status in (401, 403):
        return UpstreamError(detail, code="upstream_auth")
    if status == 404:
        return UpstreamError(detail, code="upstream_not_found")
    return UpstreamError(detail, code="upstream_rejected")


def transport_error(exc: httpx.TransportError) -> UpstreamError:
    """An httpx transport failure as the client-facing error (never with the URL's secrets)."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"upstream timed out ({type(exc).__name__})")
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return UpstreamError("cannot connect to the upstream", code="upstream_unreachable")
    return UpstreamError(
        f"upstream connection failed ({type(exc).__name__})",
        code="upstream_unreachable",
    )


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


async def open_event_stream(
    http: httpx.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    on_json_body: Callable[[Any], UpstreamError] | None = None,
    secrets: Sequence[str] = (),
    on_error_body: Callable[[int, bytes, float | None], UpstreamError | None] | None = None,
) -> httpx.Response:
    """POST ``body`` and return the streaming response once its status is known to be good.

    Any failure closes the response and raises :class:`UpstreamError`. A 200 that is not an
    event stream (a JSON body from a server that ignored ``stream: true``, an HTML page from a
    proxy) is an ``upstream_bad_response`` error rather than a silent empty answer.
    ``secrets`` (every credential the request carries) are redacted from error bodies.
    ``on_error_body(status, redacted_body, retry_after)`` lets a vendor read its own error
    shape first (``None`` falls back to the generic mapping above).
    """
    extra = outgoing_headers()  # trace context, when telemetry asks for it
    if extra:
        headers = {**headers, **extra}
    request = http.build_request("POST", url, headers=headers, json=body)
    try:
        response = await http.send(request, stream=True)
    except httpx.TransportError as exc:
        raise transport_error(exc) from None
    try:
        content_type = response.headers.get("content-type", "").lower()
        if response.status_code >= 400:
            raw = await _read_limited(response, MAX_ERROR_BODY)
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if on_error_body is not None:
                clean = redact(raw.decode("utf-8", "replace"), secrets).encode()
                vendor = on_error_body(response.status_code, clean, retry_after)
                if vendor is not None:
                    raise vendor
            message, code = error_message_from_body(raw, content_type, secrets)
            raise status_error(response.status_code, message, code, retry_after)
        if response.status_code != 200 or "text/event-stream" not in content_type:
            raw = await _read_limited(response, MAX_ERROR_BODY)
            message, code = error_message_from_body(raw, content_type, secrets)
            if "json" in content_type and on_json_body is not None:
                try:
                    payload = json.loads(redact(raw.decode("utf-8", "replace"), secrets))
                except ValueError:
                    payload = None
                raise on_json_body(payload)
            raise UpstreamError(
                f"upstream answered HTTP {response.status_code} with"
                f" {content_type or 'no content type'} instead of an event stream"
                + (f": {message}" if message else ""),
                code="upstream_bad_response",
            )
    except httpx.TransportError as exc:
        await response.aclose()
        raise transport_error(exc) from None
    except BaseException:
        await response.aclose()
        raise
    return response


def json_object(event: ServerSentEvent, what: str = "an event") -> dict[str, Any]:
    """The JSON object an upstream's SSE event carries; ``upstream_bad_response`` for a data
    line that is not JSON or not an object (every vendor's parser starts with this)."""
    try:
        data = json.loads(event.data)
    except ValueError:
        raise UpstreamError(
            "the upstream sent a data line that is not JSON", code="upstream_bad_response"
        ) from None
    if not isinstance(data, dict):
        raise UpstreamError(
            f"the upstream sent a JSON value that is not {what}", code="upstream_bad_response"
        )
    return data


def incomplete_unless(reason_seen: bool) -> tuple[()]:
    """What a parser's ``end_of_body`` says when the body ended without the vendor's end
    marker: nothing more if a finish/stop reason was seen (complete enough: some servers omit
    the marker), else ``upstream_incomplete``."""
    if reason_seen:
        return ()
    raise UpstreamError(
        "the upstream stream ended before the answer was complete", code="upstream_incomplete"
    )


class EventParser(Protocol):
    """Per-stream, stateful translation of one vendor's SSE events into provider events."""

    #: Set once the vendor's explicit end marker was seen (``[DONE]``, ``message_stop``).
    finished: bool

    def feed(self, event: ServerSentEvent) -> Iterable[ProviderEvent]:
        """Translate one SSE event; raise :class:`UpstreamError` for an error frame."""
        ...

    def end_of_body(self) -> Iterable[ProviderEvent]:
        """The body ended; raise if it ended before the stream was complete."""
        ...


class SSEUpstream:
    """An open upstream event stream: bytes → SSE events → provider events."""

    def __init__(
        self, response: httpx.Response, parser: EventParser, *, max_line_bytes: int = 1 << 20
    ) -> None:
        self._response = response
        self._parser = parser
        self._decoder = SSEDecoder(max_line_bytes=max_line_bytes)
        # One iterator for the body: after the end marker, aclose() goes on reading it.
        self._chunks = response.aiter_bytes()

    async def events(self) -> AsyncIterator[ProviderEvent]:
        parser, decoder = self._parser, self._decoder
        try:
            async for chunk in self._chunks:
                for sse in decoder.feed(chunk):
                    for event in parser.feed(sse):
                        yield event
                    if parser.finished:
                        # Stop at the end marker: some servers keep the connection open after it.
                        return
            for sse in decoder.close():
                for event in parser.feed(sse):
                    yield event
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        if not parser.finished:
            for event in parser.end_of_body():
                yield event

    async def aclose(self) -> None:
        response = self._response
        if self._parser.finished and not response.is_closed:
            # After the end marker the body normally ends at once; reading that last bit lets
            # httpx return the connection to its pool. An upstream that keeps the connection
            # open after [DONE] gets a short deadline, then the connection is closed.
            with anyio.move_on_after(DRAIN_SECONDS):
                drained = 0
                try:
                    async for chunk in self._chunks:
                        drained += len(chunk)
                        if drained > DRAIN_BYTES:
                            break
                except httpx.HTTPError:
                    pass
        await response.aclose()
